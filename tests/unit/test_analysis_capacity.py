"""Capacity analysis over a real (SQLite) store: forecasts, crossings with intervals, advice, and the awkward
cases (short series, gaps, counter resets, a host that stopped reporting, missing sizes, an empty store)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pressfleet.analysis import metric_names as mn
from pressfleet.analysis.capacity import Limits, capacity_report
from pressfleet.metrics.generate import GIB, generate_history
from pressfleet.metrics.store import MetricsStore

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    hist = generate_history(seed=3, hosts=3, sites_per_host=1, days=21)
    st = MetricsStore(f"sqlite:///{tmp_path_factory.mktemp('cap') / 'm.db'}")
    st.write_points(hist.points)
    return hist, st


@pytest.fixture(scope="module")
def rep(fleet):
    return capacity_report(fleet[1], horizon_days=30)


def test_every_host_and_resource_is_forecast(fleet, rep):
    hist, _ = fleet
    t = rep.table
    assert sorted(t["host"].unique()) == hist.hosts
    for host in hist.hosts:
        res = set(t.loc[t["host"] == host, "resource"])
        assert {"disk:/", "disk:/var/lib/mysql", "memory", "cpu", "traffic", "database"} <= res
    ok = t[t["status"] != "no data"]
    assert (ok["lower"] <= ok["forecast"] + 1e-6).all() and (ok["forecast"] <= ok["upper"] + 1e-6).all()
    assert ok["method"].str.contains("MSTL").all()
    assert set(rep.forecasts) == {(r.host, r.site, r.resource) for r in t.itertuples()}


def test_the_filling_disk_gets_days_to_full_with_an_interval_and_advice(fleet, rep):
    hist, _ = fleet
    inc = next(i for i in hist.incidents if i.kind == "disk_filling")
    row = rep.table[(rep.table["host"] == inc.host) & (rep.table["resource"] == "disk:/")].iloc[0]
    size = hist.disk_sizes[(inc.host, inc.labels)]
    assert row["capacity"] == pytest.approx(size)
    assert row["status"] in ("act", "critical")
    assert row["days_to_full_earliest"] <= row["days_to_full"] <= (row["days_to_full_latest"]
                                                                   if not math.isnan(row["days_to_full_latest"])
                                                                   else np.inf)
    assert row["days_to_limit"] <= row["days_to_full"]
    assert row["limit"] == pytest.approx(0.9 * size)
    # the days are where the forecast's mean (and its upper bound, for the earliest) first reach the limit
    fc = rep.forecasts[(inc.host, "", "disk:/")]
    for days, curve in ((row["days_to_limit"], fc.mean), (row["days_to_limit_earliest"], fc.upper),
                        (row["days_to_full"], fc.mean)):
        at = rep.now + pd.Timedelta(days=days)
        level = row["limit"] if curve is not fc.mean or days != row["days_to_full"] else size
        assert curve[at] >= level and curve[at - pd.Timedelta(hours=1)] < level
    # the truth: the generator's fill rate carried on from the last point
    used = hist.series(mn.DISK_USED_BYTES, inc.host, labels=inc.labels)
    rate = (used.iloc[-1] - used.iloc[-73]) / 72  # bytes an hour over the last three days
    true_days = (size - used.iloc[-1]) / rate / 24
    assert row["days_to_full_earliest"] * 0.8 <= true_days <= row["days_to_full"] * 1.5
    assert "grow /" in row["advice"] and "backups" in row["advice"]
    # the grown size suggested covers the forecast's upper bound with 10 % free
    need = int(row["advice"].split("grow / to ")[1].split(" GiB")[0])
    assert need * GIB >= rep.forecasts[(inc.host, "", "disk:/")].upper.max() / 0.9 * 0.999


def test_a_host_that_stopped_reporting_is_stale_with_a_note(fleet, rep):
    hist, _ = fleet
    gone = next(iter(hist.ended))
    rows = rep.table[rep.table["host"] == gone]
    assert (rows["status"] == "stale").all()
    assert rows["advice"].str.contains("no data since").all()
    assert any(gone in n for n in rep.notes)
    others = rep.table[rep.table["host"] != gone]
    assert (others["status"] != "stale").all()


def test_counter_resets_give_a_positive_request_rate(fleet, rep):
    hist, _ = fleet
    for host in hist.hosts:
        row = rep.table[(rep.table["host"] == host) & (rep.table["resource"] == "traffic")].iloc[0]
        assert row["unit"] == "req/s" and row["forecast"] > 0 and row["lower"] >= 0
        fc = rep.forecasts[(host, "", "traffic")]
        assert fc.kind == "counter" and (fc.history >= 0).all()
        # the generator's request rate: a few requests per second, not cumulative counts
        assert fc.history.median() < 100


def test_memory_is_a_percentage_of_the_host_size(rep):
    mem = rep.table[rep.table["resource"] == "memory"]
    assert (mem["unit"] == "%").all() and (mem["current"].between(0, 100)).all()
    assert (mem["limit"] == 90).all()


def test_limits_are_the_callers(fleet):
    low = capacity_report(fleet[1], horizon_days=10, limits=Limits(cpu_pct=1.0, memory_pct=5.0))
    cpu = low.table[low.table["resource"] == "cpu"]
    assert (cpu["status"].isin(["critical", "stale"])).all()
    assert cpu["advice"].str.contains("vCPU").all()


def _write(st, metric, host, values, start="2025-03-03", freq="1h", labels=None, site=""):
    t = pd.date_range(start, periods=len(values), freq=freq, tz="UTC")
    st.write_points(pd.DataFrame({"time": t, "host": host, "site": site, "metric": metric,
                                  "labels": "" if labels is None else labels, "value": values}))


def test_short_gappy_series_missing_sizes_and_few_points(tmp_path):
    st = MetricsStore(f"sqlite:///{tmp_path / 'm.db'}")
    rng = np.random.default_rng(0)
    n = 40  # under two days
    cpu = 30 + 10 * np.sin(np.arange(n) / 24 * 2 * np.pi) + rng.normal(0, 1, n)
    cpu[10:15] = np.nan  # a gap (NaN is not stored)
    _write(st, mn.CPU_PERCENT, "short", cpu)
    _write(st, mn.MEM_USED_BYTES, "short", np.linspace(1, 1.2, n) * GIB)          # no mem_total_bytes
    _write(st, mn.DISK_USED_BYTES, "short", np.linspace(10, 11, n) * GIB, labels='{"mount":"/"}')  # no size
    _write(st, mn.NGINX_REQUESTS, "short", [5.0, 10.0, 2.0])                      # three points, one reset
    rep = capacity_report(st, horizon_days=7)
    t = rep.table.set_index("resource")
    assert set(t.index) == {"cpu", "memory", "disk:/", "traffic"}
    assert "not modelled" in t.loc["cpu", "notes"] and "missing" in t.loc["cpu", "notes"]
    assert t.loc["memory", "unit"] == "B" and "mem_total_bytes" in t.loc["memory", "notes"]
    assert math.isnan(t.loc["disk:/", "days_to_full"]) and "disk_total_bytes" in t.loc["disk:/", "notes"]
    assert "reset" in t.loc["traffic", "notes"]
    assert any("less than two weeks" in n for n in rep.notes)


def test_an_empty_store_and_unknown_hosts(tmp_path):
    st = MetricsStore(f"sqlite:///{tmp_path / 'm.db'}")
    rep = capacity_report(st)
    assert rep.table.empty and rep.notes == ["the store holds no metrics yet"]
    _write(st, mn.CPU_PERCENT, "a", np.full(30, 5.0))
    rep = capacity_report(st, hosts=["a", "nope"])
    assert list(rep.table["host"]) == ["a"] and any("nope" in n for n in rep.notes)
    assert rep.table.iloc[0]["method"] == "constant"
