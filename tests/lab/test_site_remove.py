"""Servers and sites from a terminal, on the session's shared host (issue 10): `server add` pins the key the lab
host presents, `server list` and `site list` show the fleet, `site remove` takes a throwaway third site off the
host after a final backup (its user, pool, database, vhost, secrets and block gone; a link it planted is not
followed) while the host's other two sites keep serving their content, and `server remove` is refused while
sites use the server."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pressfleet.ssh.remote import run
from tests.conftest import connect_lab, make_site

pytestmark = pytest.mark.lab

THIRD = dict(name="three_lab_test", domain="three.lab.test", title="pressfleet throwaway site")
SERVER_BLOCK = "shared-again"


def cli(*args: str, ok: bool = True, input: str | None = None):
    from pressfleet.cli.main import app

    result = CliRunner().invoke(app, list(args), input=input)
    if ok:
        assert result.exit_code == 0, (args, result.output, result.exception)
    return result


def on_host(host, script: str, *args: str, check: bool = True) -> str:
    with connect_lab(host) as conn:
        return run(conn, ["sh", "-c", script, "sh", *args], check=check).stdout


def test_server_add_list_site_list_and_remove_a_third_site(shared_host, prefect_harness, tmp_path):
    from blocks.server import Server
    from blocks.storage import LocalStorage
    from flows.provision_wordpress import provision_wordpress
    from prefect.blocks.system import Secret
    from pressfleet.backup import catalog
    from pressfleet.backup.crypto import new_key_text
    from pressfleet.fleet.saved import saved_block_names
    from pressfleet.fleet.sites import saved_sites, site_block_name
    from pressfleet.lab import hosts as lab

    host, server = shared_host.host, shared_host.server
    one, two = shared_host.one, shared_host.two
    (tmp_path / "backups").mkdir()
    LocalStorage(path=str(tmp_path / "backups"), encryption="required").save("remove-test-backups", overwrite=True)
    key_text = new_key_text()
    Secret(value=key_text).save("remove-test-key", overwrite=True)
    storage = ["--storage", "remove-test-backups", "--key", "remove-test-key"]

    # a throwaway third site on the shared host, saved as `pressfleet provision` saves it
    third = make_site(**THIRD, server=server)
    third.save(site_block_name(THIRD["name"]), overwrite=True)
    provision_wordpress(server=server, site=third)
    cfg3 = third.config()
    # plant links in the third site's uploads (as its user could) to a file and a folder of site one
    keep = f"{one.config.uploads_dir}/keep-{THIRD['name']}.txt"
    on_host(host, 'set -e; echo kept > "$1"; chown "$2:$2" "$1"; '
                  'runuser -u "$3" -- ln -s "$1" "$4/link-to-one"; runuser -u "$3" -- ln -s "$5" "$4/dir-of-one"',
            keep, one.config.user, cfg3.user, cfg3.uploads_dir, one.config.web_root)
    before = {p.config.domain: p.curl("/").stdout for p in (one, two)}
    for p, title in ((one, one.site.title), (two, two.site.title)):
        assert title in before[p.config.domain], p.config.domain

    # server add: a wrong --host-key is refused and nothing is saved; trust on first use pins the lab host's key
    other_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMrFj9uuOmiW1ytfzvBbl1oUW6fnlIssF2EgJ6MF8uXv"
    assert other_key != host.host_key
    add = ["server", "add", SERVER_BLOCK, "--address", host.address, "--port", str(host.port), "--user", host.user,
           "--key-file", host.private_key_path]
    refused = cli(*add, "--host-key", other_key, ok=False)
    assert refused.exit_code == 1 and "nothing saved" in refused.output, refused.output
    assert SERVER_BLOCK not in saved_block_names("server")
    added = cli(*add, "--trust-on-first-use")
    listed = {h["name"]: h for h in lab.list_hosts()}
    assert listed[host.name]["fingerprint"] == host.fingerprint
    assert f"presented host key {host.fingerprint}: pinned on trust on first use" in added.output, added.output
    assert Server.load(SERVER_BLOCK).host_key == host.host_key and not Server.load(SERVER_BLOCK).trust_on_first_use
    assert "Debian GNU/Linux 12" in added.output  # host-facts ran on the saved block

    try:
        rows = {r["name"]: r for r in json.loads(cli("server", "list", "--json").stdout)}
        assert rows[SERVER_BLOCK]["fingerprint"] == host.fingerprint
        assert {one.config.domain, two.config.domain, cfg3.domain} <= set(rows[SERVER_BLOCK]["sites"])

        sites = {r["domain"]: r for r in json.loads(cli("site", "list", "--json", *storage).stdout)}
        recorded = on_host(host, 'sed -n "s/^version=//p" "$1"', f"{one.config.home}/.pressfleet-release").strip()
        assert recorded and sites[one.config.domain]["wordpress"] == recorded
        # the third site holds the host's server itself (not a reference), so it is listed under a saved block at
        # that address: other tests of the session save the same host under other names too
        at_host = {r["name"] for r in rows.values() if cfg3.domain in r["sites"]}
        assert SERVER_BLOCK in at_host and sites[cfg3.domain]["server"] in at_host, (at_host, sites[cfg3.domain])
        assert sites[cfg3.domain]["last_backup"] == "never"

        # server remove is refused while sites use it, naming them
        refused = cli("server", "remove", SERVER_BLOCK, ok=False)
        assert refused.exit_code == 1 and one.config.domain in refused.output and cfg3.domain in refused.output

        # not confirmed, or the final backup fails (a key that is no key): nothing is removed
        refused = cli("site", "remove", cfg3.domain, *storage, input="n\n", ok=False)
        assert refused.exit_code == 1 and "not confirmed" in refused.output, refused.output
        Secret(value="not a key").save("remove-test-bad-key", overwrite=True)
        refused = cli("site", "remove", cfg3.domain, "--yes", "--storage", "remove-test-backups",
                      "--key", "remove-test-bad-key", ok=False)
        assert refused.exit_code == 1 and "final backup" in refused.output and "nothing was removed" in refused.output
        assert on_host(host, 'id -u "$1" >/dev/null && test -f "$2" && echo there', cfg3.user,
                       cfg3.wp_config_path).strip() == "there"
        assert cfg3.domain in {s.domain for s in saved_sites()}

        removed = cli("site", "remove", cfg3.domain, "--yes", *storage)
        out = removed.output

        # the final backup is there, full, and the listing said where
        entries = catalog.list_backups(LocalStorage.load("remove-test-backups").store(), cfg3.name, key_text)
        assert entries and entries[-1].manifest.kind == "full"
        assert f"final backup {entries[-1].manifest.backup_id}" in out, out

        # nothing of the third site is left: user, group, pool, vhost, cron, files, database, secrets, block
        left = on_host(host, r'''
            id -u "$1" >/dev/null 2>&1 && echo user; getent group "$1" >/dev/null && echo group
            ls /etc/php/8.2/fpm/pool.d/ /etc/nginx/sites-enabled/ /etc/nginx/sites-available/ /etc/systemd/system/ \
              /var/log/nginx/ /etc/pressfleet/sites/ | grep -F "$1"
            [ -e "/var/www/$1" ] && echo files; grep -F "$2" /etc/hosts
            mariadb --batch --skip-column-names -e "SHOW DATABASES; SELECT User FROM mysql.user" | grep -xF "$1"
            grep -F "$1" /etc/fail2ban/jail.local /etc/logrotate.d/pressfleet-sites /etc/redis/users.acl
            true''', cfg3.name, cfg3.domain)
        assert left.strip() == "", left
        secrets = [b for b in saved_block_names("secret") if b.startswith("pressfleet-three-lab-test-")]
        assert secrets == []
        assert cfg3.domain not in {s.domain for s in saved_sites()}
        assert cfg3.domain not in cli("site", "list", *storage).stdout

        # the links it planted were removed, not followed; the other sites serve their content as before
        assert on_host(host, 'cat "$1"; ls "$2" | grep -c .', keep, one.config.web_root).split()[0] == "kept"
        for p in (one, two):
            after = p.curl("/")
            assert p.site.title in after.stdout, (p.config.domain, after.stdout[:300])
            assert p.curl("/", "-o", "/dev/null", "-w", "%{http_code}").stdout == "200"
        services = on_host(host, 'for s in nginx php8.2-fpm fail2ban mariadb; do systemctl is-active "$s"; done')
        assert services.split() == ["active"] * 4, services

        # a second run on the host finds nothing to do (the removal is idempotent)
        from tasks.remove import remove_from_host

        assert remove_from_host(server, cfg3) == []

        # the server still carries two sites: still refused
        refused = cli("server", "remove", SERVER_BLOCK, ok=False)
        assert refused.exit_code == 1 and two.config.domain in refused.output
    finally:
        on_host(host, 'rm -f "$1"', keep, check=False)
        if SERVER_BLOCK in saved_block_names("server"):
            Server.delete(SERVER_BLOCK)
