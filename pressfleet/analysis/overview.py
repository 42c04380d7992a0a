"""The fleet overview: one row per site an operator reads every morning, from the metrics store and what the
flow gathered (backups, last change); rendered as a markdown table (the artifact, `pressfleet status`) and a
static HTML page with a response-time chart per site.

Uptime is the share of collection rounds in which the site answered 2xx or 3xx: over the last 24 hours from the
raw points, over 30 days from the hourly rollups (an hour counts as up when every round in it was).
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from pressfleet.analysis import metric_names as mn
from pressfleet.metrics.store import MetricsStore, parse_labels


@dataclass(frozen=True)
class SiteInput:
    """What the overview flow gathered about a site (the I/O is done)."""

    site: str
    domain: str
    server: str  # the Server block's name, or its address
    host: str  # the host's name in the metrics store
    newest_backup: datetime | None = None
    verified: bool = False
    backup_note: str = ""
    last_change: dict = field(default_factory=dict)


@dataclass
class SiteRow:
    site: str
    domain: str
    server: str
    wordpress: str = ""
    updates_pending: int | None = None
    newest_backup: datetime | None = None
    verified: bool = False
    tls_days: float | None = None
    uptime_24h: float | None = None
    uptime_30d: float | None = None
    ttfb_s: float | None = None
    disk_free: float | None = None  # share of the host's / that is free
    last_change: dict = field(default_factory=dict)
    ttfb_24h: pd.Series | None = None
    backup_note: str = ""


def _ok(status: pd.Series) -> pd.Series:
    return (status >= 200) & (status < 400)


def _last(series: pd.Series) -> float | None:
    return float(series.iloc[-1]) if len(series) else None


def belongs_to(label: str, domain: str, mapped: tuple[str, ...] = ()) -> bool:
    """Whether a probed address LABEL is a subsite of the network at DOMAIN: DOMAIN/slug, slug.DOMAIN or one of its
    mapped domains."""
    return label != domain and (label.startswith(domain + "/") or label.endswith("." + domain) or label in mapped)


def with_subsites(store: MetricsStore, inputs: list[SiteInput],
                  networks: dict[str, tuple[str, ...]]) -> list[SiteInput]:
    """INPUTS with, after each network's row, a row per subsite the probes saw (collect-metrics probes each one
    at its address): NETWORKS maps a network's site name to its mapped domains. A subsite row shares the
    network's server and backups (a network is backed up whole)."""
    from dataclasses import replace

    if not networks:
        return inputs
    seen = store.list_series(mn.HTTP_STATUS)
    out = []
    for i in inputs:
        out.append(i)
        if i.site not in networks or not len(seen):
            continue
        labels = sorted(set(seen[seen["host"] == i.host]["site"]))
        out += [replace(i, domain=label) for label in labels if belongs_to(label, i.domain, networks[i.site])]
    return out


def uptime(store: MetricsStore, host: str, domain: str, day: pd.Timestamp, month: pd.Timestamp
           ) -> tuple[float | None, float | None]:
    """The share of probes the site answered over the last day and 30 days: the watcher's (every 30 s, from
    outside) where it has probed the site, else collection's HTTP status (every 5 minutes, from the host)."""
    probes = store.read_series(mn.PROBE_UP, host, domain, start=day)
    if len(probes):
        mean = store.read_series(mn.PROBE_UP, host, domain, start=month, resolution="hour", field="mean")
        count = store.read_series(mn.PROBE_UP, host, domain, start=month, resolution="hour", field="count")
        month_share = float((mean * count).sum() / count.sum()) if len(count) and count.sum() else None
        return float(probes.mean()), month_share
    status = store.read_series(mn.HTTP_STATUS, host, domain, start=day)
    hourly_min = store.read_series(mn.HTTP_STATUS, host, domain, start=month, resolution="hour", field="min")
    hourly_max = store.read_series(mn.HTTP_STATUS, host, domain, start=month, resolution="hour", field="max")
    return (float(_ok(status).mean()) if len(status) else None,
            float(((hourly_min >= 200) & (hourly_max < 400)).mean()) if len(hourly_min) else None)


def site_rows(store: MetricsStore, inputs: list[SiteInput], now: datetime) -> list[SiteRow]:
    """Every site's row as the store has it at NOW."""
    now_ts = pd.Timestamp(now)
    day, month = now_ts - pd.Timedelta(days=1), now_ts - pd.Timedelta(days=30)
    pending = store.list_series(mn.UPDATES_PENDING)
    rows = []
    for i in inputs:
        row = SiteRow(site=i.site, domain=i.domain, server=i.server, newest_backup=i.newest_backup,
                      verified=i.verified, last_change=i.last_change, backup_note=i.backup_note)
        mine = pending[pending["site"] == i.domain].sort_values("last") if len(pending) else pending
        if len(mine):
            latest = mine.iloc[-1]
            row.wordpress = parse_labels(latest["labels"]).get("core", "")
            row.updates_pending = int(_last(store.read_series(mn.UPDATES_PENDING, latest["host"], i.domain,
                                                               labels=latest["labels"])) or 0)
        row.uptime_24h, row.uptime_30d = uptime(store, i.host, i.domain, day, month)
        row.ttfb_24h = store.read_series(mn.TTFB_SECONDS, i.host, i.domain, start=day)
        row.ttfb_s = _last(row.ttfb_24h)
        row.tls_days = _last(store.read_series(mn.TLS_DAYS_LEFT, i.host, i.domain, start=month))
        used = _last(store.read_series(mn.DISK_USED_BYTES, i.host, labels={mn.MOUNT_LABEL: "/"}, start=day))
        total = _last(store.read_series(mn.DISK_TOTAL_BYTES, i.host, labels={mn.MOUNT_LABEL: "/"}, start=day))
        if used is not None and total:
            row.disk_free = max(0.0, 1 - used / total)
        rows.append(row)
    return rows


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.2%}" if x < 1 else "100%"


def _backup(row: SiteRow, now: datetime) -> str:
    if row.newest_backup is None:
        return "none" + (f" ({row.backup_note})" if row.backup_note else "")
    hours = (now - row.newest_backup) / timedelta(hours=1)
    return f"{hours:.0f} h ago, {'verified' if row.verified else 'NOT verified'}"


def _change(row: SiteRow) -> str:
    c = row.last_change
    return f"{c.get('job', '')} {c.get('run_name', '')} {c.get('at', '')[:16].replace('T', ' ')}".strip() if c else "–"


COLUMNS = ["site", "server", "WordPress", "updates", "last backup", "TLS days", "uptime 24 h", "uptime 30 d",
           "response", "disk free", "last change"]


def table(rows: list[SiteRow], now: datetime) -> list[dict[str, str]]:
    """The overview as plain strings, one dict per site (COLUMNS)."""
    out = []
    for r in rows:
        out.append({
            "site": r.domain, "server": r.server, "WordPress": r.wordpress or "?",
            "updates": "?" if r.updates_pending is None else str(r.updates_pending) if r.updates_pending else "up to date",
            "last backup": _backup(r, now), "TLS days": "–" if r.tls_days is None else f"{r.tls_days:.0f}",
            "uptime 24 h": _pct(r.uptime_24h), "uptime 30 d": _pct(r.uptime_30d),
            "response": "–" if r.ttfb_s is None else f"{r.ttfb_s * 1000:.0f} ms",
            "disk free": _pct(r.disk_free), "last change": _change(r),
        })
    return out


def markdown(rows: list[SiteRow], now: datetime) -> str:
    lines = [f"# Fleet overview, {now:%Y-%m-%d %H:%M} UTC", "", f"{len(rows)} sites.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    for r in table(rows, now):
        lines.append("| " + " | ".join(r[c].replace("|", "\\|") for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def text(rows: list[SiteRow], now: datetime) -> str:
    """The table for a terminal: aligned columns."""
    data = table(rows, now)
    widths = {c: max([len(c), *(len(r[c]) for r in data)]) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in COLUMNS) for r in data]
    return "\n".join(line.rstrip() for line in lines)


def _sparkline(series: pd.Series | None) -> str:
    """A small PNG of the last 24 h of response times (matplotlib), as a data: URI; '' without points."""
    if series is None or len(series) < 2:
        return ""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.8, 0.45), dpi=100)
    ax.plot(series.index, series.to_numpy() * 1000, linewidth=1, color="#2a6fb0")
    ax.axis("off")
    fig.subplots_adjust(0, 0, 1, 1)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", transparent=True)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def html(rows: list[SiteRow], now: datetime) -> str:
    """The static page (Jinja2 with autoescape: a site's name or a change note cannot inject markup)."""
    import jinja2

    from pressfleet.paths import TEMPLATES

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES / "reports")), autoescape=True)
    data = table(rows, now)
    for d, r in zip(data, rows):
        d["chart"] = _sparkline(r.ttfb_24h)
        d["attention"] = (not r.verified) or (r.uptime_24h is not None and r.uptime_24h < 0.999) or \
            (r.tls_days is not None and r.tls_days < 14) or (r.disk_free is not None and r.disk_free < 0.1)
    return env.get_template("overview.html.j2").render(rows=data, columns=COLUMNS, now=now)
