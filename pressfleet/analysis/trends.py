"""Trends: week-over-week change of every metric, the resource each host runs out of first (its bottleneck),
and suggestions.

    rep = trend_report(store)                 # runs a capacity report too, unless given one
    rep.week_over_week   # host, site, metric, labels, this_week, last_week, change_pct, note
    rep.bottlenecks      # per host: resource, days to its limit (and interval), utilization, suggestion
    rep.suggestions      # sentences, most urgent first
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pressfleet.analysis import metric_names as mn
from pressfleet.analysis.capacity import CapacityReport, capacity_report
from pressfleet.analysis.data import fleet_now, inventory, load, store_for
from pressfleet.metrics.forecast import prepare

# constants (sizes, counts of vCPUs) and status codes do not trend
SKIP = {mn.CPU_COUNT, mn.MEM_TOTAL_BYTES, mn.DISK_TOTAL_BYTES, mn.INODES_TOTAL, mn.UP, mn.HTTP_STATUS,
        mn.TLS_DAYS_LEFT, mn.BACKUP_AGE_SECONDS}  # countdowns and clocks: their weekly mean says nothing
# counts of rare events: a few more or fewer make big percentages; listed, not suggested
RARE_EVENTS = {mn.PHP_SLOW_REQUESTS, mn.PHP_MAX_CHILDREN_REACHED, mn.MARIADB_SLOW_QUERIES}
WOW_COLUMNS = ["host", "site", "metric", "labels", "unit", "this_week", "last_week", "change_pct", "note"]
BOTTLENECK_COLUMNS = ["host", "resource", "utilization_pct", "days_to_limit", "days_to_limit_earliest",
                      "days_to_limit_latest", "status", "suggestion"]
NOTABLE_PCT = 10.0


@dataclass
class TrendReport:
    week_over_week: pd.DataFrame
    bottlenecks: pd.DataFrame
    suggestions: list[str]
    notes: list[str] = field(default_factory=list)
    capacity: CapacityReport | None = None
    now: pd.Timestamp | None = None

    def notable(self, pct: float = NOTABLE_PCT) -> pd.DataFrame:
        w = self.week_over_week
        return w[w["change_pct"].abs() >= pct].sort_values("change_pct", key=lambda x: -x.abs())


def week_over_week(store: Any = None, *, metrics: list[str] | None = None, hosts: list[str] | None = None,
                   now: Any = None) -> pd.DataFrame:
    """Mean of the last 7 days against the 7 before, per series (counters: their rate per second)."""
    st = store_for(store)
    inv = inventory(st, metrics)
    inv = inv[~inv["metric"].isin(SKIP)]
    if hosts:
        inv = inv[inv["host"].isin(hosts)]
    now_ts = pd.Timestamp(now) if now is not None else fleet_now(st)
    rows = []
    for r in inv.itertuples(index=False):
        s = load(st, r.metric, r.host, r.site, r.labels, days=15, end=now_ts)
        info = mn.METRICS.get(r.metric)
        unit = info.unit if info else ""
        note = ""
        if s.attrs.get("kind") == "counter":
            p = prepare(s, kind="counter")
            s = p.y
            unit = f"{unit}/s"
        row = {"host": r.host, "site": r.site, "metric": r.metric, "labels": r.labels, "unit": unit,
               "this_week": math.nan, "last_week": math.nan, "change_pct": math.nan}
        if s.empty:
            note = "no data"
        else:
            this = s[s.index > now_ts - pd.Timedelta(days=7)]
            prev = s[(s.index > now_ts - pd.Timedelta(days=14)) & (s.index <= now_ts - pd.Timedelta(days=7))]
            if len(this) < 24:
                note = ("no data this week: last seen " + f"{s.index[-1]:%Y-%m-%d %H:%M} UTC" if len(this) == 0
                        else f"only {len(this)} hour(s) this week")
            if len(prev) < 24:
                note = (note + "; " if note else "") + ("less than a day of data the week before"
                                                        if len(prev) else "no data the week before")
            if len(this):
                row["this_week"] = float(this.mean())
            if len(prev):
                row["last_week"] = float(prev.mean())
            if len(this) >= 24 and len(prev) >= 24 and abs(row["last_week"]) > 1e-12:
                row["change_pct"] = (row["this_week"] / row["last_week"] - 1) * 100
        row["note"] = note
        rows.append(row)
    return pd.DataFrame(rows, columns=WOW_COLUMNS)


def bottlenecks(cap: CapacityReport) -> pd.DataFrame:
    """Per host, the resource that reaches its limit first (by the forecast's mean, then its pessimistic
    bound); with none in the horizon, the one used most."""
    t = cap.table
    rows = []
    if t.empty:
        return pd.DataFrame(columns=BOTTLENECK_COLUMNS)
    for host, g in t.groupby("host", sort=True):
        g = g[g["limit"].notna()].copy()
        if g.empty:
            continue
        g["util"] = np.where(g["unit"] == "%", g["current"], g["current"] / g["capacity"] * 100)
        g["_d"] = g["days_to_limit"].fillna(np.inf)
        g["_e"] = g["days_to_limit_earliest"].fillna(np.inf)
        g["_u"] = -g["util"].fillna(-1)
        best = g.sort_values(["_d", "_e", "_u"], kind="stable").iloc[0]
        res = best["resource"]
        if math.isfinite(best["_d"]):
            sugg = f"{res} reaches its limit first, in {best['_d']:.0f} days: {best['advice']}"
        elif math.isfinite(best["_e"]):
            sugg = f"{res} may reach its limit within {cap.horizon_days:g} days (upper bound): {best['advice']}"
        else:
            sugg = f"nothing runs out within {cap.horizon_days:g} days; {res} is the most used ({best['util']:.0f} %)"
        if best["status"] == "stale":
            sugg = f"stopped reporting: {best['advice']}"
        rows.append({"host": host, "resource": res, "utilization_pct": float(best["util"]),
                     "days_to_limit": best["days_to_limit"], "days_to_limit_earliest": best["days_to_limit_earliest"],
                     "days_to_limit_latest": best["days_to_limit_latest"], "status": best["status"],
                     "suggestion": sugg})
    return pd.DataFrame(rows, columns=BOTTLENECK_COLUMNS)


def trend_report(store: Any = None, *, capacity: CapacityReport | None = None, hosts: list[str] | None = None,
                 horizon_days: float = 30, now: Any = None) -> TrendReport:
    st = store_for(store)
    cap = capacity if capacity is not None else capacity_report(st, horizon_days=horizon_days, hosts=hosts, now=now)
    now_ts = pd.Timestamp(now) if now is not None else fleet_now(st)
    wow = week_over_week(st, hosts=hosts, now=now_ts) if now_ts is not None else pd.DataFrame(columns=WOW_COLUMNS)
    bn = bottlenecks(cap)
    notes = list(cap.notes)
    if len(wow) and wow["change_pct"].isna().all():
        notes.append("less than two weeks of history: no week-over-week change yet")
    sugg: list[str] = []
    order = {"critical": 0, "act": 1, "watch": 2, "stale": 3, "ok": 4, "no data": 5}
    for r in bn.assign(_o=bn["status"].map(order)).sort_values("_o", kind="stable").itertuples(index=False):
        if r.status != "ok":
            sugg.append(f"{r.host}: {r.suggestion}")
    if len(wow):
        big = wow[(wow["change_pct"].abs() >= 25) & ~wow["metric"].isin(RARE_EVENTS)]
        big = big.sort_values("change_pct", key=lambda x: -x.abs())
        for r in big.head(10).itertuples(index=False):
            where = r.host + (f" {r.site}" if r.site else "")
            sugg.append(f"{where}: {r.metric} {r.change_pct:+.0f} % week over week ({r.this_week:.3g} vs "
                        f"{r.last_week:.3g} {r.unit}): see whether it is expected")
    if not sugg:
        sugg.append("nothing needs attention: every resource has headroom for the horizon and no metric moved "
                    "by 25 % or more week over week")
    return TrendReport(wow, bn, sugg, notes, cap, now_ts)
