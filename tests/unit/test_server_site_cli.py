"""`pressfleet server add|list|remove` and `pressfleet site list|remove`: their input checks (refused with one
sentence before anything is contacted or saved) and the pure parts of their listings (issue 10)."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from pressfleet.cli import server as cli_server
from pressfleet.cli import site as cli_site
from pressfleet.paths import TEMPLATES
from pressfleet.validate import InvalidInput

pytestmark = pytest.mark.unit

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMrFj9uuOmiW1ytfzvBbl1oUW6fnlIssF2EgJ6MF8uXv"
HOST_FP = "SHA256:KtWgbv/BM32hZqUcvfwVX7vf8SHatxNVHKJouXUIkhs"


def private_key_text() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()).decode()


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "id_ed25519"
    path.write_text(private_key_text())
    path.chmod(0o600)
    return str(path)


def parse(key_file, **kw):
    args = dict(name="web1", address="203.0.113.10", port=22, user="root", key_file=key_file, host_key=None,
                trust_on_first_use=True)
    args.update(kw)
    return cli_server.parse_add(**args)


def test_parse_add_takes_a_good_server_and_normalizes_its_host_key(key_file):
    spec = parse(key_file, host_key=HOST_KEY + " root@web1", trust_on_first_use=False, port=2222)
    assert (spec.name, spec.address, spec.port, spec.user, spec.host_key) == ("web1", "203.0.113.10", 2222, "root",
                                                                             HOST_KEY)
    assert "PRIVATE KEY" in spec.private_key and "PRIVATE KEY" not in repr(spec)
    assert parse(key_file).trust_on_first_use and parse(key_file).host_key is None


@pytest.mark.parametrize("kw, says", [
    ({"name": "Web;1"}, "not a valid server name"),
    ({"name": "-web"}, "not a valid server name"),
    ({"address": "a;rm -rf /"}, "not a host name or IP address"),
    ({"address": "fe80::1%eth0"}, "scope ids"),
    ({"port": 0}, "not a valid port"),
    ({"port": 70000}, "not a valid port"),
    ({"user": "Root"}, "not a user name"),
    ({"user": "x y"}, "not a user name"),
    ({"host_key": HOST_KEY, "trust_on_first_use": True}, "one of the two"),
    ({"host_key": None, "trust_on_first_use": False}, "one of the two"),
    ({"host_key": "ssh-ed25519 AAAA-not-base64", "trust_on_first_use": False}, "--host-key"),
    ({"host_key": "ssh-dss AAAAB3NzaC1kc3M=", "trust_on_first_use": False}, "--host-key"),
])
def test_parse_add_refuses_bad_input_in_one_sentence(key_file, kw, says):
    with pytest.raises(InvalidInput) as err:
        parse(key_file, **kw)
    assert says in str(err.value)
    assert "\n" not in str(err.value) and "PRIVATE" not in str(err.value)


def test_the_key_file_must_be_a_private_owner_only_key(tmp_path, key_file):
    assert "BEGIN OPENSSH PRIVATE KEY" in cli_server.read_key_file(key_file)
    with pytest.raises(InvalidInput, match="cannot be read"):
        cli_server.read_key_file(str(tmp_path / "missing"))
    with pytest.raises(InvalidInput, match="not a regular file"):
        cli_server.read_key_file(str(tmp_path))
    os.chmod(key_file, 0o644)
    with pytest.raises(InvalidInput, match="readable by others .*0644.*chmod 600"):
        cli_server.read_key_file(key_file)
    other = tmp_path / "notakey"
    other.write_text("ssh-ed25519 AAAA this is a public key\n")
    other.chmod(0o600)
    with pytest.raises(InvalidInput, match="not an OpenSSH private key"):
        cli_server.read_key_file(str(other))


def test_server_add_refuses_bad_input_before_contacting_anything(key_file):
    from pressfleet.cli.main import app

    result = CliRunner().invoke(app, ["server", "add", "web1", "--address", "a;rm -rf /", "--key-file", key_file,
                                      "--trust-on-first-use"])
    assert result.exit_code == 1
    assert "refused before anything ran" in result.output and "not a host name" in result.output
    result = CliRunner().invoke(app, ["server", "add", "web1", "--address", "203.0.113.10", "--key-file", key_file])
    assert result.exit_code == 1 and "--trust-on-first-use" in result.output


def site(block, name, domain, address="10.0.0.1", port=22):
    return cli_server.SiteOnServer(block, name, domain, address, port)


def test_sites_using_a_server_are_those_at_its_address_and_port():
    sites = [site("site-one", "one", "one.test"), site("site-two", "two", "two.test", port=2222),
             site("site-three", "three", "three.test", address="10.0.0.2"), site("site-x", "x", "x.test", None, None)]
    assert [s.name for s in cli_server.sites_using("10.0.0.1", 22, sites)] == ["one"]
    assert [s.name for s in cli_server.sites_using("10.0.0.1", 2222, sites)] == ["two"]
    assert cli_server.sites_using("10.0.0.9", 22, sites) == []


def test_server_rows_show_fingerprint_and_sites():
    srv = SimpleNamespace(address="10.0.0.1", port=22, user="root", fingerprint=lambda: HOST_FP)
    bare = SimpleNamespace(address="10.0.0.2", port=22, user="deploy", fingerprint=lambda: None)
    rows = cli_server.server_rows([("web2", bare), ("web1", srv)],
                                  [site("site-one", "one", "one.test"), site("site-two", "two", "two.test")])
    assert [r["name"] for r in rows] == ["web1", "web2"]
    assert rows[0] == {"name": "web1", "address": "10.0.0.1", "port": 22, "user": "root", "fingerprint": HOST_FP,
                       "sites": ["one.test", "two.test"]}
    assert rows[1]["fingerprint"] == "(none pinned)" and rows[1]["sites"] == []
    table = cli_server.format_table(rows, ["name", "address", "fingerprint", "sites"]).splitlines()
    assert table[0].split() == ["NAME", "ADDRESS", "FINGERPRINT", "SITES"]
    assert table[1].split() == ["web1", "10.0.0.1", HOST_FP, "one.test,", "two.test"]
    assert cli_server.format_table([], ["name"]) == ""


def test_release_version_is_read_from_the_hosts_record():
    record = b"url=http://10.201.0.1:8080/wordpress-6.1.9.tar.gz\nsha256=ab\nsha1=cd\nversion=6.1.9\nentries=12\n"
    assert cli_site.parse_release_version(record) == "6.1.9"
    assert cli_site.parse_release_version(None) == "?"
    assert cli_site.parse_release_version(b"version=6.1.9; rm -rf /\n") == "?"
    assert cli_site.parse_release_version(b"sha256:abcd\n") == "?"  # the one-line record of old versions
    import base64

    text = f"/var/www/one/.pressfleet-release\t{base64.b64encode(record).decode()}\n/var/www/two/.pressfleet-release\t-\n"
    assert cli_site.parse_safe_read(text) == {"/var/www/one/.pressfleet-release": record,
                                              "/var/www/two/.pressfleet-release": None}
    assert cli_site.release_record_path("one_lab_test") == "/var/www/one_lab_test/.pressfleet-release"
    with pytest.raises(InvalidInput):
        cli_site.release_record_path("../etc")


def test_site_rows_say_version_last_backup_and_verified():
    entry = lambda when, verified: SimpleNamespace(manifest=SimpleNamespace(started_at=when), verified=verified)
    t1, t2 = datetime(2026, 11, 30, 2, 30, tzinfo=UTC), datetime(2026, 12, 1, 2, 30, tzinfo=UTC)
    assert cli_site.backup_state([entry(t1, True), entry(t2, False)]) == cli_site.BackupState(t2, False)
    assert cli_site.backup_state([]) == cli_site.BackupState(None, None)
    sites = [site("site-two", "two", "two.test"), site("site-one", "one", "one.test"),
             site("site-far", "far", "far.test", address="10.0.0.5")]
    rows = cli_site.site_rows(sites, {"one": "6.1.9"},
                              {"one": cli_site.BackupState(t2, True), "two": cli_site.BackupState(None, None),
                               "far": None},
                              {("10.0.0.1", 22): "web1"})
    assert rows == [
        {"site": "far", "domain": "far.test", "server": "10.0.0.5:22", "wordpress": "?", "last_backup": "?",
         "verified": "?"},
        {"site": "one", "domain": "one.test", "server": "web1", "wordpress": "6.1.9",
         "last_backup": "2026-12-01 02:30 UTC", "verified": "yes"},
        {"site": "two", "domain": "two.test", "server": "web1", "wordpress": "?", "last_backup": "never",
         "verified": "-"},
    ]


def test_remove_arguments_are_checked_and_secrets_are_named_exactly():
    from pressfleet.fleet.siteconfig import SiteConfig
    from pressfleet.fleet.secrets import secret_block_name
    from tasks.remove import SECRET_KINDS, remove_args

    cfg = SiteConfig(name="one_lab_test", domain="one.lab.test", aliases=("www.one.lab.test",),
                     admin_email="a@lab.test", tls_mode="self-signed")
    assert remove_args(cfg) == ["one_lab_test", "8.2", "self-signed", "one.lab.test", "www.one.lab.test"]
    # exact names: removing site `one` never takes a secret of site `one_two` (their dashed names share a prefix)
    one = {secret_block_name("one", k) for k in SECRET_KINDS}
    one_two = {secret_block_name("one_two", k) for k in SECRET_KINDS}
    assert one.isdisjoint(one_two) and "pressfleet-one-db-password" in one


@pytest.mark.parametrize("args", [
    ["a;rm", "8.2", "self-signed", "a.test"],
    ["../etc", "8.2", "self-signed", "a.test"],
    ["One", "8.2", "self-signed", "a.test"],
    ["one", "8.2;x", "self-signed", "a.test"],
    ["one", "8.2", "none", "a.test"],
    ["one", "8.2", "self-signed", "../../etc"],
    ["one", "8.2", "self-signed", "a.test", "b test"],
    ["one", "8.2", "self-signed"],
    ["a" * 32, "8.2", "self-signed", "a.test"],
])
def test_the_removal_script_refuses_bad_arguments_before_doing_anything(args, tmp_path):
    """Run here with bad arguments only: it must stop at its checks (exit 3, `refused:`), touching nothing."""
    script = (TEMPLATES / "scripts" / "remove_site.sh").read_text()
    r = subprocess.run(["/bin/sh", "-c", script, "sh", *args], capture_output=True, text=True, timeout=30,
                       cwd=tmp_path, env={"PATH": "/nonexistent"})  # no tool is even reachable
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert r.stderr.startswith("refused: ") and r.stdout == ""


def test_a_rerun_after_a_half_way_removal_keeps_the_newest_backup_as_the_final_one():
    from tasks.remove import removal_started

    assert not removal_started(["user", "group", "pool", "vhost", "files", "database", "database-user"])
    assert removal_started(["user", "files"])  # the database went: the removal had begun
    assert removal_started(["database", "database-user"])  # the folder went
    assert removal_started([])
    assert not removal_started(["files", "mariadb-down"])  # cannot tell: the final backup is attempted (and fails)
