"""Rotating a site's secrets (issue 11's bulk `rotate-secrets`) on the session's shared host's second site: no
request fails while it runs (a probe every 100 ms past the page cache), the old database and Redis passwords stop
working and the new ones work, a login from before no longer counts, and a run cut half-way is finished by the
next with the same new passwords."""

from __future__ import annotations

import threading
import time

import pytest

from pressfleet.fleet.secrets import secret_block_name
from pressfleet.ssh.remote import run
from tests.conftest import connect_lab

pytestmark = [pytest.mark.lab, pytest.mark.timeout(600)]


def _secret(site: str, kind: str):
    from prefect.blocks.system import Secret

    try:
        return Secret.load(secret_block_name(site, kind)).get()
    except ValueError:
        return None


def _log_in(p, jar) -> None:
    """A real login through wp-login.php, its cookies kept in JAR."""
    user, password = p.site.admin_user, _secret(p.config.name, "admin-password")
    r = p.curl("/wp-login.php", "-o", "/dev/null", "-w", "%{http_code}", "-c", str(jar),
               "-b", "wordpress_test_cookie=WP%20Cookie%20check",
               "--data-urlencode", f"log={user}", "--data-urlencode", f"pwd={password}",
               "--data-urlencode", "testcookie=1", "--data-urlencode", "wp-submit=Log In")
    assert r.stdout == "302", (r.stdout, r.stderr)


def _admin_status(p, jar) -> str:
    return p.curl("/wp-admin/", "-o", "/dev/null", "-w", "%{http_code}", "-b", str(jar)).stdout


class Probe:
    """GET /?pf-probe=N every 100 ms (a query string: never from the page cache, so PHP, MariaDB and Redis answer)."""

    def __init__(self, p) -> None:
        self.p, self.codes, self.stop = p, [], threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            r = self.p.curl(f"/?pf-probe={n}", "-o", "/dev/null", "-w", "%{http_code}")
            self.codes.append(r.stdout or r.stderr.strip()[:80])
            time.sleep(0.1)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(30)


def test_rotating_secrets_drops_no_request_ends_logins_and_old_passwords_stop_working(shared_host, tmp_path):
    from flows.bulk import bulk
    from tasks.rotate import credentials_work

    p = shared_host.two
    name = p.config.name
    old = {k: _secret(name, k) for k in ("db-password", "redis-password", "salts")}
    jar = tmp_path / "cookies"
    _log_in(p, jar)
    assert _admin_status(p, jar) == "200"

    with Probe(p) as probe:
        time.sleep(1)
        [row] = bulk(operation="rotate-secrets", sites=[p.site])
        time.sleep(1)
    assert row["state"] == "done" and "1 login session(s) ended" in row["detail"], row
    assert len(probe.codes) >= 20 and set(probe.codes) == {"200"}, probe.codes

    new = {k: _secret(name, k) for k in ("db-password", "redis-password", "salts")}
    assert all(new[k] != old[k] for k in new) and _secret(name, "rotation") is None
    with connect_lab(p.host) as conn:
        assert credentials_work(conn, p.config, old["db-password"], old["redis-password"]) == {"db": False, "redis": False}
        assert credentials_work(conn, p.config, new["db-password"], new["redis-password"]) == {"db": True, "redis": True}
        mode = run(conn, ["stat", "-c", "%a %U", p.config.wp_config_path]).stdout.split()
        assert mode == ["440", "root"]
    # the login from before is over: wp-admin sends the browser to log in again
    assert _admin_status(p, jar) == "302"
    assert p.curl("/", "-o", "/dev/null", "-w", "%{http_code}").stdout == "200"


def test_a_rotation_cut_half_way_is_finished_by_the_next_run_with_the_same_new_passwords(shared_host):
    from flows.bulk import bulk
    from tasks import rotate

    p = shared_host.two
    name = p.config.name
    before = {k: _secret(name, k) for k in ("db-password", "redis-password")}
    # the first run got as far as letting both sets in, then its connection dropped
    pending = rotate.pending_rotation(name)
    with connect_lab(p.host) as conn:
        run(conn, ["mariadb", "--batch"], stdin=rotate.dual_password_sql(p.config.db_name, before["db-password"],
                                                                         pending["db-password"]))
        assert rotate.credentials_work(conn, p.config, before["db-password"], before["redis-password"])["db"]
        assert rotate.credentials_work(conn, p.config, pending["db-password"], before["redis-password"])["db"]
    assert p.curl("/?pf-probe=cut", "-o", "/dev/null", "-w", "%{http_code}").stdout == "200"  # still serving

    [row] = bulk(operation="rotate-secrets", sites=[p.site])
    assert row["state"] == "done", row
    assert _secret(name, "db-password") == pending["db-password"]  # the same rotation, finished
    assert _secret(name, "redis-password") == pending["redis-password"]
    with connect_lab(p.host) as conn:
        assert rotate.credentials_work(conn, p.config, before["db-password"], before["redis-password"]) == \
            {"db": False, "redis": False}
    assert p.curl("/?pf-probe=after", "-o", "/dev/null", "-w", "%{http_code}").stdout == "200"
