"""The metrics store: idempotent writes, reading back, rollups and retention.

Every test runs on SQLite (a file per test) and on PostgreSQL 15: a private cluster the session starts itself
(tests/pg.py: initdb in a temporary folder, a free port on 127.0.0.1, stopped by PID at the end), or the
database at PRESSFLEET_TEST_PG_URL (e.g. postgresql+psycopg://u:p@127.0.0.1/db) when that is set. The
store's tables are dropped before and after each PostgreSQL test.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from pressfleet.metrics import store as st
from pressfleet.metrics.generate import generate_history
from pressfleet.metrics.store import MetricsStore, Point, canonical_labels
from tests.pg import running_cluster

pytestmark = pytest.mark.unit

PG_URL = os.environ.get("PRESSFLEET_TEST_PG_URL")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
T0 = pd.Timestamp("2025-03-03T00:00:00Z")  # a Monday


@pytest.fixture(scope="session")
def pg_url():
    """PRESSFLEET_TEST_PG_URL if set, else a private PostgreSQL 15 cluster for the session."""
    if PG_URL:
        yield PG_URL
        return
    with running_cluster("pressfleet", ["metrics"], log=lambda m: None) as cluster:
        yield cluster.url("psycopg")


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    if request.param == "sqlite":
        s = MetricsStore(f"sqlite:///{tmp_path / 'metrics.db'}")
        yield s
        s.close()
        return
    s = MetricsStore(request.getfixturevalue("pg_url"), create=False)
    st.metadata.drop_all(s.engine)
    st.metadata.create_all(s.engine)
    yield s
    st.metadata.drop_all(s.engine)
    s.close()


def frame(periods: int = 48, freq: str = "1h", hosts=("h1", "h2"), metrics=("cpu_percent", "load1"),
          start=T0) -> pd.DataFrame:
    t = pd.date_range(start, periods=periods, freq=freq)
    parts = []
    for i, h in enumerate(hosts):
        for j, m in enumerate(metrics):
            parts.append(pd.DataFrame({"time": t, "host": h, "site": "", "metric": m, "labels": None,
                                       "value": np.arange(periods, dtype=float) + 100 * i + 10 * j}))
    return pd.concat(parts, ignore_index=True)


def test_a_round_stored_twice_is_stored_once(store):
    df = frame()
    assert store.write_points(df) == len(df)
    assert store.write_points(df) == 0
    assert store.count() == len(df)
    # a round that overlaps the last one: only the new points are added
    more = frame(periods=72)
    store.write_points(more)
    assert store.count() == len(more)


def test_points_dicts_and_labels(store):
    t = T0.to_pydatetime()
    n = store.write_points([
        Point(t, "h1", "disk_used_bytes", 1.0, labels={"mount": "/", "fs": "ext4"}),
        {"time": t, "host": "h1", "metric": "disk_used_bytes", "value": 2.0,
         "labels": {"fs": "ext4", "mount": "/"}},  # the same series and time: skipped
        {"time": "2025-03-03T01:00:00Z", "host": "h1", "metric": "disk_used_bytes", "value": 3.0,
         "labels": '{"mount": "/", "fs": "ext4"}'},
        {"time": t, "host": "h1", "site": "a.example", "metric": "ttfb_ms", "value": float("nan")},
    ])
    assert n == 2
    s = store.read_series("disk_used_bytes", "h1", labels={"mount": "/", "fs": "ext4"})
    assert s.tolist() == [1.0, 3.0]
    assert str(s.index.tz) == "UTC"
    assert canonical_labels({"mount": "/", "fs": "ext4"}) == '{"fs":"ext4","mount":"/"}'
    assert store.read_series("ttfb_ms", "h1", site="a.example").empty  # NaN is not stored


def test_read_back_with_a_time_range(store):
    df = frame(periods=24)
    store.write_points(df)
    s = store.read_series("load1", "h2", start=T0 + pd.Timedelta(hours=2), end=T0 + pd.Timedelta(hours=5))
    assert list(s.index) == list(pd.date_range(T0 + pd.Timedelta(hours=2), periods=3, freq="1h"))
    assert s.tolist() == [112.0, 113.0, 114.0]
    naive = datetime(2025, 3, 3, 2)  # naive times are UTC
    assert store.read_series("load1", "h2", start=naive, end=naive.replace(hour=3)).tolist() == [112.0]


def test_hourly_and_daily_rollups_match_pandas(store):
    rng = np.random.default_rng(1)
    t = pd.date_range(T0, periods=3 * 288, freq="5min")
    v = rng.normal(50, 10, len(t))
    store.write_points(pd.DataFrame({"time": t, "host": "h1", "metric": "cpu_percent", "value": v}))
    now = T0 + pd.Timedelta(days=3, hours=1)
    rep = store.rollup_and_expire(now, raw_days=30, hourly_days=60)
    assert rep.hourly_buckets_written == 72 and rep.daily_buckets_written == 3
    ref = pd.Series(v, index=t)
    for field, how in [("min", "min"), ("max", "max"), ("mean", "mean"), ("count", "count"), ("last", "last")]:
        got = store.read_series("cpu_percent", "h1", resolution="hour", field=field)
        want = ref.resample("1h").agg(how)
        np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-9)
        got_d = store.read_series("cpu_percent", "h1", resolution="day", field=field)
        want_d = ref.resample("1D").agg(how)
        np.testing.assert_allclose(got_d.to_numpy(), want_d.to_numpy(), rtol=1e-9)
    # running it again changes nothing
    before = (store.count("hour"), store.count("day"))
    store.rollup_and_expire(now, raw_days=30, hourly_days=60)
    assert (store.count("hour"), store.count("day")) == before


def test_retention_keeps_the_history_readable(store):
    t = pd.date_range(T0, periods=10 * 24 * 4, freq="15min")  # ten days
    v = np.arange(len(t), dtype=float)
    store.write_points(pd.DataFrame({"time": t, "host": "h1", "metric": "mem_used_bytes", "value": v}))
    now = T0 + pd.Timedelta(days=10)
    rep = store.rollup_and_expire(now, raw_days=3, hourly_days=5)
    raw = store.read_series("mem_used_bytes", "h1")
    assert raw.index.min() == T0 + pd.Timedelta(days=7)  # cut on the day boundary
    assert rep.raw_deleted == 7 * 96
    hourly = store.read_series("mem_used_bytes", "h1", resolution="hour")
    assert hourly.index.min() == T0 + pd.Timedelta(days=5)
    daily = store.read_series("mem_used_bytes", "h1", resolution="day")
    assert len(daily) == 10
    np.testing.assert_allclose(daily.to_numpy(), pd.Series(v, index=t).resample("1D").mean().to_numpy())
    # newer raw points not yet rolled up still read at hourly resolution
    late = pd.date_range(now, periods=8, freq="15min")
    store.write_points(pd.DataFrame({"time": late, "host": "h1", "metric": "mem_used_bytes", "value": 1.0}))
    h = store.read_series("mem_used_bytes", "h1", resolution="hour")
    assert h.index[-1] == now + pd.Timedelta(hours=1) and h.iloc[-1] == 1.0


def test_late_points_are_rolled_up_again(store):
    t = pd.date_range(T0, periods=12, freq="5min")
    store.write_points(pd.DataFrame({"time": t[:6], "host": "h1", "metric": "load1", "value": 1.0}))
    now = T0 + pd.Timedelta(hours=2)
    store.rollup_and_expire(now)
    assert store.read_series("load1", "h1", resolution="hour", field="count").iloc[0] == 6
    store.write_points(pd.DataFrame({"time": t[6:], "host": "h1", "metric": "load1", "value": 3.0}))
    store.rollup_and_expire(now + pd.Timedelta(minutes=10))
    hourly = store.read_series("load1", "h1", resolution="hour", field="mean")
    assert hourly.iloc[0] == 2.0


def test_list_series(store):
    store.write_points(frame(periods=5))
    store.write_points([Point(T0, "h1", "disk_used_bytes", 5.0, labels={"mount": "/"}),
                        Point(T0, "h1", "ttfb_ms", 200.0, site="a.example")])
    ls = store.list_series()
    assert len(ls) == 6
    row = ls[(ls.metric == "ttfb_ms")].iloc[0]
    assert row.site == "a.example" and row["first"] == T0
    assert set(store.list_series(host="h2").metric) == {"cpu_percent", "load1"}
    assert store.list_series(metric="nope").empty


def test_generated_history_round_trip(store):
    hist = generate_history(seed=3, hosts=2, sites_per_host=1, days=3)
    assert store.write_points(hist.points) == len(hist.points)
    site = hist.sites["web-01"][0]
    for metric, site_, labels in [("ttfb_seconds", site, None), ("disk_used_bytes", "", {"mount": "/"}),
                                  ("nginx_requests", "", None)]:
        want = hist.series(metric, "web-01", site_, labels)
        got = store.read_series(metric, "web-01", site_, labels=labels)
        np.testing.assert_allclose(got.to_numpy(), want.to_numpy())
        assert (got.index == want.index).all()


def test_default_url_is_the_state_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("PRESSFLEET_METRICS_URL", raising=False)
    monkeypatch.setenv("PRESSFLEET_STATE", str(tmp_path / "state"))
    assert st.default_url() == f"sqlite:///{tmp_path / 'state' / 'metrics.db'}"
    s = st.open_store()
    try:
        s.write_points([Point(datetime(2025, 1, 1, tzinfo=timezone.utc), "h", "m", 1.0)])
        assert (tmp_path / "state" / "metrics.db").exists()
        assert st.read_series("m", "h").tolist() == [1.0]
    finally:
        s.close()
        st._stores.pop(s.url, None)
    monkeypatch.setenv("PRESSFLEET_METRICS_URL", "sqlite:///elsewhere.db")
    assert st.default_url() == "sqlite:///elsewhere.db"
