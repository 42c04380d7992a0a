"""The standby and failover commands refuse bad input in one sentence, exit non-zero and change nothing
(against the in-process Prefect API; no server is reached: the addresses are TEST-NET-3's)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

pytestmark = pytest.mark.unit


def _key() -> str:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()).decode()


def test_dr_commands_refuse_bad_input_and_change_nothing(prefect_harness, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from blocks.server import Server
    from blocks.site import WordPressSite
    from pressfleet.cli.main import app
    from pressfleet.fleet.saved import saved_block_names

    monkeypatch.setenv("PRESSFLEET_STATE", str(tmp_path))
    Server(address="203.0.113.40", private_key=_key()).save("dr-cli-web", overwrite=True)
    WordPressSite(name="drcli", domain="drcli.example.test", admin_email="a@example.test",
                  server=Server.load("dr-cli-web")).save("site-drcli", overwrite=True)
    runner = CliRunner()
    cases = [
        (["failover", "drcli"], "drcli has no standby: `pressfleet standby add drcli --server SERVER`"),
        (["failback", "drcli"], "drcli has no standby"),
        (["failover", "nosuch.example.test"], "nosuch.example.test"),
        (["standby", "add", "drcli", "--server", "no-such-server"], "no Server block 'no-such-server'"),
        (["standby", "add", "drcli", "--server", "dr-cli-web", "--front", "f", "--dns", "d"], "--front or --dns, not both"),
        (["standby", "add", "drcli", "--server", "dr-cli-web"], "a standby must be on another server"),
        (["front", "add", "Bad_Name", "--server", "dr-cli-web"], "is not a valid Front name"),
        (["standby", "status", "drcli"], "drcli has no standby"),
    ]
    for args, says in cases:
        r = runner.invoke(app, args)
        assert r.exit_code == 1, (args, r.output)
        assert says in r.output, (args, r.output)
        assert "Traceback" not in r.output
    assert saved_block_names("pressfleet-standby-pair") == []
    assert saved_block_names("pressfleet-front") == []
