"""What one collection round tells the alert rules: observations for `AlertStore.put_observations`.

The watcher probes every 30 s what it can see from outside (HTTPS, SSH); collect-metrics (every 5 minutes)
sees inside the host: MariaDB and Redis answering, PHP-FPM queueing, disks and inodes filling, PHP fatal
errors in each site's log, the newest verified backup's age. This turns one host's parsed round into
`(resource id, check, value, evidence)` rows; the watcher reads the rows no older than 15 minutes. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Optional

from pressfleet.metrics import collect

Row = tuple[str, str, Optional[float], dict]


def server_id(name: str) -> str:
    return f"pressfleet.server.{name}"


def site_id(name: str) -> str:
    return f"pressfleet.site.{name}"


def _note(metrics: collect.HostMetrics, prefix: str) -> str:
    return next((n for n in metrics.notes if n.startswith(prefix)), "")


def _worst_percent(metrics: collect.HostMetrics, used: str, total: str) -> Optional[tuple[float, str]]:
    """The fullest mount's percentage and mount point."""
    totals = {dict(s.labels).get("mount"): s.value for s in metrics.samples if s.name == total and s.value > 0}
    worst = None
    for s in metrics.samples:
        mount = dict(s.labels).get("mount")
        if s.name == used and mount in totals:
            pct = round(100 * s.value / totals[mount], 1)
            if worst is None or pct > worst[0]:
                worst = (pct, mount)
    return worst


FPM_PREFIX = "php.max_children_reached."


def fpm_max_children_delta(now: Mapping[str, float], previous: Optional[Mapping[str, float]]
                           ) -> Optional[tuple[float, dict]]:
    """How often the host's pools reached max_children since the previous round: per pool (a counter since its
    php-fpm started, so a drop is a restart and what it counts since is new), summed over the pools both rounds
    read; (total, {site: delta} of the pools that did). None when no pool can be compared, or the previous
    round is over an hour old."""
    prev = dict(previous or {})
    if not prev or now.get("time", 0) - prev.get("time", 0) > collect.MAX_PREVIOUS_AGE_SECONDS:
        return None
    total, pools, compared = 0.0, {}, 0
    for key, value in now.items():
        if not key.startswith(FPM_PREFIX) or key not in prev:
            continue
        compared += 1
        d = value - prev[key] if value >= prev[key] else value
        if d > 0:
            total += d
            pools[key[len(FPM_PREFIX):]] = d
    return (total, pools) if compared else None


def host_observations(server: str, metrics: collect.HostMetrics, *, sites: Mapping[str, str],
                      previous: Optional[Mapping[str, float]] = None) -> list[Row]:
    """The rows of one collected host. `server` is its Server block's name, `sites` maps the domains checked on
    it to their site names, `previous` is the host's counters of the round before (for the FPM delta)."""
    rows: list[Row] = []
    sid = server_id(server)
    if metrics.get(collect.UP) != 1.0:
        return rows  # not collected: the watcher's ssh_up says why
    if metrics.get(collect.MARIADB_QUERIES) is not None:
        rows.append((sid, "mariadb_up", 1.0, {}))
    elif note := _note(metrics, "mariadb"):
        rows.append((sid, "mariadb_up", 0.0, {"error": note}))
    if metrics.get(collect.REDIS_USED_MEMORY_BYTES) is not None:
        rows.append((sid, "redis_up", 1.0, {}))
    elif note := _note(metrics, "redis"):
        rows.append((sid, "redis_up", 0.0, {"error": note}))
    delta = fpm_max_children_delta(metrics.counters, previous)
    if delta is not None:
        rows.append((sid, "php_max_children_reached", delta[0], {"pools": delta[1]}))
    for check, used, total in (("disk_used_percent", collect.DISK_USED_BYTES, collect.DISK_TOTAL_BYTES),
                               ("inodes_used_percent", collect.INODES_USED, collect.INODES_TOTAL)):
        worst = _worst_percent(metrics, used, total)
        if worst is not None:
            rows.append((sid, check, worst[0], {"mount": worst[1]}))
    for s in metrics.samples:
        name = sites.get(s.site)
        if not name:
            continue
        if s.name == collect.PHP_FATALS:
            newest = metrics.details.get(s.key) or {}
            rows.append((site_id(name), "php_fatal_count", s.value,
                         {"window_minutes": collect.FATAL_WINDOW_SECONDS // 60, **newest}))
    return rows
