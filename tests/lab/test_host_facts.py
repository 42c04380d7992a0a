"""host-facts against a real lab host: pinned host keys, trust on first use, the flow and its artifact.

Uses the session fixtures `lab_host` (a booted pristine Debian 12 host) and `prefect_harness` (an
in-process Prefect API) from tests/conftest.py.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from blocks.server import Server
from flows.host_facts import host_facts
from pressfleet.plan import facts
from pressfleet.ssh import remote

pytestmark = pytest.mark.lab


def server_for(lab_host, **overrides) -> Server:
    values = {
        "address": lab_host.address,
        "port": lab_host.port,
        "user": lab_host.user,
        "private_key": Path(lab_host.private_key_path).read_text(),
        "host_key": lab_host.host_key,
    }
    values.update(overrides)
    return Server(**values)


def other_host_key() -> str:
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def test_pinned_key_matches_the_lab_fingerprint(lab_host):
    assert server_for(lab_host).fingerprint() == lab_host.fingerprint


def test_host_facts_flow_with_pinned_key(lab_host, prefect_harness):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    server = server_for(lab_host)
    state = host_facts(server, return_state=True)
    result = state.result()
    assert isinstance(result, facts.HostFacts)
    assert (result.os_id, result.os_version) == ("debian", "12")
    assert result.hostname == lab_host.name
    assert result.virtualization == "systemd-nspawn"
    assert result.is_running("ssh")
    assert result.packages["openssh-server"]
    assert result.root_disk() is not None

    key = facts.artifact_key(lab_host.address)
    secret_line = Path(lab_host.private_key_path).read_text().splitlines()[1]
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
        assert artifacts, f"no artifact {key}"
        rows = json.loads(artifacts[0].data) if isinstance(artifacts[0].data, str) else artifacts[0].data
        assert {"fact": "hostname", "value": lab_host.name} in rows
        flow_run = client.read_flow_run(state.state_details.flow_run_id)
    # The run's recorded parameters show the private key as ********, never its text.
    recorded = json.dumps(flow_run.parameters, default=str)
    assert lab_host.address in recorded
    assert secret_line not in recorded


def test_block_reference_parameter(lab_host, prefect_harness):
    """The form run_deployment uses for a block parameter: {"$ref": {"block_document_id": ...}}."""
    server = server_for(lab_host)
    block_id = server.save(f"lab-{uuid.uuid4().hex[:8]}")
    ref = {"$ref": {"block_document_id": str(block_id)}}
    hydrated = host_facts.validate_parameters({"server": ref})["server"]
    assert isinstance(hydrated, Server)
    assert hydrated.private_key.get_secret_value() == server.private_key.get_secret_value()
    result = host_facts(server=ref)
    assert (result.os_id, result.os_version) == ("debian", "12")


def test_wrong_pinned_key_is_a_mismatch(lab_host):
    server = server_for(lab_host, host_key=other_host_key())
    with pytest.raises(remote.HostKeyMismatch) as info:
        server.connect()
    assert lab_host.fingerprint in str(info.value)
    assert server.fingerprint() in str(info.value)


def test_no_pinned_key_is_refused_without_trust_on_first_use(lab_host):
    server = server_for(lab_host, host_key=None, trust_on_first_use=False)
    with pytest.raises(remote.HostKeyUnknown) as info:
        server.connect()
    assert lab_host.fingerprint in str(info.value)


def test_trust_on_first_use_pins_and_saves_the_key(lab_host, prefect_harness):
    """Through the flow, as a deployment run gets it: the learned key is saved on the named block."""
    name = f"tofu-{uuid.uuid4().hex[:8]}"
    block_id = server_for(lab_host, host_key=None, trust_on_first_use=True).save(name)
    result = host_facts(server={"$ref": {"block_document_id": str(block_id)}})
    assert result.os_id == "debian"
    saved = Server.load(name)
    assert saved.host_key == lab_host.host_key
    assert saved.fingerprint() == lab_host.fingerprint
    # Saving again kept the real private key, not its ******** placeholder.
    assert saved.private_key.get_secret_value() == Path(lab_host.private_key_path).read_text()
    # From now on the pin is enforced like any other.
    with saved.connect() as conn:
        assert remote.run(conn, ["true"]).ok


def test_a_connection_right_after_an_sshd_reload_gets_in(lab_host):
    """`systemctl reload ssh` returns before sshd, re-executing itself, listens again: for a few milliseconds
    connections are refused. The provisioning ssh step reloads sshd and at once proves a new login works
    (a CI run once failed right there). Twenty reloads, each followed at once by a new connection; with
    `refused_wait=0` this test fails within a few reloads."""
    server = server_for(lab_host)
    with server.connect() as conn:
        for _ in range(20):
            remote.run(conn, ["systemctl", "reload", "ssh"])
            with server.connect() as again:
                assert remote.run(again, ["true"]).exited == 0
