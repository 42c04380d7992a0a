"""Synthetic fleet histories for the demo, the tests and the benchmarks (deterministic by seed).

Each host serves a few sites. Traffic follows the audience's day (a late-morning and an evening peak, quiet
nights) and week (quieter, later weekends), grows over the weeks, and carries autocorrelated noise; CPU,
load, PHP-FPM workers, MariaDB threads, time to first byte and the Redis hit ratio follow the traffic. Memory
and disks grow slowly (disks with a daily log-rotation sawtooth); TLS certificates count down and renew at
30 days left; backups run nightly. On top of that, when asked: incidents (a disk filling, a traffic spike,
a memory leak), counter resets when nginx restarts, collection gaps, and a host that disappears.

    hist = generate_history(seed=1, hosts=4, days=30)
    hist.points      # long DataFrame: time, host, site, metric, labels, value (store.write_points takes it)
    hist.series("disk_used_bytes", "web-01", labels={"mount": "/"})
    hist.incidents   # what was injected, where and when

`generate_series(metric, seed=...)` gives one clean series quickly (benchmarks, tests).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pressfleet.analysis import metric_names as mn
from pressfleet.metrics.store import canonical_labels

GIB = 1024**3
DEFAULT_END = pd.Timestamp("2025-06-02T00:00:00Z")  # a Monday: the default keeps histories reproducible

# metric -> (kind, scope, unit): every metric the collector stores (pressfleet.analysis.metric_names)
METRICS: dict[str, tuple[str, str, str]] = {m: tuple(info) for m, info in mn.METRICS.items()}
MOUNTS = ("/", "/var/lib/mysql")
INCIDENT_KINDS = ("disk_filling", "traffic_spike", "memory_leak")
# where each host's backups are kept (provider, storage class), as priced by the PriceTable block
BACKUP_TARGETS = (("s3", "standard"), ("gcs", "nearline"), ("azure", "cool"), ("s3", "standard_ia"))


@dataclass(frozen=True)
class Incident:
    kind: str
    host: str
    metrics: tuple[str, ...]
    start: pd.Timestamp
    end: pd.Timestamp
    site: str = ""
    labels: str = ""
    detail: str = ""


@dataclass
class History:
    points: pd.DataFrame
    incidents: list[Incident] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    sites: dict[str, list[str]] = field(default_factory=dict)
    disk_sizes: dict[tuple[str, str], float] = field(default_factory=dict)
    ended: dict[str, pd.Timestamp] = field(default_factory=dict)  # hosts that disappeared, and when
    freq: str = "1h"
    _index: tuple[int, dict] | None = field(default=None, repr=False, compare=False)

    def series(self, metric: str, host: str, site: str = "", labels: Mapping[str, Any] | str | None = None
               ) -> pd.Series:
        metric = mn.canonical(metric)
        p = self.points
        if self._index is None or self._index[0] != id(p):
            self._index = (id(p), p.groupby(["metric", "host", "site", "labels"], sort=False).indices)
        rows = self._index[1].get((metric, host, site or "", canonical_labels(labels)))
        if rows is None:
            return pd.Series([], dtype="float64", index=pd.DatetimeIndex([], tz="UTC"), name=metric)
        sel = p.iloc[rows]
        out = pd.Series(sel["value"].to_numpy(), index=pd.DatetimeIndex(sel["time"]), name=metric)
        out.attrs["kind"] = mn.kind_of(metric)
        return out

    def keys(self) -> list[tuple[str, str, str, str]]:
        """(metric, host, site, labels) of every series."""
        k = self.points[["metric", "host", "site", "labels"]].drop_duplicates()
        return [tuple(r) for r in k.itertuples(index=False)]


def _rng(seed: int, *names: Any) -> np.random.Generator:
    """A generator for one (seed, host, metric, ...) that does not depend on what else is generated."""
    tag = zlib.crc32("\x1f".join(map(str, names)).encode())
    return np.random.default_rng([seed, tag])


def _ar1(rng: np.random.Generator, n: int, phi: float, sigma: float) -> np.ndarray:
    """AR(1) noise with stationary standard deviation `sigma`."""
    from scipy.signal import lfilter

    e = rng.normal(0.0, sigma * np.sqrt(1 - phi * phi), n)
    e[0] = rng.normal(0.0, sigma)
    return lfilter([1.0], [1.0, -phi], e)


def _day_profile(local_hour: np.ndarray, weekend: np.ndarray) -> np.ndarray:
    """Relative traffic by local hour: quiet at 4 am, a late-morning and an evening peak (later on weekends)."""
    morning = np.where(weekend, 12.5, 11.0)
    p = (0.25
         + 0.75 * np.exp(-0.5 * ((local_hour - morning) / 2.6) ** 2)
         + 0.6 * np.exp(-0.5 * ((local_hour - 20.5) / 2.2) ** 2)
         + 0.35 * np.exp(-0.5 * ((local_hour - 15.0) / 3.0) ** 2))
    return p / 1.3


def _week_factor(local_dow: np.ndarray) -> np.ndarray:
    return np.array([1.0, 1.02, 1.0, 0.98, 0.93, 0.74, 0.70])[local_dow]


@dataclass
class _HostPlan:
    name: str
    sites: list[str]
    tz: float
    cpus: int
    mem_total: float
    base_rps: float
    capacity_rps: float
    growth_per_day: float
    disk_size: dict[str, float]
    disk_start: dict[str, float]
    disk_growth_per_day: dict[str, float]


def _plan(seed: int, i: int, sites_per_host: int) -> _HostPlan:
    r = _rng(seed, "plan", i)
    name = f"web-{i + 1:02d}"
    sites = [f"site{i + 1}-{j + 1}.example.org" for j in range(sites_per_host)]
    cpus = int(r.choice([1, 2, 2, 4, 4, 8]))
    base = float(r.lognormal(np.log(4.0), 0.6))
    sizes = {"/": float(r.choice([40, 80, 160])) * GIB, "/var/lib/mysql": float(r.choice([20, 50, 100])) * GIB}
    start = {m: sizes[m] * float(r.uniform(0.25, 0.6)) for m in MOUNTS}
    growth = {m: sizes[m] * float(r.uniform(0.0005, 0.004)) for m in MOUNTS}
    return _HostPlan(
        name=name, sites=sites, tz=float(r.choice([-7, -5, 0, 1, 2])), cpus=cpus,
        mem_total=float(r.choice([2, 4, 8, 16])) * GIB, base_rps=base,
        capacity_rps=base * float(r.uniform(3.0, 6.0)) * (cpus / 2) ** 0.5,
        growth_per_day=float(r.uniform(0.0, 0.012)), disk_size=sizes, disk_start=start, disk_growth_per_day=growth,
    )


def generate_history(*, seed: int = 0, hosts: int = 4, sites_per_host: int = 2, days: float = 30,
                     freq: str = "1h", end: Any = None, incidents: bool = True, resets: bool = True,
                     gaps: bool = True, disappearing_host: bool = True,
                     metrics: tuple[str, ...] | None = None) -> History:
    """A fleet's history ending at `end` (default 2025-06-02 00:00 UTC), one point per `freq` per series.

    incidents: one disk filling, one traffic spike and one memory leak on different hosts (the first hosts);
    resets: nginx restarts reset its request counter; gaps: collection outages (all of a host's series) and
    single dropped points; disappearing_host: the last host stops reporting at about 70 % of the span.
    """
    end_ts = pd.Timestamp(end if end is not None else DEFAULT_END)
    end_ts = end_ts.tz_localize("UTC") if end_ts.tzinfo is None else end_ts.tz_convert("UTC")
    step = pd.Timedelta(freq)
    n = int(round(pd.Timedelta(days=days) / step))
    times = pd.date_range(end=end_ts - step, periods=n, freq=step, tz="UTC")
    step_h = step / pd.Timedelta(hours=1)
    wanted = set(metrics or METRICS)
    frames: list[pd.DataFrame] = []
    hist = History(points=pd.DataFrame(), freq=freq)
    plans = [_plan(seed, i, sites_per_host) for i in range(hosts)]
    kinds = list(INCIDENT_KINDS) if incidents else []
    for i, plan in enumerate(plans):
        hist.hosts.append(plan.name)
        hist.sites[plan.name] = plan.sites
        kind = kinds[i] if i < len(kinds) else None
        cols = _host_series(seed, plan, times, step_h, kind, resets, hist)
        host_frames = []
        for (metric, site, labels), values in cols.items():
            if metric not in wanted:
                continue
            host_frames.append(pd.DataFrame({"time": times, "host": plan.name, "site": site, "metric": metric,
                                             "labels": labels, "value": values}))
        df = pd.concat(host_frames, ignore_index=True)
        keep = np.ones(len(df), dtype=bool)
        r = _rng(seed, "gaps", plan.name)
        if gaps:
            t_idx = np.tile(np.arange(n), len(host_frames))
            for _ in range(int(r.integers(1, 4))):  # collection outages: the whole host, 1-12 hours
                length = max(1, int(round(r.uniform(1, 12) / step_h)))
                s = int(r.integers(n // 10, max(n // 10 + 1, n - length)))
                keep &= ~((t_idx >= s) & (t_idx < s + length))
            keep &= r.random(len(df)) > 0.002  # single dropped points
        if disappearing_host and hosts > 1 and i == hosts - 1:
            gone = times[int(n * 0.7)]
            hist.ended[plan.name] = gone
            keep &= (df["time"] < gone).to_numpy()
        frames.append(df[keep])
    hist.points = pd.concat(frames, ignore_index=True)
    hist.disk_sizes = {(p.name, canonical_labels({"mount": m})): p.disk_size[m] for p in plans for m in MOUNTS}
    return hist


def _host_series(seed: int, plan: _HostPlan, times: pd.DatetimeIndex, step_h: float, incident: str | None,
                 resets: bool, hist: History) -> dict[tuple[str, str, str], np.ndarray]:
    n = len(times)
    h = plan.name
    r = _rng(seed, h, "host")
    epoch_days = (times - times[0]) / pd.Timedelta(days=1)
    t_days = np.asarray(epoch_days, dtype="float64")
    local = times + pd.Timedelta(hours=plan.tz)
    local_hour = np.asarray(local.hour + local.minute / 60.0, dtype="float64")
    dow = np.asarray(local.day_of_week)
    weekend = dow >= 5
    phi = 0.75 ** step_h if step_h < 1 else 0.6  # noise memory of about four hours at any step

    traffic_shape = _day_profile(local_hour, weekend) * _week_factor(dow)
    growth = (1 + plan.growth_per_day) ** t_days
    rps = plan.base_rps * traffic_shape * growth * np.exp(_ar1(_rng(seed, h, "rps"), n, phi, 0.07))
    spike = np.zeros(n)
    if incident == "traffic_spike":
        s = int(n * 0.8) + int(r.integers(0, max(1, n // 20)))
        busy = np.nonzero((local_hour[s:] >= 10) & (local_hour[s:] < 14))[0]  # a campaign at a busy hour
        s = s + int(busy[0]) if len(busy) else s
        length = max(1, int(round(r.uniform(3, 6) / step_h)))
        spike[s:s + length] = 1.0
        rps = rps * (1 + 4.0 * spike)
        hist.incidents.append(Incident("traffic_spike", h, (mn.NGINX_REQUESTS, mn.CPU_PERCENT, mn.LOAD1,
                                                             mn.PHP_ACTIVE_PROCESSES, mn.MARIADB_THREADS_CONNECTED,
                                                             mn.TTFB_SECONDS),
                                       times[s], times[min(n - 1, s + length - 1)], detail="requests x5"))
    util = np.clip(rps / plan.capacity_rps, 0, 1.5)
    out: dict[tuple[str, str, str], np.ndarray] = {}

    cpu = 2.0 + 75.0 * util + _ar1(_rng(seed, h, "cpu"), n, phi, 1.5)
    out[(mn.CPU_PERCENT, "", "")] = np.clip(cpu, 0.0, 100.0)
    load = plan.cpus * np.clip(cpu, 0, 100) / 100 * 1.1 + np.abs(_ar1(_rng(seed, h, "load"), n, phi, 0.08))
    out[(mn.LOAD1, "", "")] = np.maximum(load, 0.0)
    rp = _rng(seed, h, "php")
    out[(mn.PHP_ACTIVE_PROCESSES, "", "")] = rp.poisson(np.maximum(rps * 0.12 * (1 + util**2), 0.05)).astype(float) + 1
    rm = _rng(seed, h, "maria")
    out[(mn.MARIADB_THREADS_CONNECTED, "", "")] = 2.0 + rm.poisson(np.maximum(rps * 0.06, 0.05))
    hit = 0.975 - 0.04 * util + _ar1(_rng(seed, h, "redis"), n, phi, 0.004)
    out[(mn.REDIS_HIT_RATIO, "", "")] = np.clip(hit, 0.0, 1.0)

    # Memory: a base, a traffic-driven part, slow growth; a leak climbs until the service restarts.
    mem = plan.mem_total * (0.32 + 0.12 * np.clip(util, 0, 1) + 0.002 * t_days)
    mem = mem * (1 + _ar1(_rng(seed, h, "mem"), n, phi, 0.01))
    if incident == "memory_leak":
        s = int(n * 0.55)
        e = min(n, s + int(n * 0.3))
        leak = np.zeros(n)
        leak[s:e] = np.linspace(0, 0.35 * plan.mem_total, e - s)
        mem = mem + leak
        hist.incidents.append(Incident("memory_leak", h, (mn.MEM_USED_BYTES,), times[s], times[e - 1],
                                       detail="+35% of RAM, then a restart"))
    mem = np.clip(mem, 0, plan.mem_total)
    out[(mn.MEM_USED_BYTES, "", "")] = mem

    # Disks: linear growth plus logs that grow through the day and are compressed at midnight.
    for m in MOUNTS:
        lab = canonical_labels({"mount": m})
        rd = _rng(seed, h, "disk", m)
        size = plan.disk_size[m]
        used = plan.disk_start[m] + plan.disk_growth_per_day[m] * t_days
        if m == "/":
            used = used + size * 0.004 * np.mod(np.asarray(times.hour + times.minute / 60.0), 24) / 24
        used = used + np.cumsum(rd.normal(0, size * 2e-5, n)) + rd.normal(0, size * 1e-5, n)
        if incident == "disk_filling" and m == "/":
            s = int(n * 0.6)
            fill = np.zeros(n)
            rate = (size - used[s]) * 0.9 / max(1.0, (n - s) * step_h) * 0.6  # would fill ~ weeks later
            fill[s:] = rate * step_h * np.arange(n - s)
            used = used + fill
            hist.incidents.append(Incident("disk_filling", h, (mn.DISK_USED_BYTES,), times[s], times[-1],
                                           labels=lab, detail=f"+{rate * 24 / GIB:.2f} GiB/day"))
        out[(mn.DISK_USED_BYTES, "", lab)] = np.clip(used, 0, size)
        out[(mn.DISK_TOTAL_BYTES, "", lab)] = np.full(n, size)
        inodes_total = round(size / 16384)
        out[(mn.INODES_TOTAL, "", lab)] = np.full(n, float(inodes_total))
        out[(mn.INODES_USED, "", lab)] = np.round(np.clip(used, 0, size) / (size / inodes_total) * 0.35)

    # nginx's request counter: cumulative requests, back to zero when nginx restarts.
    reqs = rps * step_h * 3600 * np.exp(_rng(seed, h, "reqnoise").normal(0, 0.02, n))
    counter = np.cumsum(reqs)
    if resets:
        rr = _rng(seed, h, "restarts")
        for k in sorted(rr.choice(np.arange(n // 10, n), size=int(rr.integers(1, 3)), replace=False)):
            counter[k:] -= counter[k - 1] + reqs[k] * rr.uniform(0.2, 0.9)
            hist.incidents.append(Incident("counter_reset", h, (mn.NGINX_REQUESTS,), times[k], times[k],
                                           detail="nginx restarted"))
    out[(mn.NGINX_REQUESTS, "", "")] = np.round(np.maximum(counter, 0))
    _more_host_series(seed, plan, times, step_h, rps, util, cpu, mem, reqs, out)

    for j, site in enumerate(plan.sites):
        rs = _rng(seed, h, site)
        base = float(rs.uniform(120, 450))
        ttfb = base * (1 + 0.8 * np.clip(util, 0, 1.5) ** 2) * np.exp(_ar1(_rng(seed, h, site, "ttfb"), n, phi, 0.08))
        out[(mn.TTFB_SECONDS, site, "")] = ttfb / 1000.0
        # TLS: 90-day certificates renewed at 30 days left.
        first_left = float(rs.uniform(31, 90))
        left = first_left - t_days
        while (left < 30).any():
            k = int(np.argmax(left < 30))
            left[k:] = left[k:] + 60.0
        out[(mn.TLS_DAYS_LEFT, site, "")] = left
        # Backups: nightly at about 02:30 local; the age in hours since the last one finished.
        done_hour = 2.5 + float(rs.uniform(0, 1.5))
        hours_since = np.mod(local_hour - done_hour, 24)
        age = hours_since + float(rs.uniform(0.2, 0.6))
        missed_day = int(rs.integers(3, max(4, int(t_days[-1]) - 1))) if t_days[-1] > 5 else -1
        if incident is not None and j == 0 and missed_day > 0:  # one night's backup fails: a day older
            day_idx = np.floor((local - local[0].normalize()) / pd.Timedelta(days=1)).astype(int)
            after_missed = (np.asarray(day_idx) == missed_day) & (hours_since < 24) & (local_hour >= done_hour)
            before_next = (np.asarray(day_idx) == missed_day + 1) & (local_hour < done_hour)
            age = np.where(after_missed | before_next, age + 24, age)
            hit = np.nonzero(after_missed | before_next)[0]
            if len(hit):
                hist.incidents.append(Incident("backup_missed", h, (mn.BACKUP_AGE_SECONDS,), times[hit[0]],
                                               times[hit[-1]], site=site, detail="one nightly backup failed"))
        out[(mn.BACKUP_AGE_SECONDS, site, "")] = age * 3600.0
        _more_site_series(seed, plan, j, site, times, t_days, local, done_hour, util, spike, out)
    return out


def _more_host_series(seed: int, plan: _HostPlan, times: pd.DatetimeIndex, step_h: float, rps: np.ndarray,
                      util: np.ndarray, cpu: np.ndarray, mem: np.ndarray, reqs: np.ndarray,
                      out: dict[tuple[str, str, str], np.ndarray]) -> None:
    """The rest of the collector's host metrics, driven by the same traffic (counters without resets)."""
    n = len(times)
    h = plan.name
    phi = 0.75 ** step_h if step_h < 1 else 0.6
    out[(mn.CPU_COUNT, "", "")] = np.full(n, float(plan.cpus))
    out[(mn.MEM_TOTAL_BYTES, "", "")] = np.full(n, plan.mem_total)
    over = np.clip(mem / plan.mem_total - 0.85, 0, None)
    out[(mn.SWAP_USED_BYTES, "", "")] = np.round(plan.mem_total * (0.01 + over))
    secs = step_h * 3600
    body = 45_000 * np.exp(_ar1(_rng(seed, h, "netb"), n, phi, 0.05))
    out[(mn.NET_TX_BYTES, "", "")] = np.round(np.cumsum(reqs * body))
    out[(mn.NET_RX_BYTES, "", "")] = np.round(np.cumsum(reqs * 1_800 + 2_000 * secs))
    rc = _rng(seed, h, "conns")
    out[(mn.NGINX_ACTIVE_CONNECTIONS, "", "")] = 1.0 + rc.poisson(np.maximum(rps * 0.8, 0.05))
    rx = _rng(seed, h, "maxch")
    out[(mn.PHP_MAX_CHILDREN_REACHED, "", "")] = np.cumsum(rx.poisson(np.clip(util - 0.8, 0, None) * 3 * step_h))
    out[(mn.PHP_SLOW_REQUESTS, "", "")] = np.cumsum(rx.poisson(reqs * 2e-5 * (1 + 4 * util**2)))
    queries = reqs * 28 * np.exp(_rng(seed, h, "q").normal(0, 0.03, n))
    out[(mn.MARIADB_QUERIES, "", "")] = np.round(np.cumsum(queries))
    out[(mn.MARIADB_SLOW_QUERIES, "", "")] = np.cumsum(rx.poisson(queries * 1e-6))
    bp = 0.995 - 0.01 * np.clip(util, 0, 1.5) + _ar1(_rng(seed, h, "bp"), n, phi, 0.001)
    out[(mn.MARIADB_BUFFER_POOL_HIT_RATIO, "", "")] = np.clip(bp, 0.0, 1.0)
    redis_max = min(max(plan.mem_total / 16, 16 * 2**20), 4 * GIB)
    fill = 1 - np.exp(-np.asarray((times - times[0]) / pd.Timedelta(days=2), dtype="float64"))
    out[(mn.REDIS_USED_MEMORY_BYTES, "", "")] = redis_max * (0.3 + 0.6 * fill) * (
        1 + _ar1(_rng(seed, h, "redism"), n, phi, 0.01))
    out[(mn.UP, "", "")] = np.ones(n)


def _more_site_series(seed: int, plan: _HostPlan, j: int, site: str, times: pd.DatetimeIndex, t_days: np.ndarray,
                      local: pd.DatetimeIndex, done_hour: float, util: np.ndarray, spike: np.ndarray,
                      out: dict[tuple[str, str, str], np.ndarray]) -> None:
    """Per-site database size, HTTP status and the latest backup's size (it changes when a backup runs)."""
    n = len(times)
    rs = _rng(seed, plan.name, site, "more")
    db0 = float(rs.uniform(0.05, 2.0)) * GIB
    db_growth = float(rs.uniform(0.001, 0.01))
    db = db0 * (1 + db_growth) ** t_days
    out[(mn.MARIADB_DB_BYTES, site, "")] = np.round(db)
    status = np.full(n, 200.0)
    status[(spike > 0) & (util > 1.2)] = 502.0
    out[(mn.HTTP_STATUS, site, "")] = status
    uploads0 = float(rs.uniform(0.5, 25.0)) * GIB
    uploads_growth = float(rs.uniform(0.001, 0.008))
    # the backup taken each night: database (compressed to a quarter) and uploads (already compressed)
    nights = np.floor((np.asarray((local - local[0].normalize()) / pd.Timedelta(hours=1), dtype="float64")
                       - done_hour) / 24)
    night_days = np.maximum(nights, 0) + 0.1
    size = db0 * (1 + db_growth) ** night_days / 4 + uploads0 * (1 + uploads_growth) ** night_days
    provider, storage_class = BACKUP_TARGETS[(int(plan.name.rsplit("-", 1)[-1]) - 1) % len(BACKUP_TARGETS)]
    lab = canonical_labels({mn.PROVIDER_LABEL: provider, mn.STORAGE_CLASS_LABEL: storage_class})
    out[(mn.BACKUP_BYTES, site, lab)] = np.round(size)
    # a release comes out now and then; the site is updated within a few days
    releases = np.floor(t_days / float(rs.uniform(7, 21)))
    out[(mn.UPDATES_PENDING, site, "")] = np.where((t_days % 7) < float(rs.uniform(1, 4)), np.minimum(releases, 3), 0.0)


def generate_series(metric: str = "cpu_percent", *, seed: int = 0, days: float = 30, freq: str = "1h",
                    end: Any = None, incident: str | None = None, host_index: int = 0,
                    labels: Mapping[str, Any] | None = None) -> pd.Series:
    """One clean host-level series (no gaps, no resets) of `metric`, optionally with one incident.

    For per-site metrics the host's first site is used; for disks, `labels` picks the mount (default '/').
    Names the generator used before pressfleet.analysis.metric_names (ttfb_ms, ...) give the renamed metric.
    """
    metric = mn.canonical(metric)
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    end_ts = pd.Timestamp(end if end is not None else DEFAULT_END)
    end_ts = end_ts.tz_localize("UTC") if end_ts.tzinfo is None else end_ts.tz_convert("UTC")
    step = pd.Timedelta(freq)
    n = int(round(pd.Timedelta(days=days) / step))
    times = pd.date_range(end=end_ts - step, periods=n, freq=step, tz="UTC")
    plan = _plan(seed, host_index, 1)
    hist = History(points=pd.DataFrame(), freq=freq)
    cols = _host_series(seed, plan, times, step / pd.Timedelta(hours=1), incident, False, hist)
    scope = METRICS[metric][1]
    site = plan.sites[0] if scope == "site" else ""
    lab = canonical_labels(labels if labels is not None else ({"mount": "/"} if scope == "mount" else None))
    if (metric, site, lab) not in cols and labels is None:  # a labelled per-site series (backup_bytes)
        lab = next((k[2] for k in cols if k[0] == metric and k[1] == site), lab)
    s = pd.Series(cols[(metric, site, lab)], index=times, name=metric)
    s.attrs["incidents"] = hist.incidents
    s.attrs["kind"] = mn.kind_of(metric)
    return s
