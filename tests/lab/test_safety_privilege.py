"""Privilege and isolation on a real lab host (issue 9, items 1-3), the session's `writable_host` (provisioned once,
shared with the re-provisioning module) with "PHP may write only to uploads" off (the site's user owns its web
root) and two human SSH accounts.

1. The site's user plants links at every side-file name root uses (last-good, new, absent) and at a folder on
   the way, pointing at root's files outside the site: provisioning refuses, nothing outside the site changes.
2. nginx (www-data) reads static files and nothing else: not wp-config.php; no other site's user reads it.
3. sshd allows groups: a human admin in `sudo` and one named on the Server block keep their access through
   provisioning and re-provisioning; an account that would be locked out stops the step before any change; a
   config whose fresh-login proof fails is rolled back.
"""

from __future__ import annotations

import hashlib
import subprocess

import pytest

from pressfleet.ssh import converge
from pressfleet.ssh import remote
from pressfleet.render import configs as render
from pressfleet.ssh.converge import ManagedFile
from pressfleet.ssh.remote import run
from pressfleet.fleet.siteconfig import SiteConfig
from tests.conftest import add_human

pytestmark = pytest.mark.lab

SSHD_DROPIN = "/etc/ssh/sshd_config.d/00-pressfleet.conf"
# Root's own files outside the site, the kind a link would aim at (apt.systemd.daily runs daily as root).
SENTINELS = ["/usr/local/lib/pf-sentinel-last-good", "/etc/pf-sentinel-new", "/usr/local/lib/pf-sentinel-absent",
             "/usr/lib/apt/apt.systemd.daily", "/etc/shadow"]


def login_as(server, user: str, private_key: str) -> str:
    """Log in as USER with their own key (the host key pinned as for pressfleet) and return `id -un`."""
    connected = remote.connect(server.address, port=server.port, user=user, private_key=private_key,
                               host_key=server.host_key)
    try:
        return run(connected.connection, ["id", "-un"]).stdout.strip()
    finally:
        connected.connection.close()


def hashes(conn, paths: list[str]) -> dict[str, str]:
    out = run(conn, ["sha256sum", "--", *paths]).stdout
    return {line.split()[1]: line.split()[0] for line in out.splitlines()}


@pytest.fixture(scope="module")
def host(writable_host):
    """The session's writable_host (tests/conftest.py: its site `priv` with PHP writing everywhere, alice in sudo,
    bob on the Server block), with a connection of this module's."""
    writable_host.conn = writable_host.server.connect()
    yield writable_host
    writable_host.conn.close()


def curl(h, path: str) -> subprocess.CompletedProcess:
    domain = h.site.config().domain
    return subprocess.run(["curl", "-ks", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20", "--resolve",
                           f"{domain}:443:{h.lab.address}", f"https://{domain}{path}"],
                          capture_output=True, text=True, timeout=60)


def test_human_accounts_keep_ssh_access_and_sshd_allows_groups(host):
    assert all(c["passed"] for c in host.report.checks), host.report.checks
    sshd = run(host.conn, ["sshd", "-T"]).stdout.lower()
    lines = sshd.splitlines()  # sshd -T prints one line per allowed group
    assert "allowgroups pressfleet-ssh" in lines and "allowgroups sudo" in lines and "allowusers" not in sshd
    assert login_as(host.server, "alice", host.keys["alice"]) == "alice"   # kept through the sudo group
    assert login_as(host.server, "bob", host.keys["bob"]) == "bob"         # named on the Server block
    assert "pressfleet-ssh" in run(host.conn, ["id", "-nG", "bob"]).stdout.split()


def test_root_never_writes_through_links_the_site_user_planted(host):
    from flows.provision_wordpress import provision_wordpress

    conn, cfg = host.conn, host.site.config()
    content = f"{cfg.web_root}/wp-content"
    obj, mu = f"{content}/object-cache.php", f"{content}/mu-plugins/pressfleet-cache-purge.php"
    assert run(conn, ["stat", "-c", "%U", content]).stdout.strip() == cfg.user  # the site's user owns the folder
    run(conn, ["sh", "-c", 'for f in "$@"; do [ -e "$f" ] || echo sentinel > "$f"; done', "sh", *SENTINELS[:3]])
    before = hashes(conn, SENTINELS)
    # Root still manages object-cache.php (pressfleet's drop-in): an older copy of it is on the host.
    run(conn, ["sh", "-c", 'echo "// an older drop-in" >> "$1"', "sh", obj])
    # The site's user removes the mu-plugin (root will put it back) and plants links at every side-file name.
    plant = ('set -e; ln -s "$3" "$1.pressfleet-last-good"; ln -s "$4" "$1.pressfleet-new"; rm -f "$2"; '
             'ln -s "$5" "$2.pressfleet-absent"; ln -s "$6" "$2.pressfleet-last-good"')
    run(conn, ["runuser", "-u", cfg.user, "--", "sh", "-c", plant, "sh", obj, mu, SENTINELS[0], SENTINELS[1],
               SENTINELS[3], SENTINELS[2]])
    obj_before = hashes(conn, [obj])

    with pytest.raises(Exception, match="symbolic link"):
        provision_wordpress(server=host.server, site=host.site, components=["wordpress"], verify=False)
    assert hashes(conn, SENTINELS) == before
    assert hashes(conn, [obj]) == obj_before                       # refused: nothing changed
    assert not run(conn, ["test", "-e", mu], check=False).ok

    # A folder on the way swapped for a link (mu-plugins -> /etc/cron.d): refused, nothing lands there.
    cron_before = run(conn, ["ls", "-A", "/etc/cron.d"]).stdout
    run(conn, ["runuser", "-u", cfg.user, "--", "sh", "-c",
               'mv "$1/mu-plugins" "$1/mu-plugins.moved" && ln -s /etc/cron.d "$1/mu-plugins"', "sh", content])
    with pytest.raises(converge.UnsafePath, match="mu-plugins is a symbolic link"):
        converge.ensure_files(conn, [ManagedFile(mu, b"<?php\n", 0o640, "root", cfg.group)])
    assert run(conn, ["ls", "-A", "/etc/cron.d"]).stdout == cron_before
    run(conn, ["runuser", "-u", cfg.user, "--", "sh", "-c",
               'rm "$1/mu-plugins" && mv "$1/mu-plugins.moved" "$1/mu-plugins"', "sh", content])

    # The links gone, a full re-provisioning completes: root's files are back, still root's, nothing outside changed.
    run(conn, ["runuser", "-u", cfg.user, "--", "sh", "-c", 'rm -f "$1".pressfleet-* "$2".pressfleet-*', "sh", obj, mu])
    report = provision_wordpress(server=host.server, site=host.site)
    assert all(c["passed"] for c in report.checks), report.checks
    assert hashes(conn, SENTINELS) == before
    assert "an older drop-in" not in run(conn, ["cat", obj]).stdout
    assert run(conn, ["stat", "-c", "%U %h", obj, mu]).stdout.split() == ["root", "1", "root", "1"]
    # ... and the human accounts kept their access through the re-provisioning.
    assert login_as(host.server, "alice", host.keys["alice"]) == "alice"
    assert login_as(host.server, "bob", host.keys["bob"]) == "bob"


def test_nginx_reads_static_files_and_nobody_else_reads_wp_config(host):
    conn, cfg = host.conn, host.site.config()
    assert cfg.user not in run(conn, ["id", "-nG", "www-data"]).stdout.split()
    assert not run(conn, ["runuser", "-u", "www-data", "--", "cat", cfg.wp_config_path], check=False).ok
    # Another site's user on the same host.
    from tasks.wordpress import ensure_site_user

    other = SiteConfig(name="other", domain="other.lab.test", admin_email="admin@lab.test")
    ensure_site_user(conn, other)
    assert not run(conn, ["runuser", "-u", other.user, "--", "cat", cfg.wp_config_path], check=False).ok
    assert not run(conn, ["runuser", "-u", other.user, "--", "ls", cfg.web_root], check=False).ok
    assert run(conn, ["runuser", "-u", cfg.user, "--", "cat", cfg.wp_config_path], check=False).ok  # PHP's own
    # nginx serves the site and its static files, an upload made after provisioning included (default ACLs).
    assert curl(host, "/").stdout == "200"
    assert curl(host, "/wp-includes/images/blank.gif").stdout == "200"
    run(conn, ["runuser", "-u", cfg.user, "--", "sh", "-c", 'printf GIF89a > "$1"', "sh",
               f"{cfg.uploads_dir}/later.gif"])
    assert curl(host, "/wp-content/uploads/later.gif").stdout == "200"
    assert run(conn, ["runuser", "-u", "www-data", "--", "cat", f"{cfg.uploads_dir}/later.gif"], check=False).ok
    assert not run(conn, ["runuser", "-u", "www-data", "--", "ls", f"{cfg.home}"], check=False).ok  # pass, not list
    # A file the site's user makes private (chmod 600, as WordPress and PHP do) stays closed to nginx through
    # re-runs; a re-run changes nothing for the uploads made meanwhile.
    run(conn, ["runuser", "-u", cfg.user, "--", "sh", "-c", 'echo private > "$1" && chmod 600 "$1"', "sh",
               f"{cfg.uploads_dir}/private.txt"])
    from flows.provision_wordpress import provision_wordpress

    report = provision_wordpress(server=host.server, site=host.site, components=["nginx"], verify=False)
    assert not report.changed, report.steps
    assert not run(conn, ["runuser", "-u", "www-data", "--", "cat", f"{cfg.uploads_dir}/private.txt"], check=False).ok


def test_lockout_is_refused_and_a_failed_login_proof_rolls_back(host):
    from tasks.security import harden_ssh

    conn, server = host.conn, host.server
    good = hashes(conn, [SSHD_DROPIN])
    desired = render.render_sshd_conf(allow_groups=server.ssh_login_groups(), port=server.port)
    # carol has keys and is in no allowed group: the step stops, naming her, before anything changes.
    add_human(conn, "carol", [])
    with pytest.raises(ValueError, match="would lock out carol"):
        harden_ssh.fn(server, [ManagedFile(SSHD_DROPIN, desired.encode() + b"# changed\n")], group=server.ssh_group,
                      admins=server.ssh_admins, allow_groups=server.ssh_allow_groups)
    assert hashes(conn, [SSHD_DROPIN]) == good
    assert "pressfleet-ssh" not in run(conn, ["id", "-nG", "carol"]).stdout.split()
    run(conn, ["rm", "-f", "/home/carol/.ssh/authorized_keys"])
    # A config that passes `sshd -t` but lets nobody of pressfleet's in: the fresh login fails, the previous
    # config goes back, sshd reloads, and access works again.
    locked = render.render_sshd_conf(allow_groups=["pf-nobody"], port=server.port)
    with pytest.raises(converge.ProofFailed, match="previous files are back"):
        harden_ssh.fn(server, [ManagedFile(SSHD_DROPIN, locked.encode())], group=server.ssh_group,
                      admins=server.ssh_admins, allow_groups=server.ssh_allow_groups)
    assert hashes(conn, [SSHD_DROPIN]) == good
    fresh = server.connect()
    try:
        assert run(fresh, ["true"]).ok
    finally:
        fresh.close()
    assert login_as(server, "alice", host.keys["alice"]) == "alice"
