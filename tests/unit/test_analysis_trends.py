"""Trends: week-over-week change, each host's bottleneck, suggestions; short and vanished series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pressfleet.analysis import metric_names as mn
from pressfleet.analysis.trends import trend_report, week_over_week
from pressfleet.metrics.generate import GIB, generate_history
from pressfleet.metrics.store import MetricsStore

pytestmark = pytest.mark.unit


def _write(st, metric, host, values, start="2025-03-03", labels=""):
    t = pd.date_range(start, periods=len(values), freq="1h", tz="UTC")
    st.write_points(pd.DataFrame({"time": t, "host": host, "site": "", "metric": metric, "labels": labels,
                                  "value": values}))


def test_week_over_week_of_gauges_and_counters(tmp_path):
    st = MetricsStore(f"sqlite:///{tmp_path / 'm.db'}")
    n = 24 * 14
    cpu = np.r_[np.full(n // 2, 10.0), np.full(n // 2, 15.0)]
    _write(st, mn.CPU_PERCENT, "h", cpu)
    rate = np.r_[np.full(n // 2, 2.0), np.full(n // 2, 1.0)]    # requests a second halve
    counter = np.cumsum(rate * 3600)
    counter[200:] -= counter[199]                                 # nginx restarted
    _write(st, mn.NGINX_REQUESTS, "h", counter)
    _write(st, mn.TLS_DAYS_LEFT, "h", np.linspace(80, 60, n))      # a countdown: not a trend
    w = week_over_week(st).set_index("metric")
    assert w.loc[mn.CPU_PERCENT, "change_pct"] == pytest.approx(50.0, abs=1.0)
    assert w.loc[mn.NGINX_REQUESTS, "change_pct"] == pytest.approx(-50.0, abs=3.0)
    assert w.loc[mn.NGINX_REQUESTS, "unit"] == "requests/s"
    assert mn.TLS_DAYS_LEFT not in w.index


def test_bottlenecks_and_suggestions_on_a_generated_fleet(tmp_path):
    hist = generate_history(seed=8, hosts=3, sites_per_host=1, days=21)
    st = MetricsStore(f"sqlite:///{tmp_path / 'm.db'}")
    st.write_points(hist.points)
    rep = trend_report(st, horizon_days=30)
    b = rep.bottlenecks.set_index("host")
    assert sorted(b.index) == hist.hosts
    disk = next(i for i in hist.incidents if i.kind == "disk_filling")
    assert b.loc[disk.host, "resource"] == "disk:/"
    assert 0 < b.loc[disk.host, "days_to_limit"] < 30
    gone = next(iter(hist.ended))
    assert b.loc[gone, "status"] == "stale"
    assert rep.suggestions[0].startswith(disk.host + ":") and "disk:/" in rep.suggestions[0]
    assert any(s.startswith(gone) and "stopped reporting" in s for s in rep.suggestions)
    # the vanished host has (almost) no data this week: a note, not a change
    wg = rep.week_over_week[rep.week_over_week["host"] == gone]
    assert wg["change_pct"].isna().all() and wg["note"].str.contains("this week").all()
    assert rep.notable(10)["change_pct"].abs().min() >= 10


def test_short_history_says_so(tmp_path):
    st = MetricsStore(f"sqlite:///{tmp_path / 'm.db'}")
    _write(st, mn.CPU_PERCENT, "new", 20 + np.random.default_rng(0).normal(0, 1, 50))
    _write(st, mn.MEM_USED_BYTES, "new", np.full(50, 1.0 * GIB))
    _write(st, mn.MEM_TOTAL_BYTES, "new", np.full(50, 4.0 * GIB))
    rep = trend_report(st)
    assert rep.week_over_week["change_pct"].isna().all()
    assert any("no week-over-week" in n for n in rep.notes)
    assert rep.bottlenecks.iloc[0]["resource"] in ("cpu", "memory")
    assert rep.suggestions  # never empty
    empty = trend_report(MetricsStore(f"sqlite:///{tmp_path / 'e.db'}"))
    assert empty.bottlenecks.empty and empty.suggestions
