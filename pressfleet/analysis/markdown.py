"""The markdown each analysis flow publishes (tables, conclusions, links to the PNGs and CSVs)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from pressfleet.analysis.report import file_link, fmt_bytes, fmt_num, fmt_usd, md_table


def _days(x) -> str:
    return "-" if x is None or pd.isna(x) else f"{float(x):.1f}"


def _interval(row, prefix: str) -> str:
    d, e, l_ = row.get(prefix), row.get(prefix + "_earliest"), row.get(prefix + "_latest")
    if pd.isna(e) and pd.isna(d):
        return "beyond horizon"
    return f"{_days(d) if pd.notna(d) else '>h'} ({_days(e)}–{_days(l_) if pd.notna(l_) else '>h'})"


def _value(row, col: str) -> str:
    v = row.get(col)
    if v is None or pd.isna(v):
        return "-"
    if row.get("unit") == "B":
        return fmt_bytes(v)
    if row.get("unit") == "req/s":
        return f"{v:.2f} req/s"
    return f"{v:.1f} {row.get('unit', '')}".strip()


def _links(charts: list[Path], tables: list[Path]) -> list[str]:
    out = []
    if charts:
        out += ["", "**Charts:** " + ", ".join(file_link(p) for p in charts)]
    if tables:
        out += ["", "**Tables (CSV):** " + ", ".join(file_link(p) for p in tables)]
    return out


def capacity_markdown(rep, charts: list[Path], tables: list[Path]) -> str:
    t = rep.table
    now = f"{rep.now:%Y-%m-%d %H:%M} UTC" if rep.now is not None else "-"
    lines = [f"# Capacity forecast, {rep.horizon_days:g} days ahead", "",
             f"As of the newest point in the store ({now}); {len(rep.hosts)} host(s). Forecasts: MSTL over daily "
             "and weekly cycles + the trend model that best forecast each series' own last days; intervals are "
             "90 %. Days are counted from the newest point: mean (earliest–latest the interval allows).", ""]
    att = rep.attention()
    lines += ["## Needs attention", ""]
    if att.empty:
        lines.append("Nothing: every resource has headroom for the horizon.")
    else:
        stale = att[att["status"] == "stale"]
        att = pd.concat([att[att["status"] != "stale"],
                         stale.groupby("host", as_index=False).first().assign(
                             resource="every resource", advice=lambda d: d["advice"].str.split(": check").str[0]
                             + ": check the host or its collector (or retire it)")])
        lines.append(md_table(att, {"host": "host", "resource": "resource", "status": "status",
                                    "advice": "advice"}))
    rows = []
    for _, r in t.iterrows():
        rows.append({"host": r["host"], "what": r["resource"] + (f" {r['site']}" if r["site"] else ""),
                     "now": _value(r, "current"), "in horizon": _value(r, "forecast"),
                     "interval": f"{_value(r, 'lower')} – {_value(r, 'upper')}",
                     "limit": _value(r, "limit"),
                     "days to limit": _interval(r, "days_to_limit") if pd.notna(r["limit"]) else "-",
                     "days to full": _interval(r, "days_to_full") if str(r["resource"]).startswith("disk:") else "-",
                     "status": r["status"], "advice": r["advice"]})
    lines += ["", "## Every resource", "", md_table(pd.DataFrame(rows))]
    if rep.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in rep.notes]
    lines += _links(charts, tables)
    return "\n".join(lines)


def anomalies_markdown(rep, charts: list[Path], tables: list[Path]) -> str:
    p = rep.periods
    lines = ["# Anomalies", "",
             f"{len(rep.series)} series checked, {rep.points_checked:,} points; {len(p)} anomalous period(s), "
             f"{int(p['flagged'].sum()) if len(p) else 0} flagged point(s).", "",
             f"**False-alarm rate:** {rep.statement()}", ""]
    if len(p):
        lines += ["## Flagged periods (largest first)", "",
                  md_table(p.head(50), ["host", "site", "metric", "labels", "start", "end", "points", "peak_score",
                                        "direction", "value", "expected"],
                           {"peak_score": lambda v: f"{v:+.1f}", "value": lambda v: f"{v:.4g}",
                            "expected": lambda v: f"{v:.4g}"})]
    else:
        lines.append("No anomalies.")
    if rep.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in rep.notes]
    lines += _links(charts, tables)
    return "\n".join(lines)


def cost_markdown(rep, charts: list[Path], tables: list[Path]) -> str:
    tot = rep.totals
    cur = rep.prices.currency
    lines = ["# Cost report", "",
             f"Prices are {cur} list prices unless edited in the PriceTable block: check your provider.", "",
             "| | per month |", "| --- | --- |",
             f"| backup storage | {fmt_usd(tot['backup_usd_month'])} (in 12 months at today's growth: "
             f"{fmt_usd(tot['backup_usd_month_in_12'])}) |",
             f"| servers | {fmt_usd(tot['servers_usd_month'])} |",
             f"| **total** | **{fmt_usd(tot['total_usd_month'])}** |",
             f"| savings found | {fmt_usd(tot['total_savings_usd_month'])} (backups "
             f"{fmt_usd(tot['backup_savings_usd_month'])}, servers {fmt_usd(tot['server_savings_usd_month'])}) |", ""]
    lines += ["## Backup storage per provider and class", "",
              md_table(rep.storage, formats={"stored_gb": lambda v: f"{v:,.1f}", "usd_month": fmt_usd,
                                             "usd_month_in_12": fmt_usd, "savings_usd_month": fmt_usd}),
              "", f"Stored = latest backup x {rep.prices.retained_copies:g} copies kept.", "",
              "## Backups per site", "",
              md_table(rep.backups, ["host", "site", "provider", "storage_class", "backup_gb", "growth_gb_month",
                                     "usd_month", "usd_month_in_12", "suggested_class", "savings_usd_month"],
                       {"usd_month": fmt_usd, "usd_month_in_12": fmt_usd, "savings_usd_month": fmt_usd,
                        "backup_gb": lambda v: f"{v:,.2f}", "growth_gb_month": lambda v: fmt_num(v, 2)}),
              "", "## Servers: utilization and right-sizing", "",
              md_table(rep.servers, ["host", "size", "usd_month", "cpu_p95", "mem_p95", "action", "recommended",
                                     "savings_usd_month", "payback_months", "roi_12m", "notes"],
                       {"usd_month": fmt_usd, "savings_usd_month": fmt_usd,
                        "cpu_p95": lambda v: f"{fmt_num(v)} %", "mem_p95": lambda v: f"{fmt_num(v)} %",
                        "payback_months": lambda v: fmt_num(v), "roi_12m": lambda v: "-" if pd.isna(v) or
                        not math.isfinite(v) else f"{v:.0%}"}),
              "", f"CPU and memory are 95th percentiles over the last two weeks; a right size keeps them under "
                  f"70 % and 75 %. Payback = one-off work ({rep.prices.migration_hours:g} h x "
                  f"{fmt_usd(rep.prices.hourly_rate_usd)}) / monthly savings; ROI over 12 months."]
    if rep.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in rep.notes]
    lines += _links(charts, tables)
    return "\n".join(lines)


def trends_markdown(rep, charts: list[Path], tables: list[Path]) -> str:
    lines = ["# Trends", "", "## Suggestions", ""] + [f"- {s}" for s in rep.suggestions]
    lines += ["", "## Bottleneck per host (the resource that runs out first)", "",
              md_table(rep.bottlenecks, ["host", "resource", "utilization_pct", "days_to_limit",
                                         "days_to_limit_earliest", "status", "suggestion"],
                       {"utilization_pct": lambda v: f"{fmt_num(v)} %", "days_to_limit": _days,
                        "days_to_limit_earliest": _days})]
    notable = rep.notable()
    lines += ["", "## Week over week (changes of 10 % or more)", "",
              md_table(notable, ["host", "site", "metric", "labels", "this_week", "last_week", "unit", "change_pct"],
                       {"this_week": lambda v: f"{v:.4g}", "last_week": lambda v: f"{v:.4g}",
                        "change_pct": lambda v: f"{v:+.1f} %"}, max_rows=60)]
    if rep.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in rep.notes]
    lines += _links(charts, tables)
    return "\n".join(lines)
