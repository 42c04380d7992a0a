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


def test_fpm_max_children_is_the_delta_of_each_pool_since_the_previous_round():
    pool = '@@pressfleet-metrics php blog@@\n{"active processes": 1, "max children reached": %d}\n'
    m = _round(pool % 7)
    key = "php.max_children_reached.blog"
    assert m.counters[key] == 7.0
    t = NOW.timestamp()
    get = lambda prev: {r[1]: r[2] for r in observe.host_observations("web1", m, sites={}, previous=prev)}  # noqa
    assert "php_max_children_reached" not in get(None)  # the first round has nothing to compare with
    assert get({key: 5.0, "time": t - 300})["php_max_children_reached"] == 2.0
    assert get({key: 7.0, "time": t - 300})["php_max_children_reached"] == 0.0
    assert get({key: 40.0, "time": t - 300})["php_max_children_reached"] == 7.0  # php-fpm restarted
    assert "php_max_children_reached" not in get({key: 5.0, "time": t - 7200})  # a gap: not "since last round"
    # a pool that did not answer one round is not a restart of the others
    d = observe.fpm_max_children_delta
    assert d({f"{observe.FPM_PREFIX}a": 3.0, "time": t}, {f"{observe.FPM_PREFIX}a": 3.0,
                                                          f"{observe.FPM_PREFIX}b": 40.0, "time": t - 300}) == (0.0, {})
    assert d({f"{observe.FPM_PREFIX}a": 3.0, f"{observe.FPM_PREFIX}b": 40.0, "time": t},
             {f"{observe.FPM_PREFIX}a": 3.0, "time": t - 300}) == (0.0, {})  # b is back: nothing to compare yet


def test_an_uncollected_host_gives_no_rows():
    assert observe.host_observations("web1", c.unreachable(), sites={"blog.lab.test": "blog"}) == []


def test_a_job_silences_its_sites_while_it_runs_and_not_after(tmp_path, monkeypatch):
    from pressfleet.alerts.store import AlertStore, maintenance

    monkeypatch.setenv("PRESSFLEET_STATE", str(tmp_path))
    import time

    with maintenance(["blog", "shop"], "update-site") as held:
        now = AlertStore().silences()
        assert {(s.kind, s.target) for s in now} == {("site", "blog"), ("site", "shop")}
        assert all(s.reason == "update-site running" for s in now) and len(held) == 2
        assert all(s.until > time.time() + 3600 for s in now)  # long enough for a slow job
    after = AlertStore().silences()
    assert len(after) == 2 and all(time.time() + 4 * 60 < s.until <= time.time() + 5 * 60 for s in after)
    assert AlertStore().silences(now=time.time() + 5 * 60 + 1) == []  # the grace ends
    with pytest.raises(RuntimeError):  # a job that fails ends its silences too
        with maintenance(["blog"], "restore-site", grace=0):
            raise RuntimeError("restore failed")
    assert AlertStore().silences(now=time.time() + 1) == AlertStore().silences()
    assert len(AlertStore().silences()) == 2  # the two in their grace, not the failed restore's
    assert AlertStore().end_silences_of("site", "blog") == 1 and [s.target for s in AlertStore().silences()] == ["shop"]
    # a store that cannot be written (its folder is a file): the job still runs, and says so
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "alerts").write_text("not a folder")
    monkeypatch.setenv("PRESSFLEET_STATE", str(broken))
    said = []
    with maintenance(["blog"], "update-site", log=said.append) as held:
        assert held == []
    assert said and "not silenced during update-site" in said[0]


def test_the_forecast_gives_each_host_its_earliest_disk_full_day():
    import pandas as pd

    from flows.forecast_capacity import NEVER_FULL_DAYS, disk_full_days

    table = pd.DataFrame([
        {"host": "10.0.0.1", "resource": "disk:/", "capacity": 1e11, "days_to_full_earliest": 12.4, "days_to_full": 20.0},
        {"host": "10.0.0.1", "resource": "disk:/srv", "capacity": 1e11, "days_to_full_earliest": 5.04,
         "days_to_full": 9.0},
        {"host": "10.0.0.1", "resource": "memory", "capacity": 8e9, "days_to_full_earliest": 1.0, "days_to_full": 1.0},
        {"host": "10.0.0.2", "resource": "disk:/", "capacity": 1e11, "days_to_full_earliest": float("nan"),
         "days_to_full": float("nan")},
        {"host": "10.0.0.3", "resource": "disk:/", "capacity": float("nan"), "days_to_full_earliest": float("nan"),
         "days_to_full": float("nan")},
        {"host": "10.0.0.4", "resource": "disk:/", "capacity": 1e11, "days_to_full_earliest": 2.0, "days_to_full": 3.0,
         "status": "stale"},
    ]).assign(forecast=lambda t: [5e10, 5e10, 1e9, 5e10, None, 5e10]).assign(
        status=lambda t: t["status"].fillna("ok"))
    got = disk_full_days(table)
    assert got["10.0.0.1"] == (5.0, {"mount": "/srv", "likely_days": 9.0})
    assert got["10.0.0.2"][0] == NEVER_FULL_DAYS  # does not fill within the horizon: the alert resolves
    assert "10.0.0.3" not in got and "10.0.0.4" not in got  # size unknown, data stale: no data, not "never"


def test_a_backup_is_measured_against_the_median_of_its_kind():
    from datetime import UTC, datetime, timedelta

    from pressfleet.backup.catalog import CatalogEntry, size_ratio
    from pressfleet.backup.manifest import BackupManifest, ManifestPart

    t0 = datetime(2026, 12, 1, tzinfo=UTC)

    def entry(i: int, kind: str, size: int) -> CatalogEntry:
        m = BackupManifest.model_construct(backup_id=f"b{i}", kind=kind, started_at=t0 + timedelta(days=i),
                                           parts=[ManifestPart.model_construct(size=size)])
        return CatalogEntry.model_construct(manifest=m, verification=None)

    fulls = [entry(i, "full", s) for i, s in enumerate((100, 110, 90, 105))]
    incr = [entry(10 + i, "incremental", 5) for i in range(3)]
    big = entry(20, "full", 420)
    entries = fulls + incr + [big]
    assert size_ratio(entries, "b20") == round(420 / 102.5, 3)  # the median of 100, 110, 90, 105; incrementals aside
    assert size_ratio(entries, "b1") is None  # one full before it: too few to say what is usual
    assert size_ratio(entries, "nope") is None


def test_daily_findings_hold_for_a_day_collections_for_15_minutes(tmp_path):
    from pressfleet.alerts.store import AlertStore
    from pressfleet.watch.watcher import fresh_observations

    store = AlertStore(tmp_path / "a.db")
    now = 1_800_000_000.0
    store.put_observations([("pressfleet.server.web1", "disk_full_days", 4.0, {})], now - 20 * 3600)
    store.put_observations([("pressfleet.server.web1", "disk_used_percent", 95.0, {})], now - 20 * 60)
    store.put_observations([("pressfleet.server.web1", "redis_up", 1.0, {})], now - 60)
    got = fresh_observations(store, now)
    assert set(got) == {("pressfleet.server.web1", "disk_full_days"), ("pressfleet.server.web1", "redis_up")}


def test_a_sites_own_log_cannot_forge_another_sites_sections():
    """The log is the site's to write: a vertical tab or U+2028 in it must not start a section of its own."""
    other = c.SiteRef(name="shop", domain="shop.lab.test", cert_path="/x/c.pem", vhost_path="/x/shop.conf",
                      db_name="shop")
    for sep in ("\v", "\f", "\x1c", "\u2028", "\r"):
        forged = (_line(NOW - timedelta(minutes=1), "x") + f"{sep}@@pressfleet-metrics site shop@@{sep}http 500 0.1"
                  f"{sep}@@pressfleet-metrics fatal shop@@{sep}" + _line(NOW, "forged for shop"))
        text = ("@@pressfleet-metrics site blog@@\nhttp 200 0.1\n"
                f"@@pressfleet-metrics fatal blog@@\n{forged}\n@@pressfleet-metrics end@@\n")
        m = c.parse_metrics(text, now=NOW, sites=[BLOG, other])
        assert m.sites == ["blog.lab.test"], sep
        assert m.get(c.HTTP_STATUS, site="shop.lab.test") is None and m.get(c.PHP_FATALS, site="shop.lab.test") is None
