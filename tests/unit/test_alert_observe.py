"""What a collection round tells the alert rules (pressfleet.alerts.observe, parse_fatals): plain functions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pressfleet.alerts import observe
from pressfleet.metrics import collect as c

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=timezone.utc)
BLOG = c.SiteRef(name="blog", domain="blog.lab.test", cert_path="/x/cert.pem", vhost_path="/x/blog.conf",
                 db_name="blog", error_log="/var/www/blog/log/php-error.log")


def _line(at: datetime, msg: str, zone: str = "UTC") -> str:
    return f"[{at.strftime('%d-%b-%Y %H:%M:%S')} {zone}] PHP Fatal error:  {msg}"


def test_fatals_in_the_window_are_counted_and_the_newest_is_named():
    lines = [_line(NOW - timedelta(hours=2), "old one in /var/www/blog/htdocs/a.php:1"),
             _line(NOW - timedelta(minutes=10), "Uncaught Error: Call to undefined function boom() in x.php:3"),
             "Stack trace:", "#0 {main}",
             _line(NOW - timedelta(minutes=1), "Allowed memory size of 134217728 bytes exhausted"),
             "[03-Dec-2026 11:59:00 UTC] PHP Warning:  not a fatal"]
    count, newest = c.parse_fatals(lines, NOW)
    assert count == 2
    assert newest == {"at": (NOW - timedelta(minutes=1)).isoformat(),
                      "message": "Allowed memory size of 134217728 bytes exhausted"}
    # the zone PHP writes is honoured: 12:55 in Berlin is 11:55 UTC, inside the window
    berlin = [f"[03-Dec-2026 12:55:00 Europe/Berlin] PHP Fatal error:  late"]
    assert c.parse_fatals(berlin, NOW)[0] == 1
    assert c.parse_fatals(["garbage", "", "[99-Foo-2026 12:00:00 UTC] PHP Fatal error:  x"], NOW) == (0, None)


def _round(extra: str) -> c.HostMetrics:
    text = ("@@pressfleet-metrics df@@\next4 1000 950 50 /\next4 1000 100 900 /srv\n"
            "@@pressfleet-metrics dfi@@\next4 100 20 80 /\n"
            f"@@pressfleet-metrics site blog@@\nhttp 200 0.1\n{extra}@@pressfleet-metrics end@@\n")
    return c.parse_metrics(text, now=NOW, sites=[BLOG])


def test_a_round_becomes_rows_for_the_rules():
    fatal = _line(NOW - timedelta(minutes=2), "Uncaught Exception: planted in /var/www/blog/htdocs/x.php:2")
    m = _round(f"@@pressfleet-metrics fatal blog@@\n{fatal}\n"
               "@@pressfleet-metrics mariadb-status@@\n@@pressfleet-metrics redis@@\nused_memory:1000\n")
    rows = {(r[0], r[1]): (r[2], r[3]) for r in observe.host_observations("web1", m, sites={"blog.lab.test": "blog"})}
    assert rows[("pressfleet.server.web1", "disk_used_percent")] == (95.0, {"mount": "/"})
    assert rows[("pressfleet.server.web1", "inodes_used_percent")] == (20.0, {"mount": "/"})
    assert rows[("pressfleet.server.web1", "mariadb_up")][0] == 0.0  # its section was empty: down
    assert rows[("pressfleet.server.web1", "redis_up")] == (1.0, {})
    value, ev = rows[("pressfleet.site.blog", "php_fatal_count")]
    assert value == 1.0 and "planted" in ev["message"] and ev["window_minutes"] == 15
    assert ("pressfleet.server.web1", "php_max_children_reached") not in rows  # no pool status: no data


def test_fpm_max_children_is_the_delta_since_the_previous_round():
    pool = '@@pressfleet-metrics php blog@@\n{"active processes": 1, "max children reached": %d}\n'
    m = _round(pool % 7)
    assert m.counters["php.max_children_reached"] == 7.0
    get = lambda prev: {r[1]: r[2] for r in observe.host_observations("web1", m, sites={}, previous=prev)}  # noqa
    assert "php_max_children_reached" not in get(None)  # the first round has nothing to compare with
    assert get({"php.max_children_reached": 5.0})["php_max_children_reached"] == 2.0
    assert get({"php.max_children_reached": 7.0})["php_max_children_reached"] == 0.0
    assert get({"php.max_children_reached": 40.0})["php_max_children_reached"] == 7.0  # php-fpm restarted


def test_an_uncollected_host_gives_no_rows():
    assert observe.host_observations("web1", c.unreachable(), sites={"blog.lab.test": "blog"}) == []


def test_a_job_silences_its_sites_while_it_runs_and_not_after(tmp_path, monkeypatch):
    from pressfleet.alerts.store import AlertStore, maintenance

    monkeypatch.setenv("PRESSFLEET_STATE", str(tmp_path))
    with maintenance(["blog", "shop"], "update-site") as held:
        now = AlertStore().silences()
        assert {(s.kind, s.target) for s in now} == {("site", "blog"), ("site", "shop")}
        assert all(s.reason == "update-site running" for s in now) and len(held) == 2
    assert AlertStore().silences() == []
    with pytest.raises(RuntimeError):  # a job that fails ends its silences too
        with maintenance(["blog"], "restore-site"):
            raise RuntimeError("restore failed")
    assert AlertStore().silences() == []
    # a store that cannot be written (its folder is a file): the job still runs, and says so
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "alerts").write_text("not a folder")
    monkeypatch.setenv("PRESSFLEET_STATE", str(broken))
    said = []
    with maintenance(["blog"], "update-site", log=said.append) as held:
        assert held == []
    assert said and "not silenced during update-site" in said[0]
