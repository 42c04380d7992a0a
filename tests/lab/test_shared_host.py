"""Two sites on one host: host-wide files come from every site on it, pools share the PHP budget, each site
has its own rotated logs, and re-provisioning the first site after the second changes nothing."""

from __future__ import annotations

import re
import time

import pytest

from pressfleet.render.configs import php_error_log_path, php_slowlog_path
from pressfleet.ssh.remote import run
from tests.conftest import connect_lab

pytestmark = pytest.mark.lab


def _children(conn, site) -> int:
    text = run(conn, ["cat", site.php_pool_path]).stdout
    return int(re.search(r"^pm\.max_children = (\d+)$", text, re.M).group(1))


def test_two_sites_share_the_host_and_each_stays_protected(shared_host):
    one, two = shared_host.one.config, shared_host.two.config
    for p in (shared_host.one, shared_host.two):
        r = p.curl("/", "-o", "/dev/null", "-w", "%{http_code}")
        assert r.stdout == "200", (p.config.domain, r.stdout, r.stderr)

    with connect_lab(shared_host.host) as conn:
        # fail2ban's WordPress jails watch both sites' logs (provisioning two did not drop one's).
        status = run(conn, ["fail2ban-client", "status", "pressfleet-wordpress-login"]).stdout
        for s in (one, two):
            assert f"/var/log/nginx/{s.name}.access.log" in status, status
        xmlrpc = run(conn, ["fail2ban-client", "status", "pressfleet-wordpress-xmlrpc"]).stdout
        assert f"/var/log/nginx/{one.name}.access.log" in xmlrpc and f"/var/log/nginx/{two.name}.access.log" in xmlrpc

        # Both pools split the PHP budget; process.max is their sum; the artifact's report says what changed.
        c1, c2 = _children(conn, one), _children(conn, two)
        assert c1 == c2
        glob = run(conn, ["cat", f"/etc/php/{one.php_version}/fpm/pool.d/00-pressfleet-global.conf"]).stdout
        assert f"process.max = {c1 + c2}" in glob, glob
        notes = [n for step in shared_host.two.report.steps if step["name"].startswith("php") for n in step["notes"]]
        assert any(n.startswith("re-sized pools:") and f"{one.name} " in n and "workers" in n for n in notes), notes
        assert shared_host.two.report.host_sites == sorted([one.name, two.name])

        # Each site's PHP error and slow logs exist, in their own files, and logrotate takes them (and nginx's).
        for s in (one, two):
            run(conn, ["test", "-f", php_slowlog_path(s)])
            owner = run(conn, ["stat", "-c", "%U", php_error_log_path(s)]).stdout.strip()
            assert owner == s.user, (s.name, owner)
        ours = run(conn, ["logrotate", "-d", "/etc/logrotate.d/pressfleet-sites"], check=False)
        assert ours.ok and "error:" not in ours.stdout + ours.stderr, ours.stdout + ours.stderr
        for s in (one, two):  # logrotate drops to the site's user for the file in the site's folder
            uid = run(conn, ["id", "-u", s.user]).stdout.strip()
            assert f"switching euid from 0 to {uid} " in ours.stderr + ours.stdout, s.user
        # The whole configuration (Debian's nginx rule takes the per-site nginx logs): none of the sites' logs
        # is refused (another package's rule may complain about its own files on a lab host).
        whole = run(conn, ["logrotate", "-d", "/etc/logrotate.conf"], check=False)
        out = whole.stdout + whole.stderr
        errors = [ln for ln in out.splitlines() if ln.startswith("error:")]
        for s in (one, two):
            for path in (php_slowlog_path(s), php_error_log_path(s), f"/var/log/nginx/{s.name}.access.log",
                         f"/var/log/nginx/{s.name}.error.log"):
                assert f"considering log {path}" in out, (path, errors, out[-2000:])
                assert not [ln for ln in errors if path in ln or s.home in ln], errors
        assert not [ln for ln in errors if "pressfleet" in ln], errors
        conf = run(conn, ["cat", "/etc/pressfleet/logrotate-sites.conf"]).stdout
        for s in (one, two):
            assert f"su {s.user} {s.group}" in conf

    # Re-provisioning site one now that two is there changes nothing, and two keeps its pool and jail.
    from flows.provision_wordpress import provision_wordpress

    started = time.monotonic()
    again = provision_wordpress(server=shared_host.server, site=shared_host.one.site)
    seconds = time.monotonic() - started
    print(f"re-provision of {one.domain} with {two.domain} on the host: {seconds:.1f} s")
    changed = {s["name"]: s["changed"] for s in again.steps if s["changed"]}
    assert not again.changed, changed
    assert again.host_sites == sorted([one.name, two.name])
    with connect_lab(shared_host.host) as conn:
        assert _children(conn, two) == c2
        status = run(conn, ["fail2ban-client", "status", "pressfleet-wordpress-login"]).stdout
        assert f"/var/log/nginx/{two.name}.access.log" in status
