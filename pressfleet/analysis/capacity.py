"""Capacity: forecast each host's disks, memory, CPU and traffic (and each site's database) and say when
headroom runs out, with prediction intervals and advice.

    rep = capacity_report(store, horizon_days=30)
    rep.table        # one row per host and resource (disk:<mount>, memory, cpu, traffic, database per site)
    rep.forecasts    # (host, site, resource) -> ForecastResult, for charts
    rep.notes        # what a reader should know (short histories, hosts that stopped reporting, ...)

Forecasts are `pressfleet.metrics.forecast.forecast` (MSTL over daily and weekly cycles + the trend model that
best forecast the series' own last days; 90 % intervals); crossings are `days_until` (the mean, and the
earliest and latest days the interval allows), counted from the newest point in the store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pressfleet.analysis import metric_names as mn
from pressfleet.analysis.data import fleet_now, inventory, label, load, store_for
from pressfleet.metrics.forecast import ForecastResult, days_until, forecast_many

GIB = 1024**3
STALE_AFTER = pd.Timedelta(hours=6)
HISTORY_DAYS = 35  # what the models see (a month and a bit: four weekly cycles)

COLUMNS = ["host", "site", "resource", "unit", "current", "peak_7d", "capacity", "limit", "forecast", "lower",
           "upper", "days_to_limit", "days_to_limit_earliest", "days_to_limit_latest", "days_to_full",
           "days_to_full_earliest", "days_to_full_latest", "status", "advice", "method", "last_seen", "notes"]
STATUS_ORDER = {"critical": 0, "act": 1, "watch": 2, "stale": 3, "no data": 4, "ok": 5}


@dataclass
class Limits:
    disk_pct: float = 90.0      # a disk with less than 10 % free needs attention
    memory_pct: float = 90.0
    cpu_pct: float = 85.0
    traffic_growth_pct: float = 25.0  # traffic growing more than this over the horizon is worth a look


@dataclass
class CapacityReport:
    table: pd.DataFrame
    forecasts: dict[tuple[str, str, str], ForecastResult] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    horizon_days: float = 30.0
    now: pd.Timestamp | None = None
    limits: Limits = field(default_factory=Limits)

    @property
    def hosts(self) -> list[str]:
        return sorted(self.table["host"].unique()) if len(self.table) else []

    def attention(self) -> pd.DataFrame:
        """Rows that need someone: critical, act, watch or stale."""
        return self.table[self.table["status"].isin(["critical", "act", "watch", "stale"])]


@dataclass
class _Job:
    host: str
    site: str
    resource: str
    unit: str
    series: pd.Series
    kwargs: dict
    capacity: float | None = None     # full (bytes, 100 %)
    limit: float | None = None        # the headroom threshold
    scale: float = 1.0                # for display (e.g. total bytes behind a memory percentage)
    notes: list[str] = field(default_factory=list)


def capacity_report(store: Any = None, *, horizon_days: float = 30, hosts: list[str] | None = None,
                    limits: Limits | None = None, now: Any = None, workers: int = 1) -> CapacityReport:
    """Forecast every host's capacity `horizon_days` ahead (see the module's docstring)."""
    st = store_for(store)
    limits = limits or Limits()
    inv = inventory(st)
    now_ts = pd.Timestamp(now) if now is not None else fleet_now(st, inv)
    notes: list[str] = []
    if now_ts is None or inv.empty:
        return CapacityReport(pd.DataFrame(columns=COLUMNS), {}, ["the store holds no metrics yet"], horizon_days,
                              None, limits)
    if now_ts.tzinfo is None:
        now_ts = now_ts.tz_localize("UTC")
    if hosts:
        missing = sorted(set(hosts) - set(inv["host"]))
        if missing:
            notes.append(f"no metrics for host(s) {', '.join(missing)}")
        inv = inv[inv["host"].isin(hosts)]
    horizon = max(1, int(round(horizon_days * 24)))
    jobs = _jobs(st, inv, now_ts, limits)
    by_kw: dict[str, list[_Job]] = {}
    for j in jobs:
        by_kw.setdefault(repr(sorted(j.kwargs.items())), []).append(j)
    rows, fcs = [], {}
    for group in by_kw.values():
        results = forecast_many([j.series for j in group], horizon, workers=workers, now=now_ts, **group[0].kwargs)
        for j, fc in zip(group, results):
            fcs[(j.host, j.site, j.resource)] = fc
            rows.append(_row(j, fc, now_ts, horizon_days, limits))
    table = pd.DataFrame(rows, columns=COLUMNS)
    if len(table):
        table = (table.assign(_o=table["status"].map(STATUS_ORDER))
                 .sort_values(["host", "_o", "resource"], kind="stable").drop(columns="_o").reset_index(drop=True))
        stale = sorted(table.loc[table["status"] == "stale", "host"].unique())
        if stale:
            notes.append(f"no recent data from {', '.join(stale)}: the host may be gone (forecasts start from its "
                         "last point)")
        short = table["notes"].str.contains("not modelled|naive|no trend", regex=True)
        if short.any():
            notes.append(f"{int(short.sum())} series have less than two weeks of history: weekly cycles not "
                         "modelled, intervals wider (see each row's notes)")
    return CapacityReport(table, fcs, notes, horizon_days, now_ts, limits)


def _jobs(st, inv: pd.DataFrame, now: pd.Timestamp, limits: Limits) -> list[_Job]:
    jobs: list[_Job] = []
    for host in sorted(inv["host"].unique()):
        hv = inv[inv["host"] == host]
        have = set(hv["metric"])

        def get(metric, site="", labels=""):
            return load(st, metric, host, site, labels, days=HISTORY_DAYS, end=now)

        for _, r in hv[hv["metric"] == mn.DISK_USED_BYTES].iterrows():
            mount = label(r["labels"], mn.MOUNT_LABEL) or r["labels"] or "?"
            used = get(mn.DISK_USED_BYTES, labels=r["labels"])
            total = get(mn.DISK_TOTAL_BYTES, labels=r["labels"]) if mn.DISK_TOTAL_BYTES in have else pd.Series()
            size = float(total.iloc[-1]) if len(total) else None
            j = _Job(host, "", f"disk:{mount}", "B", used, {"nonnegative": True}, size,
                     size * limits.disk_pct / 100 if size else None)
            if size is None:
                j.notes.append("disk size unknown (no disk_total_bytes): no days-to-full")
            jobs.append(j)
        if mn.MEM_USED_BYTES in have:
            used = get(mn.MEM_USED_BYTES)
            total = get(mn.MEM_TOTAL_BYTES) if mn.MEM_TOTAL_BYTES in have else pd.Series(dtype="float64")
            if len(total) and len(used):
                tot = total.reindex(used.index.union(total.index)).ffill().bfill().reindex(used.index)
                pct = (used / tot * 100).rename("mem_used_percent")
                jobs.append(_Job(host, "", "memory", "%", pct, {"bounds": (0.0, 100.0)}, 100.0, limits.memory_pct,
                                 scale=float(total.iloc[-1])))
            else:
                j = _Job(host, "", "memory", "B", used, {"nonnegative": True})
                j.notes.append("memory size unknown (no mem_total_bytes): no headroom figures")
                jobs.append(j)
        if mn.CPU_PERCENT in have:
            jobs.append(_Job(host, "", "cpu", "%", get(mn.CPU_PERCENT), {"bounds": (0.0, 100.0)}, 100.0,
                             limits.cpu_pct))
        if mn.NGINX_REQUESTS in have:
            jobs.append(_Job(host, "", "traffic", "req/s", get(mn.NGINX_REQUESTS), {"kind": "counter"}))
        for _, r in hv[hv["metric"] == mn.MARIADB_DB_BYTES].iterrows():
            jobs.append(_Job(host, r["site"], "database", "B", get(mn.MARIADB_DB_BYTES, r["site"], r["labels"]),
                             {"nonnegative": True}))
    return jobs


def _f(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def _row(j: _Job, fc: ForecastResult, now: pd.Timestamp, horizon_days: float, limits: Limits) -> dict:
    hist = fc.history if fc.history is not None else pd.Series(dtype="float64")
    notes = list(j.notes) + [n for n in fc.notes if "rounded" not in n]
    row = {c: math.nan for c in COLUMNS}
    row.update(host=j.host, site=j.site, resource=j.resource, unit=j.unit, capacity=_f(j.capacity),
               limit=_f(j.limit), method=fc.method, advice="", status="ok")
    if hist is None or len(hist) == 0:
        row.update(status="no data", advice="no data to forecast from: check the collector", notes="; ".join(notes),
                   last_seen=None)
        return row
    last_seen = fc.last_observed
    row["last_seen"] = last_seen
    row["current"] = _f(hist.iloc[-1])
    week = hist[hist.index > hist.index[-1] - pd.Timedelta(days=7)]
    row["peak_7d"] = _f(np.percentile(week.to_numpy(), 95))
    day = min(24, len(fc.mean))
    if day:
        row["forecast"] = _f(fc.mean.iloc[-day:].mean())
        row["lower"] = _f(fc.lower.iloc[-day:].min())
        row["upper"] = _f(fc.upper.iloc[-day:].max())
    if j.limit is not None and day:
        c = days_until(fc, j.limit, now=now)
        row.update(days_to_limit=_f(c.days), days_to_limit_earliest=_f(c.days_earliest),
                   days_to_limit_latest=_f(c.days_latest))
        if c.already:
            row.update(days_to_limit=0.0, days_to_limit_earliest=0.0, days_to_limit_latest=0.0)
        if j.resource.startswith("disk:") and j.capacity:
            f = days_until(fc, j.capacity, now=now)
            row.update(days_to_full=_f(f.days), days_to_full_earliest=_f(f.days_earliest),
                       days_to_full_latest=_f(f.days_latest))
            if f.already:
                row.update(days_to_full=0.0, days_to_full_earliest=0.0, days_to_full_latest=0.0)
    stale = last_seen is not None and now - last_seen > STALE_AFTER
    status, advice = _advise(j, row, fc, horizon_days, limits)
    if stale:
        status = "stale"
        advice = (f"no data since {last_seen:%Y-%m-%d %H:%M} UTC: check the host or its collector (or retire it). "
                  + advice)
    row.update(status=status, advice=advice, notes="; ".join(notes))
    return row


def _within(days: float, horizon: float) -> bool:
    return not math.isnan(days) and days <= horizon


def _advise(j: _Job, row: dict, fc: ForecastResult, horizon: float, limits: Limits) -> tuple[str, str]:
    res = j.resource
    lim_d, lim_e = row["days_to_limit"], row["days_to_limit_earliest"]
    if res.startswith("disk:"):
        mount = res.split(":", 1)[1]
        if j.capacity is None:
            return "ok", "add disk_total_bytes to see when it fills"
        full_e = row["days_to_full_earliest"]
        need = _f(fc.upper.max()) / (limits.disk_pct / 100) if len(fc.upper) else math.nan
        grow = f"grow {mount} to {math.ceil(need / GIB)} GiB" if math.isfinite(need) else f"grow {mount}"
        if mount in ("/var/lib/mysql",) or "mysql" in mount:
            other = "purge old binary logs and check the largest tables"
        else:
            other = "prune old local backups and logs, or move backups to object storage"
        if lim_d == 0.0:
            return "critical", f"{mount} is past {limits.disk_pct:g} % now: {other}, or {grow}"
        if _within(full_e, horizon) or _within(lim_d, horizon):
            when = (f"fills in {row['days_to_full']:.0f} days" if _within(row['days_to_full'], horizon)
                    else f"passes {limits.disk_pct:g} % in {lim_d:.0f} days")
            return "act", f"{mount} {when}: {other}, or {grow}"
        if _within(lim_e, horizon):
            return "watch", f"{mount} may pass {limits.disk_pct:g} % within {horizon:g} days (upper bound): {other}"
        return "ok", "enough room for the horizon"
    if res == "memory":
        if j.unit != "%":
            return "ok", "add mem_total_bytes to judge headroom"
        need = j.scale * (_f(fc.upper.max()) / 100) / (limits.memory_pct / 100) if j.scale else math.nan
        size = f"resize to {max(1, math.ceil(need / GIB))} GiB RAM" if math.isfinite(need) else "add RAM"
        if lim_d == 0.0:
            return "critical", (f"memory above {limits.memory_pct:g} % now: lower PHP-FPM workers or {size}; "
                                "if it climbed steadily, look for a leak (restart php-fpm)")
        if _within(lim_d, horizon):
            return "act", f"memory passes {limits.memory_pct:g} % in {lim_d:.0f} days: {size} or lower PHP-FPM workers"
        if _within(lim_e, horizon):
            return "watch", f"memory may pass {limits.memory_pct:g} % (upper bound): watch it"
        return "ok", "enough memory for the horizon"
    if res == "cpu":
        if lim_d == 0.0:
            return "critical", f"CPU above {limits.cpu_pct:g} % now: add vCPUs or cache more (page cache, Redis)"
        if _within(lim_d, horizon):
            return "act", f"CPU passes {limits.cpu_pct:g} % in {lim_d:.0f} days: add vCPUs or cache more"
        if _within(lim_e, horizon):
            return "watch", f"CPU may pass {limits.cpu_pct:g} % at peaks (upper bound)"
        return "ok", "enough CPU for the horizon"
    if res in ("traffic", "database"):
        hist = fc.history
        recent = float(hist[hist.index > hist.index[-1] - pd.Timedelta(days=7)].mean())
        growth = (row["forecast"] / recent - 1) * 100 if recent > 0 and math.isfinite(row["forecast"]) else math.nan
        if res == "traffic":
            if math.isfinite(growth) and growth > limits.traffic_growth_pct:
                return "watch", f"traffic +{growth:.0f} % in {horizon:g} days: watch CPU and PHP workers"
            return "ok", (f"traffic {growth:+.0f} % over {horizon:g} days" if math.isfinite(growth)
                          else "traffic forecast")
        per_month = (row["forecast"] - row["current"]) / max(horizon, 1e-9) * 30
        return "ok", f"database grows {per_month / GIB:+.2f} GiB a month" if math.isfinite(per_month) else "ok"
    return "ok", ""
