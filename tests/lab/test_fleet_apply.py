"""The fleet as code on the session's shared host (two saved sites): export, re-apply with nothing to change,
a dry run after a site option changed (the plan field by field and the host's diff, nothing changed), and an
apply that names an unreachable second server refused before any change."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
import yaml

from pressfleet.ssh.remote import run
from tests.conftest import save_copy

pytestmark = pytest.mark.lab

SERVER = "fleet-shared"


def _ghost_address() -> str:
    """An address on the test lab's bridge with no host there and no saved Server block at it (other tests of
    the session save blocks for addresses nobody answers at too)."""
    from blocks.server import Server
    from pressfleet.fleet.saved import saved_block_names
    from pressfleet.lab import hosts as lab

    taken = {Server.load(n).address for n in saved_block_names("server")} | {h["address"] for h in lab.list_hosts()}
    net = lab.namespace().network
    return next(a for a in (str(net.network_address + i) for i in range(240, 255)) if a not in taken)


@dataclass
class Ran:
    exit_code: int
    output: str  # stdout, then stderr


def _cli(*args: str, env: dict | None = None) -> Ran:
    """`pressfleet ARGS` as a person runs it, against the session's Prefect API."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), **(env or {})}
    res = subprocess.run([sys.executable, "-m", "pressfleet.cli.main", *args], env=env, capture_output=True,
                         text=True, timeout=600, stdin=subprocess.DEVNULL)
    return Ran(res.returncode, res.stdout + res.stderr)


def _name_for(data: dict, domain: str) -> str:
    """The server name the export gave the site DOMAIN runs on (other tests of the session save blocks for the
    same host, so it need not be the one this test saved)."""
    return next(s["server"] for s in data.get("sites", []) if s["domain"] == domain)


def _only_this_host(data: dict, name: str) -> dict:
    """The exported file narrowed to the shared host (other tests of the session save other blocks)."""
    return {"version": 1, "servers": {name: data["servers"][name]},
            "sites": [s for s in data.get("sites", []) if s["server"] == name]}


@pytest.fixture
def shared_server(shared_host):
    """The shared host saved as SERVER, as `pressfleet server add` would (a copy), deleted after the test."""
    from blocks.server import Server

    save_copy(shared_host.server, SERVER)
    yield SERVER
    Server.delete(SERVER)


def _vhost_ttl(shared_host) -> str:
    conn = shared_host.server.connect()
    try:
        return run(conn, ["grep", "-h", "fastcgi_cache_valid", shared_host.two.config.nginx_vhost_path]).stdout
    finally:
        conn.close()


def test_export_reapply_dry_run_and_unreachable_server(shared_host, shared_server, tmp_path):
    from blocks.server import Server
    from blocks.site import WordPressSite
    from pressfleet.fleet.sites import site_block_name

    two_block = site_block_name(shared_host.two.config.name)

    # export: every saved site of the host, its server, the key as a reference (never its text)
    exported = tmp_path / "exported.yaml"
    out = _cli("fleet", "export", str(exported))
    assert out.exit_code == 0, out.output
    text = exported.read_text()
    assert "PRIVATE KEY" not in text and shared_host.server.private_key.get_secret_value()[40:80] not in text
    data = yaml.safe_load(text)
    name = _name_for(data, shared_host.one.config.domain)
    server_entry = data["servers"][name]
    assert server_entry["address"] == shared_host.host.address and "key_secret" in server_entry
    domains = {s["domain"] for s in data["sites"] if s["server"] == name}
    assert {shared_host.one.config.domain, shared_host.two.config.domain} <= domains

    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(_only_this_host(data, name), sort_keys=False))

    # re-apply: nothing to create, change or provision
    started = time.monotonic()
    out = _cli("fleet", "apply", str(fleet))
    reapply_s = time.monotonic() - started
    assert out.exit_code == 0, out.output
    assert "0 to create, 0 to change" in out.output and "0 site(s) to provision" in out.output, out.output
    assert not re.search(r"^(saved|provisioned on) ", out.output, re.M), out.output  # the command's own lines
    print(f"re-apply with nothing to change: {reapply_s:.1f} s")

    # a site option changed in the file: the dry run lists the field and the host's diff; nothing changes
    changed = yaml.safe_load(fleet.read_text())
    two = next(s for s in changed["sites"] if s["domain"] == shared_host.two.config.domain)
    two["page_cache_ttl_s"] = 1800
    fleet.write_text(yaml.safe_dump(changed, sort_keys=False))
    before = _vhost_ttl(shared_host)
    out = _cli("fleet", "apply", str(fleet), "--dry-run")
    assert out.exit_code == 0, out.output
    assert f"change site {two_block}" in out.output, out.output
    assert "page_cache_ttl_s: file 1800 / saved 3600" in out.output, out.output
    assert f"provision on {name}: {two_block}" in out.output
    assert any(line.startswith("+") and "1800s" in line for line in out.output.splitlines()), out.output
    assert any(line.startswith("-") and "3600s" in line for line in out.output.splitlines()), out.output
    assert WordPressSite.load(two_block).page_cache_ttl_s == 3600
    assert _vhost_ttl(shared_host) == before and "3600s" in before

    # a second server that does not answer: refused at its line, before any change
    ghost = _ghost_address()
    changed["servers"]["fleet-ghost"] = {"address": ghost, "key_secret": server_entry["key_secret"],
                                         "trust_on_first_use": True}
    changed["sites"].append({"domain": "ghost.lab.test", "server": "fleet-ghost", "tls_mode": "self-signed"})
    fleet.write_text(yaml.safe_dump(changed, sort_keys=False))
    ghost_line = next(i for i, line in enumerate(fleet.read_text().splitlines(), 1) if ghost in line)
    out = _cli("fleet", "apply", str(fleet))
    assert out.exit_code == 1, out.output
    assert f"{fleet}:{ghost_line}: servers.fleet-ghost: cannot reach" in out.output, out.output
    assert WordPressSite.load(two_block).page_cache_ttl_s == 3600
    with pytest.raises(ValueError):
        Server.load("fleet-ghost")
    with pytest.raises(ValueError):
        WordPressSite.load("site-ghost-lab-test")
    assert _vhost_ttl(shared_host) == before


def test_a_host_that_fails_does_not_stop_the_others(shared_host, shared_server, lab_host, tmp_path):
    """Two hosts: the shared host re-provisions a pending site (nothing changes there) while the other host's new
    site is refused at once (its site lock is held, the wait is 3 s), so nothing reaches that host. The apply
    finishes the shared host, exits non-zero naming the failed host, and keeps only the failed site pending
    for the re-run."""
    from blocks.server import Server
    from blocks.site import WordPressSite
    from pressfleet.fleet import fleetblocks
    from pressfleet.fleet.locks import site_lock
    from pressfleet.fleet.saved import saved_block_names
    from pressfleet.fleet.sites import site_block_name

    one_block = site_block_name(shared_host.one.config.name)
    out = _cli("fleet", "export", str(tmp_path / "exported.yaml"))
    assert out.exit_code == 0, out.output
    exported = yaml.safe_load((tmp_path / "exported.yaml").read_text())
    name = _name_for(exported, shared_host.one.config.domain)
    data = _only_this_host(exported, name)
    # the other host under the name a saved block already gives it, if any (a file name that a saved block holds
    # for another address is refused, and one address under two names too)
    other = next((n for n in saved_block_names("server")
                  if (s := Server.load(n)).address == lab_host.address and s.port == lab_host.port), "fleet-other")
    data["servers"][other] = {"address": lab_host.address, "port": lab_host.port, "user": lab_host.user,
                              "key_file": lab_host.private_key_path, "host_key": lab_host.host_key}
    data["sites"].append({"domain": "three.lab.test", "server": other, "tls_mode": "self-signed"})
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(data, sort_keys=False))
    fleetblocks.set_pending([one_block])  # as a run cut off before it provisioned site one would leave it

    try:
        with site_lock(["three_lab_test"], "test holds the site", wait_seconds=5):
            started = time.monotonic()
            out = _cli("fleet", "apply", str(fleet), env={"PRESSFLEET_SITE_LOCK_WAIT": "3"})
            print(f"apply with one host failing: {time.monotonic() - started:.1f} s")
        assert out.exit_code == 1, out.output
        assert f"fleet apply failed on {other} (site-three-lab-test:" in out.output, out.output
        assert "the other hosts finished; re-run to complete" in out.output
        assert f"provisioned on {name}: {one_block}" in out.output, out.output
        # the shared host's pending site was provisioned; only the failed one is still pending
        assert fleetblocks.pending_sites() == ["site-three-lab-test"]
        assert WordPressSite.load("site-three-lab-test").server.address == lab_host.address
        conn = Server.load(other).connect()
        try:  # nothing reached the other host
            assert not run(conn, ["test", "-e", "/var/www/three_lab_test"], check=False).ok
        finally:
            conn.close()
        # a re-run provisions what is pending: it plans the failed site again (shown here as a dry run)
        out = _cli("fleet", "apply", str(fleet), "--dry-run")
        assert f"provision on {other}: site-three-lab-test" in out.output, out.output
        assert f"provision on {name}" not in out.output
    finally:
        made = [(WordPressSite, "site-three-lab-test")]
        made += [(Server, other)] if other == "fleet-other" else []  # a saved block the lab made stays
        for cls, block in made:
            try:
                cls.delete(block)
            except Exception:  # noqa: BLE001 - not saved: nothing to clean
                pass
        fleetblocks.set_pending([])
