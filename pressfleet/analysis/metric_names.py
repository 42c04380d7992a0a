"""The names of the metrics pressfleet stores: the one list the collector, the generator and the analyses share.

A series in the store is (metric, host, site, labels). Host-level metrics have site ''; per-mount metrics carry
the label ``mount``; per-site metrics carry the site's domain. Counters only ever grow (until the service
restarts and they start again from zero): analyses turn them into rates per second.

``backup_bytes`` (per site) is what the site's backups occupy in storage (written by the backup flow after each
backup: the sum over its complete backups, full and incremental), labelled with where they are kept:
``{"provider": "s3", "storage_class": "standard"}`` (providers and classes as in the PriceTable block).
``updates_pending`` (per site) is how many of its components (core, plugins, themes) the release catalogue has a
newer release of (written by the check-updates flow).
``cpu_count`` (host) is the number of vCPUs, for sizing and cost; without it the cost report infers the size
from the host's memory.
"""

from __future__ import annotations

from typing import NamedTuple

# host, gauges
CPU_PERCENT = "cpu_percent"
CPU_COUNT = "cpu_count"
LOAD1 = "load1"
MEM_USED_BYTES = "mem_used_bytes"
MEM_TOTAL_BYTES = "mem_total_bytes"
SWAP_USED_BYTES = "swap_used_bytes"
NGINX_ACTIVE_CONNECTIONS = "nginx_active_connections"
PHP_ACTIVE_PROCESSES = "php_active_processes"
MARIADB_THREADS_CONNECTED = "mariadb_threads_connected"
MARIADB_BUFFER_POOL_HIT_RATIO = "mariadb_buffer_pool_hit_ratio"
REDIS_USED_MEMORY_BYTES = "redis_used_memory_bytes"
REDIS_HIT_RATIO = "redis_hit_ratio"
UP = "up"
# host, counters
NET_RX_BYTES = "net_rx_bytes"
NET_TX_BYTES = "net_tx_bytes"
NGINX_REQUESTS = "nginx_requests"
PHP_MAX_CHILDREN_REACHED = "php_max_children_reached"
PHP_SLOW_REQUESTS = "php_slow_requests"
MARIADB_QUERIES = "mariadb_queries"
MARIADB_SLOW_QUERIES = "mariadb_slow_queries"
# per mount (label "mount")
DISK_USED_BYTES = "disk_used_bytes"
DISK_TOTAL_BYTES = "disk_total_bytes"
INODES_USED = "inodes_used"
INODES_TOTAL = "inodes_total"
# per site
MARIADB_DB_BYTES = "mariadb_db_bytes"
HTTP_STATUS = "http_status"
TTFB_SECONDS = "ttfb_seconds"
TLS_DAYS_LEFT = "tls_days_left"
BACKUP_AGE_SECONDS = "backup_age_seconds"
BACKUP_BYTES = "backup_bytes"
UPDATES_PENDING = "updates_pending"
# per site, from the watcher (every 30 s, from outside): 1 answered, 0 not (not generated for the notebooks)
PROBE_UP = "probe_up"
PROBE_TTFB_SECONDS = "probe_ttfb_seconds"
# per site with a standby, from collect-metrics (host: the standby) and the dr-drill flow (not generated)
REPLICATION_OK = "replication_ok"
REPLICATION_LAG_SECONDS = "replication_lag_seconds"
REPLICATION_BEHIND_TRANSACTIONS = "replication_behind_transactions"
FILE_SYNC_AGE_SECONDS = "file_sync_age_seconds"
DR_RTO_SECONDS = "dr_rto_seconds"
DR_RPO_WRITES = "dr_rpo_writes"
DR_RPO_SECONDS = "dr_rpo_seconds"

MOUNT_LABEL = "mount"
PROVIDER_LABEL = "provider"
STORAGE_CLASS_LABEL = "storage_class"


class MetricInfo(NamedTuple):
    kind: str   # 'gauge' or 'counter'
    scope: str  # 'host', 'mount' or 'site'
    unit: str


METRICS: dict[str, MetricInfo] = {
    CPU_PERCENT: MetricInfo("gauge", "host", "%"),
    CPU_COUNT: MetricInfo("gauge", "host", "vCPUs"),
    LOAD1: MetricInfo("gauge", "host", ""),
    MEM_USED_BYTES: MetricInfo("gauge", "host", "B"),
    MEM_TOTAL_BYTES: MetricInfo("gauge", "host", "B"),
    SWAP_USED_BYTES: MetricInfo("gauge", "host", "B"),
    NET_RX_BYTES: MetricInfo("counter", "host", "B"),
    NET_TX_BYTES: MetricInfo("counter", "host", "B"),
    NGINX_REQUESTS: MetricInfo("counter", "host", "requests"),
    NGINX_ACTIVE_CONNECTIONS: MetricInfo("gauge", "host", "connections"),
    PHP_ACTIVE_PROCESSES: MetricInfo("gauge", "host", "workers"),
    PHP_MAX_CHILDREN_REACHED: MetricInfo("counter", "host", "events"),
    PHP_SLOW_REQUESTS: MetricInfo("counter", "host", "requests"),
    MARIADB_THREADS_CONNECTED: MetricInfo("gauge", "host", "threads"),
    MARIADB_QUERIES: MetricInfo("counter", "host", "queries"),
    MARIADB_SLOW_QUERIES: MetricInfo("counter", "host", "queries"),
    MARIADB_BUFFER_POOL_HIT_RATIO: MetricInfo("gauge", "host", "ratio"),
    REDIS_USED_MEMORY_BYTES: MetricInfo("gauge", "host", "B"),
    REDIS_HIT_RATIO: MetricInfo("gauge", "host", "ratio"),
    UP: MetricInfo("gauge", "host", "1/0"),
    DISK_USED_BYTES: MetricInfo("gauge", "mount", "B"),
    DISK_TOTAL_BYTES: MetricInfo("gauge", "mount", "B"),
    INODES_USED: MetricInfo("gauge", "mount", "inodes"),
    INODES_TOTAL: MetricInfo("gauge", "mount", "inodes"),
    MARIADB_DB_BYTES: MetricInfo("gauge", "site", "B"),
    HTTP_STATUS: MetricInfo("gauge", "site", "status"),
    TTFB_SECONDS: MetricInfo("gauge", "site", "s"),
    TLS_DAYS_LEFT: MetricInfo("gauge", "site", "days"),
    BACKUP_AGE_SECONDS: MetricInfo("gauge", "site", "s"),
    BACKUP_BYTES: MetricInfo("gauge", "site", "B"),
    UPDATES_PENDING: MetricInfo("gauge", "site", "updates"),
}

COUNTERS = frozenset(m for m, i in METRICS.items() if i.kind == "counter")

# Names the generator used before this list existed (still accepted by generate_series / History.series).
LEGACY_NAMES: dict[str, str] = {
    "disk_size_bytes": DISK_TOTAL_BYTES,
    "nginx_requests_total": NGINX_REQUESTS,
    "php_active": PHP_ACTIVE_PROCESSES,
    "mariadb_threads": MARIADB_THREADS_CONNECTED,
    "ttfb_ms": TTFB_SECONDS,
    "backup_age_hours": BACKUP_AGE_SECONDS,
}


def kind_of(metric: str) -> str:
    """'counter' or 'gauge' (metrics not in the list are gauges unless named like a counter)."""
    info = METRICS.get(metric)
    if info is not None:
        return info.kind
    return "counter" if metric.endswith("_total") or metric.endswith("_count") else "gauge"


def canonical(metric: str) -> str:
    return LEGACY_NAMES.get(metric, metric)
