"""Rollups keep a watermark per series (issue 9, item 14): late and backfilled series are rolled up before
their raw points expire, with exact aggregates, on SQLite and on PostgreSQL (the same fixtures as
tests/unit/test_metrics_store.py: a private PostgreSQL 15 cluster, or PRESSFLEET_TEST_PG_URL)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pressfleet.metrics import store as st
from tests.unit.test_metrics_store import T0, pg_url, store  # noqa: F401 - fixtures shared with the store tests

pytestmark = pytest.mark.unit

HOUR = pd.Timedelta(hours=1)


def series(metric: str, start, periods: int, freq: str = "5min", host: str = "h1", seed: int = 0) -> pd.DataFrame:
    t = pd.date_range(start, periods=periods, freq=freq)
    v = np.random.default_rng(seed).normal(50, 10, periods)
    return pd.DataFrame({"time": t, "host": host, "metric": metric, "value": v})


def assert_rolled_up_exactly(store, df: pd.DataFrame, metric: str, host: str = "h1") -> None:
    """The hourly and daily rollups of `metric` equal pandas' aggregates of the points written."""
    ref = pd.Series(df["value"].to_numpy(), index=pd.DatetimeIndex(df["time"]))
    for res, rule in (("hour", "1h"), ("day", "1D")):
        want = {f: ref.resample(rule).agg(f).dropna() for f in ("min", "max", "mean", "count", "last")}
        want["count"] = want["count"][want["count"] > 0]
        for field, w in want.items():
            got = store.read_series(metric, host, resolution=res, field=field)
            got = got[(got.index >= w.index.min()) & (got.index <= w.index.max())]
            assert list(got.index) == list(w.index), (res, field)
            np.testing.assert_allclose(got.to_numpy(), w.to_numpy(dtype="float64"), rtol=1e-9, err_msg=f"{res} {field}")


def rollup_rows(store, table, metric: str) -> pd.DataFrame:
    import sqlalchemy as sa

    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.time, table.c["count"], table.c.mean)
                            .where(table.c.metric == metric).order_by(table.c.time)).all()
    return pd.DataFrame(rows, columns=["time", "count", "mean"])


def test_a_series_backfilled_behind_the_watermark_is_rolled_up_before_it_expires(store):
    now = T0 + pd.Timedelta(days=20)
    # a live series, rolled up to now: the store's rollups reach `now`
    live = series("cpu_percent", now - pd.Timedelta(days=2), 2 * 288, seed=1)
    store.write_points(live)
    store.rollup_and_expire(now, raw_days=7, hourly_days=30)
    # another series arrives with 5 days of history ending 12 days ago (far behind every watermark), and a
    # late stretch of the live series itself, 1.5 days behind its own watermark
    back = series("load1", T0 + pd.Timedelta(days=3), 5 * 288, seed=2)
    late = series("cpu_percent", now - pd.Timedelta(days=4), 288, seed=3)
    store.write_points(back)
    store.write_points(late)
    rep = store.rollup_and_expire(now + pd.Timedelta(minutes=5), raw_days=7, hourly_days=30)
    # the backfilled points are older than raw_days: expired, but only after being rolled up
    assert store.read_series("load1", "h1").empty
    assert rep.raw_deleted == len(back)
    assert_rolled_up_exactly(store, back, "load1")
    assert_rolled_up_exactly(store, pd.concat([late, live]), "cpu_percent")
    hourly = rollup_rows(store, st.hourly, "load1")
    assert len(hourly) == 5 * 24 and (hourly["count"] == 12).all()
    daily = rollup_rows(store, st.daily, "load1")
    assert len(daily) == 5 and (daily["count"] == 288).all()
    np.testing.assert_allclose(daily["mean"].to_numpy(),
                               back.set_index("time")["value"].resample("1D").mean().to_numpy(), rtol=1e-9)


def test_a_late_point_inside_a_rolled_up_hour_is_counted(store):
    now = T0 + pd.Timedelta(days=3)
    df = series("mem_used_bytes", T0, 2 * 288, seed=4)
    store.write_points(df.iloc[1:])  # the first point arrives late
    store.rollup_and_expire(now, raw_days=30, hourly_days=60, lateness=pd.Timedelta(0).to_pytimedelta())
    assert store.read_series("mem_used_bytes", "h1", resolution="hour", field="count").iloc[0] == 11
    store.write_points(df.iloc[:1])
    store.rollup_and_expire(now, raw_days=30, hourly_days=60, lateness=pd.Timedelta(0).to_pytimedelta())
    assert_rolled_up_exactly(store, df, "mem_used_bytes")


def test_nothing_to_roll_up_writes_nothing_and_reruns_change_nothing(store):
    now = T0 + pd.Timedelta(days=2, minutes=7)
    store.write_points(series("load1", T0, 2 * 288, seed=5))
    first = store.rollup_and_expire(now, raw_days=30, hourly_days=60)
    assert first.hourly_buckets_written == 48 and first.daily_buckets_written == 2
    again = store.rollup_and_expire(now + pd.Timedelta(minutes=5), raw_days=30, hourly_days=60)
    assert again.hourly_buckets_written == 0 and again.daily_buckets_written == 0
    assert (store.count("hour"), store.count("day")) == (48, 2)


def test_a_store_made_before_watermarks_rolls_its_old_points_up(tmp_path):
    """A SQLite store written before the watermark table existed: the first rollup covers all its points."""
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'old.db'}"
    df = series("load1", T0, 288, seed=6)
    engine = sa.create_engine(url)
    legacy = sa.MetaData()
    for table in (st.points, st.hourly, st.daily):
        table.to_metadata(legacy)
    legacy.create_all(engine)
    with engine.begin() as conn:
        conn.execute(st.points.insert(), [{"metric": "load1", "host": "h1", "site": "", "labels": "",
                                           "time": int(t.timestamp()), "value": v}
                                          for t, v in zip(df["time"], df["value"])])
    engine.dispose()
    s = st.MetricsStore(url)
    try:
        s.rollup_and_expire(T0 + pd.Timedelta(days=10), raw_days=3, hourly_days=30)
        assert s.count("raw") == 0
        assert_rolled_up_exactly(s, df, "load1")
    finally:
        s.close()
