"""provision_wordpress on real Debian 12 lab hosts: pristine host to a hardened, cached WordPress site
that answers 200 over HTTPS; a re-run changes nothing; bad input changes nothing; a dropped connection
half-way completes on re-run; fail2ban really bans an attacking host."""

from __future__ import annotations

import re
import socket
import subprocess
import time

import pytest

from pressfleet.ssh import converge, redisacl
from pressfleet.ssh.converge import ManagedFile
from pressfleet.ssh.remote import run
from tasks.checks import REQUIRED_HEADERS
from tasks.wordpress import bootstrap
from tests.conftest import connect_lab, make_site, save_copy

pytestmark = pytest.mark.lab


def headers_of(text: str) -> tuple[int, dict[str, str]]:
    lines = text.replace("\r", "").split("\n")
    status = int(lines[0].split()[1])
    return status, {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}


@pytest.fixture
def conn(provisioned):
    c = connect_lab(provisioned.host)
    yield c
    c.close()


def test_site_answers_200_over_https_with_every_header(provisioned):
    assert all(c["passed"] for c in provisioned.report.checks), provisioned.report.checks
    status, headers = headers_of(provisioned.curl("/", "-D", "-", "-o", "/dev/null").stdout)
    assert status == 200
    for name in REQUIRED_HEADERS:
        assert name in headers, name
    assert headers["strict-transport-security"].startswith("max-age=31536000")
    assert "frame-ancestors 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    # HTTP/2 and compression
    out = provisioned.curl("/", "-D", "-", "-o", "/dev/null", "--http2", "-H", "Accept-Encoding: gzip").stdout
    assert out.startswith("HTTP/2 200")
    assert "content-encoding: gzip" in out.lower()
    # HTTP redirects to HTTPS
    status, headers = headers_of(provisioned.curl("/x?y=1", "-D", "-", "-o", "/dev/null", scheme="http").stdout)
    assert status == 301 and headers["location"] == "https://blog.lab.test/x?y=1"


def test_second_request_is_a_cache_hit_and_bypasses_hold(provisioned):
    provisioned.curl("/")
    _, first = headers_of(provisioned.curl("/", "-D", "-", "-o", "/dev/null").stdout)
    assert first["x-cache-status"] == "HIT"
    out = provisioned.curl("/", "-D", "-", "-o", "/dev/null", "-H", "Cookie: wordpress_logged_in_abc=1").stdout
    assert headers_of(out)[1].get("x-cache-status") == "BYPASS"
    # POST is never looked up in the cache (fastcgi_cache_methods GET HEAD): no cache status at all.
    out = provisioned.curl("/", "-D", "-", "-o", "/dev/null", "-X", "POST").stdout
    assert headers_of(out)[1].get("x-cache-status") is None
    out = provisioned.curl("/?s=hello", "-D", "-", "-o", "/dev/null").stdout
    assert headers_of(out)[1].get("x-cache-status") == "BYPASS"


def test_publishing_purges_the_cached_home_page(provisioned, conn):
    provisioned.curl("/")
    assert "HIT" in provisioned.curl("/", "-D", "-", "-o", "/dev/null").stdout
    title = f"Fresh post {time.time_ns()}"
    php = ("<?php define('ABSPATH', '/var/www/blog/htdocs/'); $_SERVER['HTTP_HOST'] = 'blog.lab.test';"
           "require ABSPATH . 'wp-load.php'; $t = stream_get_contents(STDIN);"
           "echo wp_insert_post(['post_title' => $t, 'post_status' => 'publish', 'post_content' => 'x']);")
    run(conn, ["runuser", "-u", "blog", "--", "php", "-r", php[len("<?php "):]], stdin=title)
    body = provisioned.curl("/").stdout
    assert title in body  # the mu-plugin purged the stale cached copy on publish


def test_admin_login_works_over_https(provisioned, tmp_path):
    from pressfleet.fleet.secrets import site_secrets

    password = site_secrets("blog").admin_password
    jar = tmp_path / "jar"
    provisioned.curl("/wp-login.php", "-c", str(jar), "-o", "/dev/null")
    # The password goes on curl's stdin (never on a command line).
    proc = subprocess.run(
        ["curl", "-ksS", "--resolve", f"blog.lab.test:443:{provisioned.host.address}", "-b", str(jar), "-c", str(jar),
         "-D", "-", "-o", "/dev/null", "--data-urlencode", "log=admin", "--data-urlencode", "pwd@-",
         "--data", "testcookie=1", "https://blog.lab.test/wp-login.php"],
        input=password, capture_output=True, text=True, timeout=60)
    status, headers = headers_of(proc.stdout)
    assert status == 302 and headers["location"].startswith("https://blog.lab.test/wp-admin")
    assert "wordpress_logged_in_" in jar.read_text()
    admin = provisioned.curl("/wp-admin/", "-b", str(jar), "-D", "-", "-o", "/dev/null").stdout
    assert headers_of(admin)[0] == 200
    wrong = subprocess.run(
        ["curl", "-ksS", "--resolve", f"blog.lab.test:443:{provisioned.host.address}", "-D", "-", "-o", "/dev/null",
         "--data-urlencode", "log=admin", "--data-urlencode", "pwd=wrong", "https://blog.lab.test/wp-login.php"],
        capture_output=True, text=True, timeout=60)
    assert headers_of(wrong.stdout)[0] == 200  # the login form again, no session


def test_redis_object_cache_has_keys_and_hits(provisioned, conn):
    provisioned.curl("/?cache-bypass=1")
    provisioned.curl("/?cache-bypass=2")
    assert redisacl.count_site_keys(conn, "blog") > 10
    # as pressfleet's Redis admin: the default user is off (tests/lab/test_redis_acl.py)
    info = run(conn, ["sh", "-c", 'REDISCLI_AUTH=$(cat "$1") redis-cli --user pf_admin info stats', "sh",
                      redisacl.ADMIN_SECRET]).stdout
    stats = dict(ln.split(":", 1) for ln in info.split() if ":" in ln)
    hits, misses = int(stats["keyspace_hits"]), int(stats["keyspace_misses"])
    assert hits / (hits + misses) > 0


def test_site_health_has_no_critical_issue_but_the_internet_ones(provisioned, conn):
    results = bootstrap(conn, provisioned.config, "site-health")
    critical = {name for name, r in results.items() if r["status"] == "critical"}
    # Lab hosts have no route to the internet: WordPress cannot reach wordpress.org. With PHP allowed to
    # write only to uploads (the default hardening), WordPress cannot update itself: pressfleet updates it.
    expected = {"dotorg_communication", "background_updates"}
    assert critical <= expected, {n: results[n] for n in critical - expected}
    assert results["https_status"]["status"] == "good"
    assert results["loopback_requests"]["status"] == "good"
    assert results["php_extensions"]["status"] == "good"


def test_wordpress_cron_runs_from_a_systemd_timer(provisioned, conn):
    assert "define( 'DISABLE_WP_CRON', true );" in run(conn, ["cat", "/var/www/blog/wp-config.php"]).stdout
    assert run(conn, ["systemctl", "is-enabled", "pressfleet-wp-cron-blog.timer"]).stdout.strip() == "enabled"
    assert run(conn, ["systemctl", "is-active", "pressfleet-wp-cron-blog.timer"]).stdout.strip() == "active"
    run(conn, ["systemctl", "start", "pressfleet-wp-cron-blog.service"], timeout=120)
    result = run(conn, ["systemctl", "show", "-p", "Result", "--value", "pressfleet-wp-cron-blog.service"]).stdout.strip()
    assert result == "success"


def test_hardening_is_in_place(provisioned, conn):
    sshd = run(conn, ["sshd", "-T"]).stdout.lower()
    for line in ["passwordauthentication no", "kbdinteractiveauthentication no", "permitrootlogin without-password",
                 "maxauthtries 3", "allowgroups pressfleet-ssh", "x11forwarding no", "allowtcpforwarding no"]:
        assert line in sshd, line
    assert "chacha20-poly1305@openssh.com" in sshd and "3des" not in sshd and "hmac-sha1," not in sshd
    ruleset = run(conn, ["nft", "list", "table", "inet", "pressfleet"]).stdout
    assert "policy drop" in ruleset and "tcp dport { 80, 443 } accept" in ruleset
    jails = run(conn, ["fail2ban-client", "status"]).stdout
    for jail in ["sshd", "recidive", "nginx-botsearch", "pressfleet-wordpress-login", "pressfleet-wordpress-xmlrpc"]:
        assert jail in jails, jail
    # MariaDB and Redis listen on loopback only, and the firewall drops anything but 22/80/443 anyway.
    for port in (3306, 6379):
        with pytest.raises(OSError):
            socket.create_connection((provisioned.host.address, port), timeout=2).close()
    wp_config = run(conn, ["stat", "-c", "%a %U %G", "/var/www/blog/wp-config.php"]).stdout.split()
    assert wp_config == ["440", "root", "blog"]
    assert "define( 'DISALLOW_FILE_EDIT', true );" in run(conn, ["cat", "/var/www/blog/wp-config.php"]).stdout
    pool = run(conn, ["cat", "/etc/php/8.2/fpm/pool.d/blog.conf"]).stdout
    assert re.search(r"^user = blog$", pool, re.M) and "pm.max_children" in pool
    # The site's user can write uploads and nothing else of the site.
    assert run(conn, ["runuser", "-u", "blog", "--", "touch", "/var/www/blog/htdocs/wp-content/uploads/ok"], check=False).ok
    assert not run(conn, ["runuser", "-u", "blog", "--", "touch", "/var/www/blog/htdocs/evil.php"], check=False).ok
    assert not run(conn, ["test", "-e", "/etc/php/8.2/fpm/pool.d/www.conf"], check=False).ok
    for path, status in [("/xmlrpc.php", 403), ("/.env", 403), ("/db.sql", 403), ("/readme.html", 403)]:
        got = headers_of(provisioned.curl(path, "-D", "-", "-o", "/dev/null").stdout)[0]
        assert got == status, path
    assert "APT::Periodic::Unattended-Upgrade \"1\";" in run(conn, ["cat", "/etc/apt/apt.conf.d/20auto-upgrades"]).stdout


def test_rerun_changes_nothing_and_says_so(provisioned, prefect_harness):
    from prefect.client.orchestration import get_client
    from flows.provision_wordpress import provision_wordpress

    report = provision_wordpress(server=provisioned.server, site=provisioned.site)
    assert report.changed is False, [s for s in report.steps if s["changed"]]
    assert all(c["passed"] for c in report.checks)

    import asyncio

    async def latest_markdown():
        async with get_client() as client:
            from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
            arts = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["provision-blog"])))
            return sorted(arts, key=lambda a: a.created)[-1].data

    markdown = asyncio.run(latest_markdown())
    assert "Nothing to change" in markdown and "| nginx | no |" in markdown and "https://blog.lab.test/" in markdown


def test_failed_config_is_never_reloaded_and_previous_stays(provisioned, conn):
    vhost = provisioned.config.nginx_vhost_path
    good = run(conn, ["cat", vhost]).stdout
    with pytest.raises(converge.ValidationFailed, match="nginx -t"):
        converge.ensure_files(conn, [ManagedFile(vhost, good.encode() + b"\nthis is not nginx;\n")],
                              check=["nginx", "-t"], on_change=["systemctl", "reload", "nginx"])
    assert run(conn, ["cat", vhost]).stdout == good
    assert headers_of(provisioned.curl("/", "-D", "-", "-o", "/dev/null").stdout)[0] == 200


def test_bad_input_is_refused_before_anything_runs(provisioned, prefect_harness):
    from pydantic import ValidationError
    from flows.provision_wordpress import provision_wordpress

    for bad in [dict(domain="a;rm -rf /"), dict(name="../etc"), dict(php_version="7.4"), dict(admin_email="x")]:
        with pytest.raises(ValidationError):
            make_site(**bad)
    from prefect.exceptions import ParameterTypeError

    with pytest.raises(ParameterTypeError, match="components"):
        provision_wordpress(server=provisioned.server, site=provisioned.site, components=["nginx", "rm -rf"])
    with pytest.raises(ValueError):
        ManagedFile("/etc/nginx/../shadow", b"")


def test_fail2ban_bans_an_attacking_host(provisioned, lab_pool):
    attacker = lab_pool.get("x")
    target = provisioned.host.address
    ac = connect_lab(attacker)
    try:
        # Logins as a user that does not exist: sshd refuses them, fail2ban's sshd jail counts them.
        # (Each attempt is bounded: once banned, packets are dropped and a handshake would hang.)
        attack = ("for i in 1 2 3 4 5; do timeout 8 ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o ConnectTimeout=3 "
                  f"-o UserKnownHostsFile=/dev/null intruder$i@{target} true; done; true")
        run(ac, ["sh", "-c", attack], timeout=120)
        deadline = time.monotonic() + 30
        banned = ""
        with connect_lab(provisioned.host) as tc:
            while time.monotonic() < deadline:
                banned = run(tc, ["fail2ban-client", "status", "sshd"]).stdout
                if attacker.address in banned:
                    break
                time.sleep(0.5)
        assert attacker.address in banned
        # fail2ban lists the address as banned before its nftables action has run (the first ban also
        # creates the table): the port closes a moment later.
        deadline = time.monotonic() + 20
        probe = "open"
        while probe != "closed" and time.monotonic() < deadline:
            probe = run(ac, ["sh", "-c", f"timeout 5 bash -c '</dev/tcp/{target}/22' && echo open || echo closed"],
                        check=False).stdout.strip()
            if probe != "closed":
                time.sleep(0.3)
        assert probe == "closed"
        # The control side (this machine) still gets in.
        with connect_lab(provisioned.host) as tc:
            assert run(tc, ["true"]).ok
    finally:
        with connect_lab(provisioned.host) as tc:
            run(tc, ["fail2ban-client", "set", "sshd", "unbanip", attacker.address], check=False)
        ac.close()


def test_acme_certificate_through_certbot_from_a_real_acme_server(provisioned, prefect_harness, tmp_path):
    """Switch the site to ACME against pebble (a real ACME server): certbot's nginx plugin answers the
    http-01 challenge, nginx serves the issued certificate; switching back to self-signed works too."""
    from flows.provision_wordpress import provision_wordpress
    from tests.acme import Pebble

    pebble = Pebble(tmp_path).start()
    try:
        pebble.add_a("blog.lab.test", provisioned.host.address)
        acme_site = make_site(tls_mode="acme", acme_server=pebble.directory_url, acme_ca_bundle=pebble.ca_pem)
        report = provision_wordpress(server=provisioned.server, site=acme_site, components=["nginx"])
        nginx = next(s for s in report.steps if s["name"] == "nginx")
        assert any("ACME certificate" in c for c in nginx["changed"]), nginx
        assert all(c["passed"] for c in report.checks), report.checks
        issuer = subprocess.run(
            ["sh", "-c", f"openssl s_client -connect {provisioned.host.address}:443 -servername blog.lab.test </dev/null 2>/dev/null"
                         " | openssl x509 -noout -issuer"], capture_output=True, text=True, timeout=30).stdout
        assert "Pebble" in issuer, issuer
        again = provision_wordpress(server=provisioned.server, site=acme_site, components=["nginx"])
        assert again.changed is False
    finally:
        pebble.stop()
        provision_wordpress(server=provisioned.server, site=provisioned.site, components=["nginx"])


def test_dropped_connection_half_way_completes_on_rerun(provisioned):
    """The session's pristine host: its first run's SSH session was cut while apt installed the stack (the
    provisioned fixture); that run failed with a clear error, and the re-run completed the site."""
    cut = provisioned.cut
    assert cut["killed"], "never saw apt-get install running"
    assert "error" in cut, "the run should fail when its connection drops"
    error = str(cut["error"])
    assert "Traceback" not in error and error.strip(), error
    assert all(c["passed"] for c in provisioned.report.checks), provisioned.report.checks
    assert provisioned.report.changed  # the re-run finished what the cut run had left


def test_cli_provision_runs_the_same_flow_and_fails_non_zero(provisioned, prefect_harness):
    import os
    import sys

    from prefect.settings import PREFECT_API_URL

    save_copy(provisioned.server, "lab-pt-w")
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    cli = [sys.executable, "-m", "pressfleet.cli.main", "provision"]
    ok = subprocess.run([*cli, "lab-pt-w", "--domain", "blog.lab.test", "--name", "blog", "-c", "nginx"],
                        env=env, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "nothing to change" in ok.stdout and "12/12 checks passed" in ok.stdout and "site-blog" in ok.stdout
    bad = subprocess.run([*cli, "lab-pt-w", "--domain", "a;rm -rf /"], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "refused before anything ran" in bad.stderr
    missing = subprocess.run([*cli, "lab-nosuch", "--domain", "blog.lab.test"], env=env, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr


def test_no_secret_in_logs_artifacts_or_parameters(provisioned, prefect_harness):
    """The site's passwords, salts and the server's private key appear in no log line, artifact or
    recorded flow-run parameter of the session's runs."""
    import asyncio

    from prefect.client.orchestration import get_client

    from pressfleet.fleet.secrets import site_secrets

    secrets = site_secrets("blog")
    needles = [secrets.db_password, secrets.admin_password, *secrets.salts.as_constants().values(),
               provisioned.server.private_key.get_secret_value().splitlines()[1]]

    async def everything() -> str:
        async with get_client() as client:
            logs = await client.read_logs(limit=200)
            texts = [log.message for log in logs]
            offset = 200
            while len(logs) == 200:
                logs = await client.read_logs(limit=200, offset=offset)
                texts += [log.message for log in logs]
                offset += 200
            texts += [str(a.data) for a in await client.read_artifacts()]
            texts += [str(r.parameters) for r in await client.read_flow_runs()]
            return "\n".join(texts)

    haystack = asyncio.run(everything())
    assert "provision-wordpress" in haystack or "Sizing for" in haystack  # the logs really are there
    for needle in needles:
        assert needle not in haystack


def test_wp_login_is_rate_limited(provisioned):
    """wp-login.php: 1 request/s per address with a burst of 5; a rapid run gets 429s, the home page does not."""
    codes = subprocess.run(
        ["sh", "-c", f"for i in $(seq 1 15); do curl -ks -o /dev/null -w '%{{http_code}} ' --resolve "
                     f"blog.lab.test:443:{provisioned.host.address} https://blog.lab.test/wp-login.php; done"],
        capture_output=True, text=True, timeout=120).stdout.split()
    assert codes.count("429") >= 5, codes
    assert codes[0] == "200"
    assert headers_of(provisioned.curl("/", "-D", "-", "-o", "/dev/null").stdout)[0] == 200
