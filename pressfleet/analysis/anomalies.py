"""Anomalies across the fleet: every series checked by `pressfleet.metrics.anomalies.detect_anomalies`, the
flagged periods in one table, and the false-alarm rate the detector states.

    rep = anomaly_report(store, days=28)
    rep.periods          # host, site, metric, labels, start, end, points, peak_score, direction, value, expected
    rep.series           # per series: points checked, flagged, method, notes
    rep.false_alarm_rate # per point, at the default threshold (STATED_FALSE_ALARM_RATE: about 1 in 5,000)
    rep.expected_false_alarms  # what that rate predicts over the points checked
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pressfleet.analysis import metric_names as mn
from pressfleet.analysis.data import fleet_now, inventory, load, store_for
from pressfleet.metrics.anomalies import DEFAULT_THRESHOLD, STATED_FALSE_ALARM_RATE, AnomalyResult, detect_anomalies

# Series with a pattern to depart from (constants such as disk or memory size, and counts of rare events, are not
# checked; nor are sizes that only grow: a slow drift is a trend the capacity forecast reports).
DEFAULT_METRICS = (mn.CPU_PERCENT, mn.LOAD1, mn.MEM_USED_BYTES, mn.NGINX_REQUESTS, mn.PHP_ACTIVE_PROCESSES,
                   mn.MARIADB_THREADS_CONNECTED, mn.REDIS_HIT_RATIO, mn.TTFB_SECONDS, mn.BACKUP_AGE_SECONDS,
                   mn.DISK_USED_BYTES)
PERIOD_COLUMNS = ["host", "site", "metric", "labels", "start", "end", "points", "flagged", "peak_score",
                  "peak_time", "direction", "value", "expected"]
SERIES_COLUMNS = ["host", "site", "metric", "labels", "points", "flagged", "periods", "method", "notes"]


@dataclass
class AnomalyReport:
    periods: pd.DataFrame
    series: pd.DataFrame
    threshold: float
    false_alarm_rate: float
    points_checked: int
    notes: list[str] = field(default_factory=list)
    results: dict[tuple[str, str, str, str], AnomalyResult] = field(default_factory=dict)
    now: pd.Timestamp | None = None

    @property
    def expected_false_alarms(self) -> float:
        return self.false_alarm_rate * self.points_checked

    def statement(self) -> str:
        return (f"At threshold {self.threshold:g} the detector states a false-alarm rate of at most "
                f"{self.false_alarm_rate:.2%} of points (about 1 in {1 / self.false_alarm_rate:,.0f}) on clean series "
                f"with two weeks or more of history: over the {self.points_checked:,} points checked that is about "
                f"{self.expected_false_alarms:.1f} false alarm(s) to expect by chance.")


def anomaly_report(store: Any = None, *, metrics: tuple[str, ...] | list[str] | None = None, days: float = 28,
                   hosts: list[str] | None = None, threshold: float = DEFAULT_THRESHOLD, now: Any = None
                   ) -> AnomalyReport:
    """Check the last `days` of every series of `metrics` (default DEFAULT_METRICS) on `hosts` (default all)."""
    st = store_for(store)
    inv = inventory(st, list(metrics or DEFAULT_METRICS))
    now_ts = pd.Timestamp(now) if now is not None else fleet_now(st, inventory(st))
    notes: list[str] = []
    if hosts:
        inv = inv[inv["host"].isin(hosts)]
    rows, per_series, results = [], [], {}
    checked = 0
    short = 0
    for r in inv.itertuples(index=False):
        s = load(st, r.metric, r.host, r.site, r.labels, days=days, end=now_ts)
        res = detect_anomalies(s, threshold=threshold)
        key = (r.host, r.site, r.metric, r.labels)
        results[key] = res
        obs = int((~res.points["filled"]).sum()) if len(res.points) else 0
        checked += obs
        if any("not modelled" in n or "shorter than two cycles" in n or "too few" in n for n in res.notes):
            short += 1
        per_series.append({"host": r.host, "site": r.site, "metric": r.metric, "labels": r.labels, "points": obs,
                           "flagged": int(res.points["anomaly"].sum()) if len(res.points) else 0,
                           "periods": len(res.periods), "method": res.method, "notes": "; ".join(res.notes)})
        for p in res.periods.itertuples(index=False):
            pt = res.points.loc[p.peak_time]
            rows.append({"host": r.host, "site": r.site, "metric": r.metric, "labels": r.labels, "start": p.start,
                         "end": p.end, "points": p.points, "flagged": p.flagged, "peak_score": p.peak_score,
                         "peak_time": p.peak_time, "direction": p.direction, "value": float(pt["value"]),
                         "expected": float(pt["expected"])})
    periods = pd.DataFrame(rows, columns=PERIOD_COLUMNS)
    if len(periods):
        periods = periods.sort_values("peak_score", key=lambda x: -x.abs(), kind="stable").reset_index(drop=True)
    if inv.empty:
        notes.append("no series to check in the store")
    if short:
        notes.append(f"{short} series have less than two weeks (or two days) of history: weekly (or daily) cycles "
                     "are not modelled there and weekday/weekend differences may be flagged")
    rep = AnomalyReport(periods, pd.DataFrame(per_series, columns=SERIES_COLUMNS), float(threshold),
                        STATED_FALSE_ALARM_RATE, checked, notes, results, now_ts)
    return rep
