"""Cost: backup storage per provider and storage class (sizes and growth from `backup_bytes`), servers'
monthly cost against their utilization, and right-sizing with monthly savings and payback.

    rep = cost_report(store, Prices())       # or the PriceTable block's .prices()
    rep.backups      # per site: provider, class, latest backup, growth a month, stored, $ now and in 12 months,
                     # the cheaper class for older copies and what it saves
    rep.storage      # per provider and class: stored GB, $ a month now and in 12 months
    rep.servers      # per host: size, $ a month, CPU and memory p95, the right size, savings, payback, ROI
    rep.totals       # monthly totals and the savings found
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pressfleet.analysis import metric_names as mn
from pressfleet.analysis.data import fleet_now, inventory, label, load, store_for
from pressfleet.analysis.pricing import Prices

GB = 1e9  # storage is priced per decimal GB
GIB = 1024**3
CPU_TARGET = 70.0   # after a resize, the p95 CPU should stay under this
MEM_TARGET = 75.0   # and memory under this
UTIL_DAYS = 14

BACKUP_COLUMNS = ["host", "site", "provider", "storage_class", "backup_gb", "growth_gb_month", "stored_gb",
                  "usd_month", "usd_month_in_12", "suggested_class", "savings_usd_month", "notes"]
SERVER_COLUMNS = ["host", "vcpus", "ram_gb", "size", "usd_month", "cpu_p95", "mem_p95", "recommended",
                  "recommended_usd_month", "savings_usd_month", "one_off_usd", "payback_months", "roi_12m",
                  "action", "notes"]


@dataclass
class CostReport:
    backups: pd.DataFrame
    storage: pd.DataFrame
    servers: pd.DataFrame
    totals: dict[str, float]
    notes: list[str] = field(default_factory=list)
    prices: Prices = field(default_factory=Prices)


def cost_report(store: Any = None, prices: Prices | None = None, *, now: Any = None) -> CostReport:
    st = store_for(store)
    prices = prices or Prices()
    inv = inventory(st)
    now_ts = pd.Timestamp(now) if now is not None else fleet_now(st, inv)
    notes: list[str] = []
    backups = _backups(st, inv, now_ts, prices, notes)
    servers = _servers(st, inv, now_ts, prices, notes)
    if len(backups):
        storage = (backups.groupby(["provider", "storage_class"], as_index=False)
                   .agg(sites=("site", "count"), stored_gb=("stored_gb", "sum"), usd_month=("usd_month", "sum"),
                        usd_month_in_12=("usd_month_in_12", "sum"), savings_usd_month=("savings_usd_month", "sum")))
    else:
        storage = pd.DataFrame(columns=["provider", "storage_class", "sites", "stored_gb", "usd_month",
                                        "usd_month_in_12", "savings_usd_month"])
    srv_save = servers.loc[servers["savings_usd_month"] > 0, "savings_usd_month"].sum() if len(servers) else 0.0
    totals = {
        "backup_usd_month": float(backups["usd_month"].sum()) if len(backups) else 0.0,
        "backup_usd_month_in_12": float(backups["usd_month_in_12"].sum()) if len(backups) else 0.0,
        "backup_savings_usd_month": float(backups["savings_usd_month"].sum()) if len(backups) else 0.0,
        "servers_usd_month": float(servers["usd_month"].sum()) if len(servers) else 0.0,
        "server_savings_usd_month": float(srv_save),
        "upsize_usd_month": float(-servers.loc[servers["savings_usd_month"] < 0, "savings_usd_month"].sum())
        if len(servers) else 0.0,
    }
    totals["total_usd_month"] = totals["backup_usd_month"] + totals["servers_usd_month"]
    totals["total_savings_usd_month"] = totals["backup_savings_usd_month"] + totals["server_savings_usd_month"]
    return CostReport(backups, storage, servers, totals, notes, prices)


def _growth_per_month(s: pd.Series) -> float:
    """Bytes a month, by a straight line through the daily last values (robust to the nightly steps)."""
    d = s.resample("1D").last().dropna()
    if len(d) < 3:
        return math.nan
    x = np.asarray((d.index - d.index[0]) / pd.Timedelta(days=1), dtype="float64")
    slope = np.polyfit(x, d.to_numpy(dtype="float64"), 1)[0]
    return float(slope * 30)


def _backups(st, inv: pd.DataFrame, now, prices: Prices, notes: list[str]) -> pd.DataFrame:
    rows = []
    bi = inv[inv["metric"] == mn.BACKUP_BYTES]
    if bi.empty:
        notes.append("no backup_bytes metric in the store: backup storage not costed")
    unknown = set()
    for r in bi.itertuples(index=False):
        s = load(st, mn.BACKUP_BYTES, r.host, r.site, r.labels, days=60, end=now)
        if s.empty:
            continue
        provider = label(r.labels, mn.PROVIDER_LABEL) or "local"
        klass = label(r.labels, mn.STORAGE_CLASS_LABEL) or "standard"
        price = prices.storage_price(provider, klass)
        row_notes = []
        if price is None:
            unknown.add(f"{provider}/{klass}")
            row_notes.append(f"no price for {provider}/{klass}")
            price = math.nan
        latest = float(s.iloc[-1]) / GB
        growth = _growth_per_month(s) / GB
        if math.isnan(growth):
            row_notes.append("less than three days of backups: growth unknown")
        copies = prices.retained_copies
        stored = latest * copies
        usd = stored * price
        in12 = (latest + 12 * (growth if math.isfinite(growth) else 0.0)) * copies * price
        suggested, savings = "", 0.0
        cold = prices.cheapest_cold(provider)
        older = max(0.0, copies - prices.hot_copies)
        if cold and klass != cold[0] and math.isfinite(price) and cold[1] < price and older > 0:
            suggested = cold[0]
            savings = older * latest * (price - cold[1])
            row_notes.append(f"keep the newest {prices.hot_copies} copies in {klass}, move older ones to {cold[0]} "
                             "(mind its minimum storage duration and retrieval fees)")
        if provider == "local":
            row_notes.append("backups on the server's own disk share its fate: copy them to object storage")
        rows.append({"host": r.host, "site": r.site, "provider": provider, "storage_class": klass,
                     "backup_gb": latest, "growth_gb_month": growth, "stored_gb": stored, "usd_month": usd,
                     "usd_month_in_12": in12, "suggested_class": suggested, "savings_usd_month": savings,
                     "notes": "; ".join(row_notes)})
    if unknown:
        notes.append(f"no price for {', '.join(sorted(unknown))}: add it to the PriceTable block")
    return pd.DataFrame(rows, columns=BACKUP_COLUMNS)


def _size_for(prices: Prices, vcpus: float, ram_gb: float):
    """The cheapest size with at least `vcpus` and `ram_gb` (None: none is that large)."""
    fits = [s for s in prices.servers if s.vcpus >= vcpus and s.ram_gb >= ram_gb - 1e-9]
    return min(fits, key=lambda s: (s.monthly_usd, s.vcpus, s.ram_gb)) if fits else None


def _current_size(prices: Prices, vcpus: float | None, ram_gb: float):
    """The price-table size that matches the host (closest RAM, then closest vCPUs, then the cheaper)."""
    cands = prices.servers
    if not cands:
        return None
    return min(cands, key=lambda s: (round(abs(math.log(s.ram_gb / max(ram_gb, 1e-3))), 6),
                                     abs(math.log(s.vcpus / vcpus)) if vcpus else 0, s.monthly_usd))


def _servers(st, inv: pd.DataFrame, now, prices: Prices, notes: list[str]) -> pd.DataFrame:
    rows = []
    one_off = prices.migration_hours * prices.hourly_rate_usd
    for host in sorted(inv["host"].unique()):
        have = set(inv.loc[inv["host"] == host, "metric"])
        row_notes = []
        if mn.MEM_TOTAL_BYTES not in have:
            continue
        total = load(st, mn.MEM_TOTAL_BYTES, host, days=UTIL_DAYS, end=now)
        if total.empty:
            continue
        ram_gb = float(total.iloc[-1]) / GIB
        vcpus = None
        if mn.CPU_COUNT in have:
            c = load(st, mn.CPU_COUNT, host, days=UTIL_DAYS, end=now)
            vcpus = int(round(float(c.iloc[-1]))) if len(c) else None
        size = _current_size(prices, vcpus, ram_gb)
        if size is not None and (vcpus not in (None, size.vcpus) or abs(size.ram_gb - ram_gb) > 0.25 * ram_gb):
            row_notes.append(f"no size in the price table is {vcpus or '?'} vCPU / {ram_gb:g} GB: priced as "
                             f"{size.name}")
        if vcpus is None:
            vcpus = size.vcpus if size else 1
            row_notes.append("no cpu_count: vCPUs taken from the closest size in the price table")
        cpu = load(st, mn.CPU_PERCENT, host, days=UTIL_DAYS, end=now) if mn.CPU_PERCENT in have else pd.Series()
        mem = load(st, mn.MEM_USED_BYTES, host, days=UTIL_DAYS, end=now) if mn.MEM_USED_BYTES in have else pd.Series()
        cpu_p95 = float(np.percentile(cpu, 95)) if len(cpu) else math.nan
        mem_p95 = float(np.percentile(mem, 95)) / GIB / ram_gb * 100 if len(mem) else math.nan
        last = max([s.index[-1] for s in (cpu, mem, total) if len(s)])
        row = {"host": host, "vcpus": vcpus, "ram_gb": ram_gb, "size": size.name if size else "",
               "usd_month": size.monthly_usd if size else math.nan, "cpu_p95": cpu_p95, "mem_p95": mem_p95,
               "recommended": "", "recommended_usd_month": math.nan, "savings_usd_month": 0.0,
               "one_off_usd": math.nan, "payback_months": math.nan, "roi_12m": math.nan, "action": "keep"}
        hours = (cpu.index[-1] - cpu.index[0]) / pd.Timedelta(days=1) if len(cpu) > 1 else 0
        if now is not None and now - last > pd.Timedelta(hours=6):
            row["action"] = "check"
            row_notes.append(f"no data since {last:%Y-%m-%d %H:%M} UTC: if the server is gone, its "
                             f"{'$%.2f' % row['usd_month'] if size else 'cost'} a month may still be billed")
        elif math.isnan(cpu_p95) or math.isnan(mem_p95):
            row_notes.append("CPU or memory missing: no recommendation")
        elif size is None:
            row_notes.append("no sizes in the price table")
        else:
            if hours < 7:
                row_notes.append(f"only {hours:.1f} days of utilization: a week or more gives a safer size")
            need_cpu = max(1, math.ceil(cpu_p95 / 100 * vcpus / (CPU_TARGET / 100) - 1e-9))
            need_ram = mem_p95 / 100 * ram_gb / (MEM_TARGET / 100)
            rec = _size_for(prices, need_cpu, need_ram)
            if rec is None:
                row.update(action="upsize", recommended="larger than the price table's largest")
            elif rec.name != size.name:
                save = size.monthly_usd - rec.monthly_usd
                row.update(recommended=rec.name, recommended_usd_month=rec.monthly_usd, savings_usd_month=save,
                           one_off_usd=one_off)
                if save > 0:
                    row["action"] = "downsize"
                    row["payback_months"] = one_off / save if save else math.nan
                    row["roi_12m"] = (12 * save - one_off) / one_off if one_off > 0 else math.inf
                elif save < 0 and (need_cpu > vcpus or need_ram > ram_gb):
                    row["action"] = "upsize"
                else:
                    row.update(recommended="", recommended_usd_month=math.nan, savings_usd_month=0.0,
                               one_off_usd=math.nan)
        row["notes"] = "; ".join(row_notes)
        rows.append(row)
    if not rows:
        notes.append("no mem_total_bytes in the store: servers not costed")
    return pd.DataFrame(rows, columns=SERVER_COLUMNS)
