"""The synthetic history generator: deterministic, realistic shapes, the incidents it says it injected."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pressfleet.metrics.generate import METRICS, generate_history, generate_series

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def hist():
    return generate_history(seed=5, hosts=4, sites_per_host=2, days=21)


def test_deterministic_by_seed(hist):
    again = generate_history(seed=5, hosts=4, sites_per_host=2, days=21)
    pd.testing.assert_frame_equal(hist.points, again.points)
    other = generate_history(seed=6, hosts=4, sites_per_host=2, days=21)
    assert not np.allclose(other.points["value"].to_numpy()[:500], hist.points["value"].to_numpy()[:500])
    a = generate_series("ttfb_seconds", seed=9)
    pd.testing.assert_series_equal(a, generate_series("ttfb_seconds", seed=9))


def test_every_metric_with_sane_values(hist):
    p = hist.points
    assert set(p["metric"]) == set(METRICS)
    assert p["time"].dt.tz is not None
    v = p.groupby("metric")["value"]
    assert v.min()["cpu_percent"] >= 0 and v.max()["cpu_percent"] <= 100
    assert v.min()["redis_hit_ratio"] >= 0 and v.max()["redis_hit_ratio"] <= 1
    assert v.min()["tls_days_left"] >= 29 and v.max()["tls_days_left"] <= 91
    for (host, labels), size in hist.disk_sizes.items():
        used = hist.series("disk_used_bytes", host, labels=labels)
        assert len(used) and used.max() <= size
    sites = p.loc[p["metric"] == "ttfb_seconds", "site"].unique()
    assert len(sites) == 8 and "" not in sites
    assert set(p.loc[p["metric"] == "disk_used_bytes", "labels"]) == {'{"mount":"/"}', '{"mount":"/var/lib/mysql"}'}


def test_daily_and_weekly_cycles_and_growth():
    s = generate_series("nginx_requests", seed=2, days=28)
    rate = s.diff().dropna()
    by_hour = rate.groupby(rate.index.hour).mean()
    assert by_hour.max() > 2.5 * by_hour.min()  # busy days, quiet nights
    weekend = rate[rate.index.day_of_week >= 5].mean()
    weekday = rate[rate.index.day_of_week < 5].mean()
    assert weekend < 0.9 * weekday
    disk = generate_series("disk_used_bytes", seed=2, days=28)
    assert disk.iloc[-24:].mean() > disk.iloc[:24].mean()


def test_incidents_gaps_resets_and_a_host_that_disappears(hist):
    kinds = {i.kind for i in hist.incidents}
    assert {"disk_filling", "traffic_spike", "memory_leak", "counter_reset", "backup_missed"} <= kinds
    gone_host, gone_at = next(iter(hist.ended.items()))
    assert hist.points.loc[hist.points["host"] == gone_host, "time"].max() < gone_at
    cpu = hist.series("cpu_percent", "web-01")
    assert len(cpu) < 21 * 24  # collection gaps
    for host in hist.hosts:
        c = hist.series("nginx_requests", host)
        drops = int((c.diff() < 0).sum())
        resets = [i for i in hist.incidents if i.kind == "counter_reset" and i.host == host
                  and (host not in hist.ended or i.start < hist.ended[host])]
        assert drops <= len(resets)  # a reset inside a gap shows as no drop
    spike = next(i for i in hist.incidents if i.kind == "traffic_spike")
    rate = hist.series("nginx_requests", spike.host).diff()
    during = rate.loc[spike.start:spike.end].median()
    assert during > 2.5 * rate.loc[spike.start - pd.Timedelta(days=7):spike.start - pd.Timedelta(days=6)].median()
    leak = next(i for i in hist.incidents if i.kind == "memory_leak")
    mem = hist.series("mem_used_bytes", leak.host)
    assert mem.loc[leak.end - pd.Timedelta(hours=6):leak.end].mean() > 1.2 * mem.loc[:leak.start].mean()


def test_clean_histories_and_five_minute_steps():
    clean = generate_history(seed=1, hosts=2, days=2, freq="5min", incidents=False, gaps=False, resets=False,
                             disappearing_host=False)
    assert not clean.incidents and not clean.ended
    s = clean.series("cpu_percent", "web-02")
    assert len(s) == 2 * 288 and (s.index.to_series().diff().dropna() == pd.Timedelta("5min")).all()
    c = clean.series("nginx_requests", "web-01")
    assert (c.diff().dropna() >= 0).all()
