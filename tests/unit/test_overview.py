"""The fleet overview's rows from a real metrics store (SQLite): uptime, versions, disk, and its renderings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pressfleet.analysis import metric_names as mn
from pressfleet.analysis import overview
from pressfleet.metrics.store import MetricsStore

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    st = MetricsStore(f"sqlite:///{tmp_path / 'm.db'}")
    points = []
    for i in range(288):  # a day of 5-minute rounds: 3 of them failed
        t = NOW - timedelta(minutes=5 * (288 - i))
        points.append({"time": t, "host": "10.0.0.1", "site": "a.example.com", "metric": mn.HTTP_STATUS,
                       "value": 502.0 if i in (10, 11, 200) else 200.0})
        points.append({"time": t, "host": "10.0.0.1", "site": "a.example.com", "metric": mn.TTFB_SECONDS,
                       "value": 0.05 + i / 10000})
    points += [{"time": NOW - timedelta(minutes=1), "host": "10.0.0.1", "site": "", "metric": m,
                "labels": {mn.MOUNT_LABEL: "/"}, "value": v}
               for m, v in ((mn.DISK_USED_BYTES, 30e9), (mn.DISK_TOTAL_BYTES, 40e9))]
    points.append({"time": NOW - timedelta(hours=2), "host": "10.0.0.1", "site": "a.example.com",
                   "metric": mn.UPDATES_PENDING, "labels": {"core": "6.1.9"}, "value": 3.0})
    points.append({"time": NOW - timedelta(hours=1), "host": "10.0.0.1", "site": "a.example.com",
                   "metric": mn.UPDATES_PENDING, "labels": {"core": "6.8.12"}, "value": 0.0})
    st.write_points(points)
    return st


def test_rows_compute_uptime_version_and_free_disk_from_the_store(store):
    inputs = [overview.SiteInput("a", "a.example.com", "web1", "10.0.0.1", newest_backup=NOW - timedelta(hours=5),
                                 verified=True),
              overview.SiteInput("b", "b.example.com", "web2", "10.0.0.2")]
    a, b = overview.site_rows(store, inputs, NOW)
    assert a.uptime_24h == pytest.approx(285 / 288)
    assert a.wordpress == "6.8.12" and a.updates_pending == 0  # the newest check, after the update
    assert a.disk_free == pytest.approx(0.25)
    assert a.ttfb_s == pytest.approx(0.05 + 287 / 10000)
    assert b.uptime_24h is None and b.wordpress == "" and b.updates_pending is None
    [ta, tb] = overview.table([a, b], NOW)
    assert ta["uptime 24 h"] == "98.96%" and ta["last backup"] == "5 h ago, verified" and ta["updates"] == "up to date"
    assert tb["last backup"] == "none" and tb["WordPress"] == "?"
    assert "| a.example.com | web1 | 6.8.12 |" in overview.markdown([a, b], NOW)


def test_the_page_escapes_what_it_shows_and_marks_sites_that_need_a_look(store):
    hostile = overview.SiteInput("a", "a.example.com", "<script>alert(1)</script>", "10.0.0.1",
                                 last_change={"job": "update-site", "run_name": "<b>x</b>", "at": "2026-12-02T05:00"})
    page = overview.html(overview.site_rows(store, [hostile], NOW), NOW)
    assert "<script>alert" not in page and "&lt;script&gt;" in page and "<b>x</b>" not in page
    assert 'class="site attention" data-site="a.example.com"' in page  # uptime under 99.9 %, backup not verified
    assert "data:image/png;base64," in page  # the response-time chart


def test_uptime_comes_from_the_watchers_probes_where_it_probed(store):
    """Probes every 30 s: a day with 20 minutes down is 98.61 %; 30 days where only that day was probed at all
    (29 quiet days have no probe) are the same share, weighted by probes, not by hours."""
    points = []
    for i in range(2880):
        t = NOW - timedelta(seconds=30 * (2880 - i))
        points.append({"time": t, "host": "10.0.0.1", "site": "a.example.com", "metric": mn.PROBE_UP,
                       "value": 0.0 if 1000 <= i < 1040 else 1.0})
    store.write_points(points)
    store.rollup_and_expire(NOW)
    day, month = overview.uptime(store, "10.0.0.1", "a.example.com", NOW - timedelta(days=1), NOW - timedelta(days=30))
    assert day == pytest.approx(1 - 40 / 2880)
    assert month == pytest.approx(1 - 40 / 2880)
    [a] = overview.site_rows(store, [overview.SiteInput("a", "a.example.com", "web1", "10.0.0.1")], NOW)
    assert overview.table([a], NOW)[0]["uptime 24 h"] == "98.61%"
