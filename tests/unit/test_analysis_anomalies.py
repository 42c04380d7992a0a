"""Fleet anomaly report: injected incidents are listed, the false-alarm rate is stated, awkward series are fine."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pressfleet.analysis import metric_names as mn
from pressfleet.analysis.anomalies import anomaly_report
from pressfleet.metrics.anomalies import STATED_FALSE_ALARM_RATE
from pressfleet.metrics.generate import generate_history
from pressfleet.metrics.store import MetricsStore

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    hist = generate_history(seed=4, hosts=3, sites_per_host=1, days=21)
    st = MetricsStore(f"sqlite:///{tmp_path_factory.mktemp('anom') / 'm.db'}")
    st.write_points(hist.points)
    return hist, st, anomaly_report(st, days=21)


def test_the_traffic_spike_and_the_missed_backup_are_found(fleet):
    hist, _, rep = fleet
    spike = next(i for i in hist.incidents if i.kind == "traffic_spike")
    p = rep.periods
    hit = p[(p["host"] == spike.host) & (p["metric"] == mn.NGINX_REQUESTS) & (p["start"] <= spike.end)
            & (p["end"] >= spike.start)]
    assert len(hit) == 1 and hit.iloc[0]["direction"] == "high"
    assert hit.iloc[0]["value"] > 2.5 * hit.iloc[0]["expected"]
    missed = [i for i in hist.incidents if i.kind == "backup_missed"]
    found = 0
    for m in missed:
        found += bool(((p["metric"] == mn.BACKUP_AGE_SECONDS) & (p["site"] == m.site) & (p["start"] <= m.end)
                       & (p["end"] >= m.start)).any())
    assert found >= len(missed) - 1
    # most anomalous first
    assert (p["peak_score"].abs().diff().dropna() <= 1e-9).all()


def test_few_false_alarms_and_the_stated_rate(fleet):
    hist, _, rep = fleet
    assert rep.false_alarm_rate == STATED_FALSE_ALARM_RATE
    assert rep.points_checked > 10_000 and len(rep.series) >= 25
    assert rep.expected_false_alarms == pytest.approx(STATED_FALSE_ALARM_RATE * rep.points_checked)
    s = rep.statement()
    assert "1 in 5,000" in s and f"{rep.points_checked:,}" in s
    # counts of workers and threads with collection gaps: interpolated steps must not make a change of one
    # look like an anomaly (it used to flag dozens of points on such a series)
    counts = rep.series[rep.series["metric"].isin([mn.MARIADB_THREADS_CONNECTED, mn.PHP_ACTIVE_PROCESSES])]
    assert counts["flagged"].max() <= 12, counts
    incident_hosts = {i.host for i in hist.incidents if i.kind in ("traffic_spike",)}
    quiet = rep.periods[~rep.periods["host"].isin(incident_hosts)
                        & ~rep.periods["metric"].isin([mn.BACKUP_AGE_SECONDS, mn.MEM_USED_BYTES,
                                                       mn.DISK_USED_BYTES])]
    assert len(quiet) <= 25


def test_short_series_empty_stores_and_a_gappy_count(tmp_path):
    st = MetricsStore(f"sqlite:///{tmp_path / 'm.db'}")
    rep = anomaly_report(st)
    assert rep.periods.empty and rep.points_checked == 0 and any("no series" in n for n in rep.notes)
    t = pd.date_range("2025-03-03", periods=60, freq="1h", tz="UTC")
    cpu = 20 + 5 * np.sin(np.arange(60) / 24 * 2 * np.pi) + np.random.default_rng(2).normal(0, 1, 60)
    cpu[40] = 95.0
    st.write_points(pd.DataFrame({"time": t, "host": "h", "site": "", "metric": mn.CPU_PERCENT, "labels": "",
                                  "value": cpu}))
    st.write_points(pd.DataFrame({"time": t[:5], "host": "h", "site": "", "metric": mn.LOAD1, "labels": "",
                                  "value": [1.0, 2, 3, 4, 5]}))
    rep = anomaly_report(st)
    assert any("less than two weeks" in n for n in rep.notes)
    cpu_rows = rep.periods[rep.periods["metric"] == mn.CPU_PERCENT]
    spike = cpu_rows[cpu_rows["peak_time"] == t[40]]
    assert len(spike) == 1 and spike.iloc[0]["direction"] == "high"
    assert len(cpu_rows) <= 2  # with two and a half days the spike may leave a ghost a day away
    load = rep.series[rep.series["metric"] == mn.LOAD1].iloc[0]
    assert load["flagged"] == 0 and "too few" in load["notes"]
