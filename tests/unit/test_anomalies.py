"""Anomaly detection: the stated false-alarm rate holds on clean data, and injected incidents are caught."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pressfleet.metrics.anomalies import DEFAULT_THRESHOLD, STATED_FALSE_ALARM_RATE, detect_anomalies
from pressfleet.metrics.generate import generate_history, generate_series

pytestmark = pytest.mark.unit

# Series whose clean version is noise around a pattern (tls_days_left and backup_age_seconds are countdowns
# whose renewals and nightly resets are steps by design; disk_total_bytes is constant).
NOISY = ("cpu_percent", "load1", "mem_used_bytes", "disk_used_bytes", "nginx_requests", "php_active_processes",
         "mariadb_threads_connected", "redis_hit_ratio", "ttfb_seconds")


def test_false_alarm_rate_on_clean_series_is_the_stated_one():
    hist = generate_history(seed=31, hosts=6, sites_per_host=1, days=21, incidents=False, gaps=False,
                            resets=False, disappearing_host=False)
    flagged = total = at3 = 0
    for metric, host, site, labels in hist.keys():
        if metric not in NOISY:
            continue
        res = detect_anomalies(hist.series(metric, host, site, labels))
        assert res.false_alarm_rate == STATED_FALSE_ALARM_RATE
        flagged += int(res.points["anomaly"].sum())
        total += len(res.points)
        at3 += int((res.points["score"].abs() >= 3).sum())
    assert total > 30_000
    # about 6 false alarms are expected at the stated rate; twice that allows for the sample's own scatter
    assert flagged / total <= 2 * STATED_FALSE_ALARM_RATE, flagged
    # the scores are honest standard deviations: about as many beyond 3 as normal noise gives (0.27 %)
    assert 0.001 < at3 / total < 0.02


def test_injected_incidents_are_caught():
    hist = generate_history(seed=32, hosts=3, sites_per_host=1, days=21)
    spike = next(i for i in hist.incidents if i.kind == "traffic_spike")
    for metric in ("nginx_requests", "cpu_percent"):
        res = detect_anomalies(hist.series(metric, spike.host))
        during = res.points.loc[spike.start:spike.end, "anomaly"]
        assert during.mean() >= 0.5, (metric, res.points.loc[spike.start:spike.end])
        assert ((res.periods["start"] <= spike.end) & (res.periods["end"] >= spike.start)).any()
        assert (res.periods["direction"] == "high").any()
        outside = res.points["anomaly"].sum() - during.sum()
        assert outside <= 2  # no ghosts of the spike in the other weeks
    missed = next(i for i in hist.incidents if i.kind == "backup_missed")
    res = detect_anomalies(hist.series("backup_age_seconds", missed.host, missed.site))
    assert res.points.loc[missed.start:missed.end, "anomaly"].any()
    assert res.points["anomaly"].sum() <= len(res.points.loc[missed.start:missed.end]) + 2


def test_spikes_and_dips_added_to_a_clean_series():
    s = generate_series("ttfb_seconds", seed=33, days=21)
    bad = s.copy()
    bad.iloc[300] *= 3.0        # a slow page
    bad.iloc[301] *= 2.5
    bad.iloc[420:423] *= 0.3    # answers too fast to be real (an error page)
    res = detect_anomalies(bad)
    flagged = set(np.nonzero(res.points["anomaly"].to_numpy())[0])
    assert {300, 301, 420, 421, 422} <= flagged
    assert len(flagged) <= 7
    assert set(res.periods["direction"]) == {"high", "low"}
    assert res.points["expected"].iloc[300] == pytest.approx(s.iloc[300], rel=0.3)


def test_gaps_are_never_flagged_and_short_series_get_notes():
    s = generate_series("cpu_percent", seed=34, days=21)
    gappy = s.drop(s.index[100:110])
    res = detect_anomalies(gappy)
    assert res.points["filled"].sum() == 10
    assert not res.points.loc[res.points["filled"], "anomaly"].any()
    short = detect_anomalies(s.iloc[:30])
    assert "rolling median" in short.method and short.notes
    week = detect_anomalies(s.iloc[:24 * 8])
    assert "MSTL(24)" in week.method and any("weekends" in n for n in week.notes)
    for tiny in (s.iloc[:0], s.iloc[:3]):
        r = detect_anomalies(tiny)
        assert not r.points["anomaly"].any() and r.notes and r.periods.empty
    flat = detect_anomalies(pd.Series(5.0, index=s.index))
    assert not flat.points["anomaly"].any() and "constant" in flat.method


def test_threshold_trades_false_alarms_for_sensitivity():
    s = generate_series("redis_hit_ratio", seed=35, days=21)
    loose = detect_anomalies(s, threshold=2.5)
    strict = detect_anomalies(s, threshold=DEFAULT_THRESHOLD)
    assert loose.points["anomaly"].sum() > strict.points["anomaly"].sum()
    assert loose.rate > strict.rate
