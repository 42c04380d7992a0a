"""Charts of the analyses as PNG files (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

GIB = 1024**3
SHOW_DAYS = 14


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "chart"


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def capacity_charts(rep, directory: Path) -> list[Path]:
    """One PNG per host: each resource's recent history, forecast, 90 % interval and limit."""
    out = []
    t = rep.table
    for host in rep.hosts:
        rows = t[(t["host"] == host) & (t["site"] == "")]
        if rows.empty:
            continue
        n = len(rows)
        fig, axes = plt.subplots(n, 1, figsize=(9, 2.3 * n), squeeze=False, sharex=True)
        for ax, (_, r) in zip(axes[:, 0], rows.iterrows()):
            fc = rep.forecasts.get((host, "", r["resource"]))
            scale, unit = (GIB, "GiB") if r["unit"] == "B" else (1.0, r["unit"])
            if fc is not None and fc.history is not None and len(fc.history):
                h = fc.history[fc.history.index > fc.history.index[-1] - pd.Timedelta(days=SHOW_DAYS)]
                ax.plot(h.index, h / scale, lw=0.8, color="tab:blue", label="history")
                if len(fc.mean) and isinstance(fc.mean.index, pd.DatetimeIndex):
                    ax.plot(fc.mean.index, fc.mean / scale, lw=0.8, color="tab:orange", label="forecast")
                    ax.fill_between(fc.mean.index, fc.lower / scale, fc.upper / scale, color="tab:orange",
                                    alpha=0.2, lw=0, label=f"{fc.level:.0%} interval")
            if pd.notna(r["limit"]):
                ax.axhline(r["limit"] / scale, color="tab:red", lw=0.8, ls="--", label="limit")
            if pd.notna(r["capacity"]) and r["resource"].startswith("disk:"):
                ax.axhline(r["capacity"] / scale, color="black", lw=0.8, label="full")
            ax.set_ylabel(unit)
            ax.set_title(f"{host} {r['resource']}: {r['status']}", fontsize=9, loc="left")
            ax.grid(alpha=0.3)
        axes[0, 0].legend(fontsize=7, loc="upper left", ncol=5)
        axes[-1, 0].xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
        out.append(_save(fig, directory / f"capacity-{_safe(host)}.png"))
    return out


def anomaly_charts(rep, directory: Path, *, limit: int = 12) -> list[Path]:
    """One PNG per series with flagged periods (the most anomalous first): value, expected, flags."""
    out = []
    if rep.periods.empty:
        return out
    keys = rep.periods.drop_duplicates(["host", "site", "metric", "labels"]).head(limit)
    for r in keys.itertuples(index=False):
        res = rep.results.get((r.host, r.site, r.metric, r.labels))
        if res is None or res.points.empty:
            continue
        p = res.points
        fig, ax = plt.subplots(figsize=(9, 2.6))
        ax.plot(p.index, p["value"], lw=0.8, label="value")
        ax.plot(p.index, p["expected"], lw=0.8, alpha=0.8, label="expected")
        a = p[p["anomaly"]]
        ax.scatter(a.index, a["value"], color="tab:red", s=12, zorder=3, label=f"anomalies ({len(a)})")
        ax.set_title(f"{r.host} {r.site} {r.metric} {r.labels}".replace("  ", " "), fontsize=9, loc="left")
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
        out.append(_save(fig, directory / f"anomalies-{_safe(r.host + '-' + r.site + '-' + r.metric + r.labels)}.png"))
    return out


def cost_charts(rep, directory: Path) -> list[Path]:
    """Monthly cost now and in 12 months per provider/class, and per server (current vs right-sized)."""
    out = []
    if len(rep.storage):
        s = rep.storage
        labels = [f"{a}/{b}" for a, b in zip(s["provider"], s["storage_class"])]
        x = np.arange(len(s))
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.bar(x - 0.2, s["usd_month"], 0.4, label="now")
        ax.bar(x + 0.2, s["usd_month_in_12"], 0.4, label="in 12 months")
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_ylabel(f"{rep.prices.currency} / month")
        ax.set_title("Backup storage cost", fontsize=9, loc="left")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, axis="y")
        out.append(_save(fig, directory / "cost-backups.png"))
    if len(rep.servers):
        v = rep.servers
        x = np.arange(len(v))
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.bar(x - 0.2, v["usd_month"].fillna(0), 0.4, label="current size")
        ax.bar(x + 0.2, v["recommended_usd_month"].fillna(v["usd_month"]).fillna(0), 0.4, label="right-sized")
        ax.set_xticks(x, list(v["host"]), fontsize=8)
        ax.set_ylabel(f"{rep.prices.currency} / month")
        ax.set_title("Server cost", fontsize=9, loc="left")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, axis="y")
        out.append(_save(fig, directory / "cost-servers.png"))
    return out


def trend_charts(rep, directory: Path, *, top: int = 20) -> list[Path]:
    """The largest week-over-week changes as horizontal bars."""
    w = rep.week_over_week.dropna(subset=["change_pct"])
    if w.empty:
        return []
    w = w.reindex(w["change_pct"].abs().sort_values(ascending=False).index).head(top).iloc[::-1]
    labels = [f"{h} {s} {m}".replace("  ", " ") for h, s, m in zip(w["host"], w["site"], w["metric"])]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(w) + 1))
    ax.barh(labels, w["change_pct"], color=np.where(w["change_pct"] > 0, "tab:orange", "tab:blue"))
    ax.set_xlabel("change, this week vs last (%)")
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(alpha=0.3, axis="x")
    ax.set_title("Week over week", fontsize=9, loc="left")
    return [_save(fig, directory / "trends-week-over-week.png")]
