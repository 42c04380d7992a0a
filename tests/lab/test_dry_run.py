"""Provisioning dry run and one SSH connection per run, on real lab hosts (issue 10).

A dry run reads the host and reports the diff of every file, the packages and the service actions it would take,
changing nothing: every file's sha256, the packages, users, databases, ACLs and services stay as they were. A flow
run (dry or not) opens one SSH connection to its host.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import connect_lab, make_site, save_copy

pytestmark = pytest.mark.lab

# Everything a dry run must leave alone, as one text: every file's sha256 (links as their target) under the folders
# provisioning writes, ACLs of the web roots, packages, users and groups, MariaDB's users and databases, and the
# stack's services' main PIDs and start times (a restart changes them) and nginx's workers (a reload replaces them).
# Uploads are left out: WordPress itself (its cron timer) makes the month's folder there whenever it likes.
SNAPSHOT = r"""
for d in /etc /var/www /usr/local/lib/pressfleet /var/cache/nginx/pressfleet; do
  [ -d "$d" ] || continue
  find "$d" -xdev -path '*/wp-content/uploads' -prune -o -type f -print0 | sort -z | xargs -0 -r sha256sum
  find "$d" -xdev -path '*/wp-content/uploads' -prune -o -type l -printf '%p -> %l\n' | sort
  find "$d" -xdev -path '*/wp-content/uploads' -prune -o -type d -printf '%p %m %u:%g\n' | sort
done
[ -d /var/www ] && getfacl -Rps /var/www 2>/dev/null | awk 'BEGIN {RS=""; ORS="\n\n"} !/^# file: [^\n]*\/wp-content\/uploads\//' | sha256sum
sha256sum /var/lib/dpkg/status
getent passwd; getent group
command -v mariadb >/dev/null && mariadb -N -e 'SELECT user, host, authentication_string FROM mysql.user; SHOW DATABASES'
for u in nginx php8.2-fpm mariadb redis-server ssh fail2ban nftables; do
  systemctl show -p Id,MainPID,ExecMainStartTimestamp,ActiveState "$u" 2>/dev/null
done
pgrep -f '^nginx: worker' | sort
"""


def snapshot(host) -> str:
    from pressfleet.ssh.remote import run

    with connect_lab(host) as conn:
        return run(conn, ["sh", "-c", SNAPSHOT], timeout=300).stdout


STACK_UNITS = ("nginx.service", "php8.2-fpm.service", "mariadb.service", "redis-server.service", "ssh.service",
               "fail2ban.service", "nftables.service", "acct.service", "sysstat.service")


def reloads_since(host, epoch: int) -> list[str]:
    """systemd's lines about reloading, restarting, stopping or starting a stack unit since EPOCH (a login's own
    user manager coming and going is not one)."""
    from pressfleet.ssh.remote import run

    with connect_lab(host) as conn:
        out = run(conn, ["journalctl", "-q", "-o", "cat", "--since", f"@{epoch}", "_PID=1"], check=False).stdout
    return [ln for ln in out.splitlines() if any(u in ln for u in STACK_UNITS)
            and any(w in ln for w in ("Reload", "Restart", "Stopp", "Start"))]


def host_now(host) -> int:
    from pressfleet.ssh.remote import run

    with connect_lab(host) as conn:
        return int(run(conn, ["date", "+%s"]).stdout)


def test_dry_run_shows_the_diff_of_a_changed_option_and_changes_nothing(provisioned, prefect_harness):
    """Nothing to change: no diff, no package, no action. XML-RPC allowed on the block: the vhost's diff (the deny
    goes, PHP comes), nginx's reload named, and nothing else; every file, package, user and service unchanged.
    The command prints the same. One SSH connection per dry run."""
    from flows.provision_wordpress import provision_wordpress
    from pressfleet.ssh.remote import connections_opened

    server, host = provisioned.server, provisioned.host
    before, since = snapshot(host), host_now(host)

    opened = connections_opened(server.address, server.port)
    same = provision_wordpress(server=server, site=provisioned.site, dry_run=True)
    assert connections_opened(server.address, server.port) - opened == 1
    assert same.dry_run and not same.changed, same.steps
    assert (same.diffs, same.packages, same.actions) == ([], [], [])
    assert not [s for s in same.steps if s["changed"]], same.steps
    assert same.checks == []

    xmlrpc = make_site(allow_xmlrpc=True)
    report = provision_wordpress(server=server, site=xmlrpc, dry_run=True)
    assert report.dry_run and report.changed
    from pressfleet.plan.hostsites import site_record_path

    vhost = provisioned.config.nginx_vhost_path
    # The vhost; fail2ban's XML-RPC jail, which watches only sites that deny it; the site's record of its options.
    diffs = {(d["step"], d["path"]): d["diff"] for d in report.diffs}
    assert set(diffs) == {("nginx", vhost), ("fail2ban", "/etc/fail2ban/jail.local"),
                          ("php", site_record_path(provisioned.config.name))}, report.diffs
    # the XML-RPC jail stops watching this site's log (the whole jail goes when no other site on the host denies it)
    jail = diffs[("fail2ban", "/etc/fail2ban/jail.local")].splitlines()
    assert [ln for ln in jail if ln.startswith("-") and f"/{provisioned.config.name}.access.log" in ln], jail
    assert not [ln for ln in jail if ln.startswith("+") and f"/{provisioned.config.name}.access.log" in ln], jail
    lines = diffs[("nginx", vhost)].splitlines()
    assert lines[:2] == [f"--- {vhost}", f"+++ {vhost}"]
    removed = [ln[1:].strip() for ln in lines if ln.startswith("-") and not ln.startswith("---")]
    added = [ln[1:].strip() for ln in lines if ln.startswith("+") and not ln.startswith("+++")]
    assert "deny all;" in removed and any(ln.startswith("fastcgi_pass") for ln in added), lines
    assert not [ln for ln in added if "deny all" in ln]
    assert "would run `systemctl reload nginx`" in report.actions and report.packages == []
    assert "would run `systemctl reload-or-restart fail2ban`" in report.actions

    # The command: same site, same answer, printed.
    from prefect.settings import PREFECT_API_URL

    save_copy(server, "lab-pf-dry")
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    cli = subprocess.run([sys.executable, "-m", "pressfleet.cli.main", "provision", "lab-pf-dry", "--domain",
                          "blog.lab.test", "--name", "blog", "--email", "admin@lab.test", "--title", "pressfleet test",
                          "--dry-run"], env=env, capture_output=True, text=True, timeout=600)
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "nothing would change" in cli.stdout and "\n--- " not in cli.stdout, cli.stdout[-3000:]

    assert snapshot(host) == before
    assert reloads_since(host, since) == []
    # The live site still denies XML-RPC: no changed vhost was loaded either.
    denied = provisioned.curl("/xmlrpc.php", "-X", "POST", "-o", "/dev/null", "-w", "%{http_code}")
    assert denied.stdout.strip() == "403", denied.stdout + denied.stderr


def test_a_provisioning_run_opens_one_ssh_connection(provisioned, prefect_harness):
    """A whole re-run (every step, the sizing reads and the live-site checks) shares one connection to the host
    (about 12 before: one per task)."""
    from flows.provision_wordpress import provision_wordpress
    from pressfleet.ssh.remote import connections_opened

    server = provisioned.server
    opened = connections_opened(server.address, server.port)
    report = provision_wordpress(server=server, site=provisioned.site)
    assert all(c["passed"] for c in report.checks) and not report.changed, report.steps
    assert connections_opened(server.address, server.port) - opened == 1


def test_dry_run_on_a_fresh_host_lists_the_packages_and_changes_nothing(lab_pool, prefect_harness):
    """A pristine host: the dry run lists the stack's packages and new files, installs nothing, creates no user,
    folder or Secret block."""
    from prefect.blocks.system import Secret

    from flows.provision_wordpress import provision_wordpress
    from pressfleet.lab.blocks import server_for
    from pressfleet.ssh.remote import connections_opened
    from tasks.base import stack_packages

    host = lab_pool.fresh("dry")
    server = server_for(host)
    site = make_site(name="fresh_dry", domain="fresh.dry.test")
    before = snapshot(host)
    opened = connections_opened(server.address, server.port)
    report = provision_wordpress(server=server, site=site, dry_run=True)
    assert connections_opened(server.address, server.port) - opened == 1
    assert report.dry_run and report.changed
    packages = set(report.packages)
    assert {"nginx", "mariadb-server", "redis-server", "php8.2-fpm", "fail2ban"} <= packages
    assert packages <= set(stack_packages()), packages - set(stack_packages())
    new_files = {d["path"] for d in report.diffs if d["diff"].startswith("--- /dev/null")}
    assert site.config().nginx_vhost_path in new_files
    wp_config = [d for d in report.diffs if d["path"].endswith("/wp-config.php")]
    assert wp_config and "hidden" in wp_config[0]["diff"] and "DB_PASSWORD" not in wp_config[0]["diff"]
    assert any("install WordPress from" in a for a in report.actions), report.steps
    assert snapshot(host) == before
    with connect_lab(host) as conn:
        from pressfleet.ssh.remote import run

        assert not run(conn, ["test", "-e", "/var/www/fresh_dry"], check=False).ok
        assert not run(conn, ["id", "fresh_dry"], check=False).ok
    with pytest.raises(ValueError):
        Secret.load("pressfleet-fresh-dry-db-password")
    lab_pool.stop("dry")


def test_streams_report_their_bytes_to_a_progress_listener(provisioned):
    """What `pressfleet backup` and the restores show: every byte a stream moves reaches the listener, from the
    host (a part being backed up) and to it (a part being restored)."""
    import io

    from pressfleet.backup.streams import on_bytes, pipe_to_remote, remote_reader

    got: list[int] = []
    with connect_lab(provisioned.host) as conn:
        with on_bytes(got.append):
            with remote_reader(conn, ["head", "-c", "3000000", "/dev/zero"]) as part:
                assert len(part.read()) == 3_000_000
        assert sum(got) == 3_000_000 and len(got) > 1
        sent: list[int] = []
        with on_bytes(sent.append):
            assert pipe_to_remote(conn, ["wc", "-c"], io.BytesIO(b"x" * 2_500_000)).strip() == "2500000"
        assert sum(sent) == 2_500_000
        with remote_reader(conn, ["head", "-c", "1000", "/dev/zero"]) as quiet:  # nobody listening: nothing counted
            quiet.read()
    assert sum(got) == 3_000_000
