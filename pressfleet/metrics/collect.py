"""One metrics sample of a server, from one SSH round trip: the script, its arguments, and the parser.

`collect_command()` and `script_text()` give the remote command (`sh -s -- STATUS_PORT [SITE DOMAIN CERT
VHOST ERRLOG]...`, templates/scripts/collect_metrics.sh fed on stdin); `parse_metrics()` reads its output into
`Sample`s named by the constants below (the names the analysis flows read); `to_points()` turns them into
store points. Pure functions: nothing here talks to a server or a database.

What is measured, and how:

- CPU from two /proc/stat samples about a second apart inside the script (busy share of all CPUs, %);
- memory, swap, load from /proc; disk space and inodes per real mount (label `mount`); network bytes summed
  over every interface but `lo` (counters since boot);
- nginx stub_status and each site's PHP-FPM pool status from the loopback-only status server that
  provisioning sets up (`pressfleet.render.configs.STATUS_PORT`); MariaDB's SHOW GLOBAL STATUS and database sizes
  (as root through its unix socket); Redis INFO;
- per site: HTTP status and time to first byte of `https://<domain>/` fetched on the host itself through
  nginx (SNI and Host set), and the days until its certificate's notAfter.

Counters (`nginx_requests`, `mariadb_queries`, `mariadb_slow_queries`, `net_*_bytes`, `php_*`) are stored
as the raw cumulative values: a reader takes differences and treats a drop as a restart. The two hit ratios
are turned into ratios here: over the interval since the previous sample when its counters are given
(`previous`, from `HostMetrics.counters` of the last round), else since the service started; after a
restart (a counter or the service's uptime went down) the values since the restart are used.

A service that is not installed has no section, so its metrics are simply absent; a section that is
present but unreadable (service down, garbage) yields no metrics and a note, never an exception. Only an
output with no sections at all (the script did not run) raises `CollectParseError`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

from pydantic import BaseModel, Field

from pressfleet.paths import TEMPLATES

SCRIPT = TEMPLATES / "scripts" / "collect_metrics.sh"
DEFAULT_STATUS_PORT = 8081  # pressfleet.render.configs.STATUS_PORT (kept equal by a unit test)

# --- metric names (shared with the analysis flows: change them only together) -----------------------
CPU_PERCENT = "cpu_percent"
CPU_COUNT = "cpu_count"  # vCPUs (for sizing and cost)
LOAD1 = "load1"
MEM_USED_BYTES = "mem_used_bytes"
MEM_TOTAL_BYTES = "mem_total_bytes"
SWAP_USED_BYTES = "swap_used_bytes"
DISK_USED_BYTES = "disk_used_bytes"  # labels: mount
DISK_TOTAL_BYTES = "disk_total_bytes"  # labels: mount
INODES_USED = "inodes_used"  # labels: mount
INODES_TOTAL = "inodes_total"  # labels: mount
NET_RX_BYTES = "net_rx_bytes"  # counter
NET_TX_BYTES = "net_tx_bytes"  # counter
NGINX_REQUESTS = "nginx_requests"  # counter
NGINX_ACTIVE_CONNECTIONS = "nginx_active_connections"
PHP_ACTIVE_PROCESSES = "php_active_processes"  # summed over the host's pools (one per site)
PHP_MAX_CHILDREN_REACHED = "php_max_children_reached"  # summed over pools; counter since php-fpm started
PHP_SLOW_REQUESTS = "php_slow_requests"  # summed over pools; counter since php-fpm started
MARIADB_THREADS_CONNECTED = "mariadb_threads_connected"
MARIADB_QUERIES = "mariadb_queries"  # counter
MARIADB_SLOW_QUERIES = "mariadb_slow_queries"  # counter
MARIADB_BUFFER_POOL_HIT_RATIO = "mariadb_buffer_pool_hit_ratio"  # 0..1
MARIADB_DB_BYTES = "mariadb_db_bytes"  # site
REDIS_USED_MEMORY_BYTES = "redis_used_memory_bytes"
REDIS_HIT_RATIO = "redis_hit_ratio"  # 0..1
HTTP_STATUS = "http_status"  # site; 0 = no HTTP answer at all
TTFB_SECONDS = "ttfb_seconds"  # site
TLS_DAYS_LEFT = "tls_days_left"  # site; negative once expired
BACKUP_AGE_SECONDS = "backup_age_seconds"  # site (from the backup catalog, not from the host)
UP = "up"  # 1 collected, 0 unreachable

METRIC_NAMES = (
    CPU_PERCENT, CPU_COUNT, LOAD1, MEM_USED_BYTES, MEM_TOTAL_BYTES, SWAP_USED_BYTES, DISK_USED_BYTES, DISK_TOTAL_BYTES,
    INODES_USED, INODES_TOTAL, NET_RX_BYTES, NET_TX_BYTES, NGINX_REQUESTS, NGINX_ACTIVE_CONNECTIONS,
    PHP_ACTIVE_PROCESSES, PHP_MAX_CHILDREN_REACHED, PHP_SLOW_REQUESTS, MARIADB_THREADS_CONNECTED, MARIADB_QUERIES,
    MARIADB_SLOW_QUERIES, MARIADB_BUFFER_POOL_HIT_RATIO, MARIADB_DB_BYTES, REDIS_USED_MEMORY_BYTES, REDIS_HIT_RATIO,
    HTTP_STATUS, TTFB_SECONDS, TLS_DAYS_LEFT, BACKUP_AGE_SECONDS, UP,
)
COUNTERS = frozenset({NET_RX_BYTES, NET_TX_BYTES, NGINX_REQUESTS, MARIADB_QUERIES, MARIADB_SLOW_QUERIES,
                      PHP_MAX_CHILDREN_REACHED, PHP_SLOW_REQUESTS})

# Previous counters older than this are not used for interval ratios (a gap in collection).
MAX_PREVIOUS_AGE_SECONDS = 3600

_MARKER_RE = re.compile(r"^@@pressfleet-metrics ([a-z0-9-]+)(?: (\S+))?@@$")
_KNOWN = {"cpus", "cpu1", "cpu2", "loadavg", "meminfo", "df", "dfi", "netdev", "nginx", "mariadb-status",
          "mariadb-sizes", "redis", "site", "php", "fatal", "end"}
PHP_FATALS = "php_fatal_count"  # site: PHP fatal errors its log holds from the last FATAL_WINDOW_SECONDS
FATAL_WINDOW_SECONDS = 900
# PHP's error_log line: "[03-Dec-2026 10:30:00 UTC] PHP Fatal error:  Uncaught Error: ..."
_FATAL_RE = re.compile(r"^\[(\d{2}-[A-Z][a-z]{2}-\d{4} \d{2}:\d{2}:\d{2})(?: ([A-Za-z0-9_/+-]{1,64}))?\] "
                       r"PHP Fatal error:\s+(.*)$")


class CollectParseError(ValueError):
    """The collection output cannot be read at all (the script did not run)."""


@dataclass(frozen=True)
class SiteRef:
    """What the collection script needs to know about one site (all derived from its SiteConfig)."""

    name: str
    domain: str
    cert_path: str
    vhost_path: str
    db_name: str
    error_log: str = ""  # the site's PHP error log, read as the site's user (its name); "" reads none

    @classmethod
    def from_config(cls, site) -> SiteRef:
        """From a pressfleet.fleet.siteconfig.SiteConfig (validated: its values are safe as quoted arguments)."""
        from pressfleet.render.configs import php_error_log_path

        return cls(name=site.name, domain=site.domain, cert_path=site.tls_cert_path,
                   vhost_path=f"/etc/nginx/sites-enabled/{site.name}.conf", db_name=site.db_name,
                   error_log=php_error_log_path(site))


@dataclass(frozen=True)
class Sample:
    """One measured value; `site` (the site's domain) is '' for a host-level metric, `labels` e.g.
    (("mount", "/"),)."""

    name: str
    value: float
    site: str = ""
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        """A readable series key: `disk_used_bytes{mount=/}`, `http_status{site=blog}`, `load1`."""
        parts = ([f"site={self.site}"] if self.site else []) + [f"{k}={v}" for k, v in self.labels]
        return f"{self.name}{{{','.join(parts)}}}" if parts else self.name


@dataclass
class HostMetrics:
    """What one host's output held: samples, the raw counters to pass as `previous` next time, notes."""

    samples: list[Sample] = field(default_factory=list)
    counters: dict[str, float] = field(default_factory=dict)
    sites: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    complete: bool = True
    details: dict[str, dict] = field(default_factory=dict)  # sample key -> evidence (the newest PHP fatal)

    def values(self) -> dict[str, float]:
        return {s.key: s.value for s in self.samples}

    def get(self, name: str, site: str = "", **labels: str) -> float | None:
        want = tuple(sorted(labels.items()))
        for s in self.samples:
            if s.name == name and s.site == site and tuple(sorted(s.labels)) == want:
                return s.value
        return None


# --- the remote command -----------------------------------------------------------------------------


_SUBSITE_RE = re.compile(r"[a-z0-9.-]{1,253}/(?:[a-z0-9-]{1,50}/)?")


def collect_command(sites: Sequence[SiteRef] = (), status_port: int = DEFAULT_STATUS_PORT) -> list[str]:
    """The remote command (as arguments; remote.run quotes each) that runs the script fed on stdin."""
    if isinstance(status_port, bool) or not isinstance(status_port, int) or not 1 <= status_port <= 65535:
        raise ValueError(f"status_port must be 1-65535, not {status_port!r}")
    args = ["sh", "-s", "--", str(status_port)]
    for s in sites:
        args += [s.name, s.domain, s.cert_path, s.vhost_path, s.error_log or "-"]
    return args


def script_text() -> str:
    return SCRIPT.read_text()


# --- parsing ----------------------------------------------------------------------------------------


def split_sections(text: str) -> list[tuple[str, str | None, list[str]]]:
    """The output as [(section, argument or None, lines)], in order (a section may repeat: `site X`)."""
    if not isinstance(text, str):
        raise CollectParseError(f"collection output must be text, not {type(text).__name__}")
    out: list[tuple[str, str | None, list[str]]] = []
    current: list[str] | None = None
    for raw in text.split("\n"):  # not splitlines(): \v, \f, \x1c.. and U+2028 in a site's log are not line ends
        line = raw.rstrip("\r")
        m = _MARKER_RE.match(line.strip())
        if m and m[1] in _KNOWN:
            current = []
            out.append((m[1], m[2], current))
            continue
        if current is not None and line.strip():
            current.append(line)
    if not out:
        raise CollectParseError(
            "the output holds no metrics sections (no '@@pressfleet-metrics ...@@' lines): the collection "
            f"script did not run; output began {text.strip()[:80]!r}"
        )
    return out


def _num(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {text!r}")
    return value


def parse_cpu_line(line: str) -> tuple[float, float]:
    """`cpu  user nice system idle iowait irq softirq steal ...` -> (total jiffies, idle jiffies)."""
    parts = line.split()
    if len(parts) < 5 or parts[0] != "cpu":
        raise ValueError(f"not a /proc/stat cpu line: {line[:60]!r}")
    values = [_num(p) for p in parts[1:9]]  # guest time is already counted in user
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)
    return sum(values), idle


def cpu_percent(first: str, second: str) -> float | None:
    """Busy share (%) of all CPUs between two /proc/stat cpu lines; None if no time passed or it went back."""
    t1, i1 = parse_cpu_line(first)
    t2, i2 = parse_cpu_line(second)
    dt, di = t2 - t1, i2 - i1
    if dt <= 0 or di < 0 or di > dt:
        return None
    return round(100.0 * (dt - di) / dt, 2)


def parse_meminfo(lines: Iterable[str]) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in lines:
        m = re.match(r"^([A-Za-z0-9_()]+):\s+(\d+)(\s+kB)?\s*$", line)
        if m:
            values[m[1]] = int(m[2]) * (1024 if m[3] else 1)
    return values


def parse_df(lines: Iterable[str]) -> dict[str, tuple[int, int]]:
    """Lines `TYPE TOTAL USED FREE MOUNT` -> {mount: (used, total)} (the first line for a mount wins)."""
    out: dict[str, tuple[int, int]] = {}
    for line in lines:
        parts = line.split(None, 4)
        if len(parts) != 5 or not all(p.isdigit() for p in parts[1:4]):
            raise ValueError(f"cannot read df line {line[:80]!r}")
        _fstype, total, used, _free, mount = parts
        out.setdefault(mount, (int(used), int(total)))
    return out


def parse_netdev(lines: Iterable[str]) -> tuple[int, int]:
    """/proc/net/dev -> (received bytes, sent bytes) summed over every interface but lo."""
    rx = tx = 0
    seen = False
    for line in lines:
        if ":" not in line or "|" in line:
            continue
        name, _, rest = line.partition(":")
        fields = rest.split()
        if len(fields) < 9 or not fields[0].isdigit() or not fields[8].isdigit():
            raise ValueError(f"cannot read /proc/net/dev line {line[:80]!r}")
        seen = True
        if name.strip() == "lo":
            continue
        rx += int(fields[0])
        tx += int(fields[8])
    if not seen:
        raise ValueError("no interface lines")
    return rx, tx


def parse_stub_status(lines: Sequence[str]) -> tuple[int, int]:
    """nginx stub_status -> (active connections, requests since start)."""
    text = "\n".join(lines)
    active = re.search(r"^Active connections:\s*(\d+)", text, re.M)
    counts = re.search(r"server accepts handled requests\s*\n\s*(\d+)\s+(\d+)\s+(\d+)", text)
    if not active or not counts:
        raise ValueError(f"not nginx stub_status output: {text[:80]!r}")
    return int(active[1]), int(counts[3])


def parse_tabbed(lines: Iterable[str]) -> dict[str, str]:
    """`name<TAB>value` lines (mariadb -N -B) -> {name: value}."""
    out: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition("\t")
        if sep:
            out[name.strip()] = value.strip()
    return out


def parse_redis_info(lines: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        if line.startswith("#") or ":" not in line:
            continue
        k, _, v = line.partition(":")
        out[k.strip()] = v.strip()
    return out


_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                                       "Dec"), start=1)}


def parse_enddate(text: str) -> datetime:
    """openssl's `notAfter=Nov 26 10:00:00 2027 GMT` -> an aware UTC datetime."""
    m = re.search(r"notAfter=([A-Z][a-z]{2})\s+(\d{1,2})\s+(\d{2}):(\d{2}):(\d{2})\s+(\d{4})\s+GMT", text)
    if not m or m[1] not in _MONTHS:
        raise ValueError(f"not an openssl -enddate line: {text[:80]!r}")
    return datetime(int(m[6]), _MONTHS[m[1]], int(m[2]), int(m[3]), int(m[4]), int(m[5]), tzinfo=timezone.utc)


def hit_ratio(hits: float, misses: float, prev_hits: float | None = None, prev_misses: float | None = None,
              *, restarted: bool = False) -> float | None:
    """hits / (hits + misses) over the interval since (prev_hits, prev_misses), or since start when there is
    no previous sample, when a counter went down (restart) or when nothing happened in the interval."""
    if prev_hits is not None and prev_misses is not None and not restarted and hits >= prev_hits and misses >= prev_misses:
        dh, dm = hits - prev_hits, misses - prev_misses
        if dh + dm > 0:
            return dh / (dh + dm)
    return hits / (hits + misses) if hits + misses > 0 else None


def _prev_pair(previous: Mapping[str, float], a: str, b: str, uptime_key: str, uptime: float | None):
    if a not in previous or b not in previous:
        return None, None, False
    restarted = uptime is not None and uptime_key in previous and uptime < previous[uptime_key]
    return previous[a], previous[b], restarted


def parse_metrics(
    text: str,
    *,
    now: datetime,
    sites: Sequence[SiteRef] = (),
    previous: Mapping[str, float] | None = None,
) -> HostMetrics:
    """Read one collection output into samples (see the module docstring). `now` dates the certificate
    check; `previous` is the `counters` of this host's previous round (with its "time", epoch seconds)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    sections = split_sections(text)
    out = HostMetrics(samples=[Sample(UP, 1.0)])
    prev = dict(previous or {})
    if prev and now.timestamp() - prev.get("time", 0) > MAX_PREVIOUS_AGE_SECONDS:
        prev = {}
    add = out.samples.append
    by_name: dict[str, list[str]] = {}
    for name, arg, lines in sections:
        if arg is None and name not in ("site", "php", "fatal"):
            by_name.setdefault(name, lines)
    if "end" not in by_name:
        out.complete = False
        out.notes.append("the output was cut off before its end marker")

    def guarded(what: str, fn) -> None:
        try:
            fn()
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            out.notes.append(f"{what}: {exc}")

    def cpu():
        if by_name.get("cpu1") and by_name.get("cpu2"):
            value = cpu_percent(by_name["cpu1"][0], by_name["cpu2"][0])
            if value is not None:
                add(Sample(CPU_PERCENT, value))

    def load():
        if by_name.get("loadavg"):
            add(Sample(LOAD1, _num(by_name["loadavg"][0].split()[0])))

    def memory():
        if "meminfo" not in by_name:
            return
        mem = parse_meminfo(by_name["meminfo"])
        if "MemTotal" not in mem:
            raise ValueError("no MemTotal line")
        available = mem.get("MemAvailable")
        if available is None:
            available = mem.get("MemFree", 0) + mem.get("Buffers", 0) + mem.get("Cached", 0)
        add(Sample(MEM_TOTAL_BYTES, float(mem["MemTotal"])))
        add(Sample(MEM_USED_BYTES, float(max(mem["MemTotal"] - available, 0))))
        if "SwapTotal" in mem:
            add(Sample(SWAP_USED_BYTES, float(max(mem["SwapTotal"] - mem.get("SwapFree", 0), 0))))

    def disks():
        for mount, (used, total) in parse_df(by_name.get("df", [])).items():
            add(Sample(DISK_USED_BYTES, float(used), labels=(("mount", mount),)))
            add(Sample(DISK_TOTAL_BYTES, float(total), labels=(("mount", mount),)))

    def inodes():
        for mount, (used, total) in parse_df(by_name.get("dfi", [])).items():
            if total > 0:  # filesystems without a fixed inode table (btrfs) report 0
                add(Sample(INODES_USED, float(used), labels=(("mount", mount),)))
                add(Sample(INODES_TOTAL, float(total), labels=(("mount", mount),)))

    def network():
        if "netdev" in by_name:
            rx, tx = parse_netdev(by_name["netdev"])
            add(Sample(NET_RX_BYTES, float(rx)))
            add(Sample(NET_TX_BYTES, float(tx)))

    def nginx():
        if "nginx" in by_name:
            active, requests = parse_stub_status(by_name["nginx"])
            add(Sample(NGINX_ACTIVE_CONNECTIONS, float(active)))
            add(Sample(NGINX_REQUESTS, float(requests)))

    def mariadb():
        if "mariadb-status" not in by_name:
            return
        status = parse_tabbed(by_name["mariadb-status"])
        if not status:
            raise ValueError("no status variables (MariaDB down or not reachable as root)")
        for metric, var in ((MARIADB_THREADS_CONNECTED, "Threads_connected"), (MARIADB_QUERIES, "Queries"),
                            (MARIADB_SLOW_QUERIES, "Slow_queries")):
            if var in status:
                add(Sample(metric, _num(status[var])))
        if "Innodb_buffer_pool_read_requests" in status and "Innodb_buffer_pool_reads" in status:
            requests = _num(status["Innodb_buffer_pool_read_requests"])
            reads = _num(status["Innodb_buffer_pool_reads"])
            uptime = _num(status["Uptime"]) if "Uptime" in status else None
            out.counters.update({"mariadb.read_requests": requests, "mariadb.reads": reads})
            if uptime is not None:
                out.counters["mariadb.uptime"] = uptime
            # hits = logical reads served from memory; misses = reads that went to disk
            p_req, p_reads, restarted = _prev_pair(prev, "mariadb.read_requests", "mariadb.reads", "mariadb.uptime",
                                                   uptime)
            ratio = hit_ratio(requests - reads, reads,
                              None if p_req is None else p_req - p_reads, p_reads,
                              restarted=restarted or (p_req is not None and requests < p_req))
            if ratio is not None:
                add(Sample(MARIADB_BUFFER_POOL_HIT_RATIO, round(ratio, 6)))

    def db_sizes():
        if "mariadb-sizes" not in by_name:
            return
        sizes = {k: _num(v) for k, v in parse_tabbed(by_name["mariadb-sizes"]).items()}
        for ref in sites:
            if ref.domain in found and ref.db_name in sizes:
                add(Sample(MARIADB_DB_BYTES, sizes[ref.db_name], site=ref.domain))

    def cpus():
        if by_name.get("cpus"):
            count = int(by_name["cpus"][0].strip())
            if count < 1:
                raise ValueError(f"not a CPU count: {count}")
            add(Sample(CPU_COUNT, float(count)))

    def redis():
        if "redis" not in by_name:
            return
        info = parse_redis_info(by_name["redis"])
        if "used_memory" not in info:
            raise ValueError("no used_memory (Redis down or not answering)")
        add(Sample(REDIS_USED_MEMORY_BYTES, _num(info["used_memory"])))
        if "keyspace_hits" in info and "keyspace_misses" in info:
            hits, misses = _num(info["keyspace_hits"]), _num(info["keyspace_misses"])
            uptime = _num(info["uptime_in_seconds"]) if "uptime_in_seconds" in info else None
            out.counters.update({"redis.hits": hits, "redis.misses": misses})
            if uptime is not None:
                out.counters["redis.uptime"] = uptime
            p_hits, p_misses, restarted = _prev_pair(prev, "redis.hits", "redis.misses", "redis.uptime", uptime)
            ratio = hit_ratio(hits, misses, p_hits, p_misses, restarted=restarted)
            if ratio is not None:
                add(Sample(REDIS_HIT_RATIO, round(ratio, 6)))

    refs = {ref.name: ref for ref in sites}
    found: list[str] = []  # domains of the sites found on the host
    php_totals: dict[str, float] = {}

    def site_section(name: str, lines: list[str]):
        if name not in refs:
            raise ValueError("a site that was not asked for")
        domain = refs[name].domain
        if domain not in found:
            found.append(domain)
        for line in lines:
            kind, _, rest = line.partition(" ")
            if kind == "http":
                parts = rest.split()
                code = int(parts[0]) if parts and parts[0].isdigit() else 0
                add(Sample(HTTP_STATUS, float(code), site=domain))
                if code and len(parts) > 1:
                    ttfb = _num(parts[1])
                    if ttfb > 0:
                        add(Sample(TTFB_SECONDS, ttfb, site=domain))
            elif kind == "subsite":  # a network's subsite: its address (domain and path) is its series' site
                parts = rest.split()
                if not parts or not _SUBSITE_RE.fullmatch(parts[0]):
                    continue
                label = parts[0].rstrip("/")
                code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
                add(Sample(HTTP_STATUS, float(code), site=label))
                if code and len(parts) > 2 and _num(parts[2]) > 0:
                    add(Sample(TTFB_SECONDS, _num(parts[2]), site=label))
            elif kind == "cert" and rest.strip():
                days = (parse_enddate(rest) - now).total_seconds() / 86400
                add(Sample(TLS_DAYS_LEFT, round(days, 3), site=domain))

    def php_section(name: str, lines: list[str]):
        if name not in refs:
            raise ValueError("a site that was not asked for")
        if not "".join(lines).strip():
            raise ValueError("no answer from the pool's status page")
        status = json.loads("".join(lines))
        if not isinstance(status, dict):
            raise ValueError("the pool status is not a JSON object")
        values = {}
        for metric, key in ((PHP_ACTIVE_PROCESSES, "active processes"),
                            (PHP_MAX_CHILDREN_REACHED, "max children reached"), (PHP_SLOW_REQUESTS, "slow requests")):
            if key in status:
                values[metric] = _num(str(status[key]))
        for metric, value in values.items():  # only once the whole pool status was read
            php_totals[metric] = php_totals.get(metric, 0.0) + value
        if PHP_MAX_CHILDREN_REACHED in values:  # per pool: the next round's delta (pressfleet.alerts.observe)
            out.counters[f"php.max_children_reached.{name}"] = values[PHP_MAX_CHILDREN_REACHED]

    def fatal_section(name: str, lines: list[str]):
        if name not in refs:
            raise ValueError("a site that was not asked for")
        domain = refs[name].domain
        count, newest = parse_fatals(lines, now)
        add(Sample(PHP_FATALS, float(count), site=domain))
        if newest:
            out.details[Sample(PHP_FATALS, 0, site=domain).key] = newest

    for what, fn in (("cpus", cpus), ("cpu", cpu), ("loadavg", load), ("meminfo", memory), ("df", disks),
                     ("dfi", inodes), ("netdev", network), ("nginx", nginx), ("mariadb", mariadb), ("redis", redis)):
        guarded(what, fn)
    for name, arg, lines in sections:
        if name == "site" and arg:
            guarded(f"site {arg}", lambda a=arg, ls=lines: site_section(a, ls))
        elif name == "php" and arg:
            guarded(f"php {arg}", lambda a=arg, ls=lines: php_section(a, ls))
        elif name == "fatal" and arg:
            guarded(f"fatal {arg}", lambda a=arg, ls=lines: fatal_section(a, ls))
    for metric in (PHP_ACTIVE_PROCESSES, PHP_MAX_CHILDREN_REACHED, PHP_SLOW_REQUESTS):
        if metric in php_totals:
            add(Sample(metric, php_totals[metric]))
    guarded("mariadb sizes", db_sizes)
    out.sites = found
    if out.counters:
        out.counters["time"] = now.timestamp()
    return out


def parse_fatals(lines: Iterable[str], now: datetime,
                 window: float = FATAL_WINDOW_SECONDS) -> tuple[int, Optional[dict]]:
    """(how many PHP fatal errors the lines date within `window` seconds before `now`, the newest of them as
    {"at": ISO time, "message"}). A line whose zone PHP names but Python does not know is read as UTC."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    count, newest = 0, None
    for line in lines:
        m = _FATAL_RE.match(line.strip())
        if not m:
            continue
        try:
            zone = ZoneInfo(m.group(2)) if m.group(2) else timezone.utc
        except (ZoneInfoNotFoundError, ValueError):
            zone = timezone.utc
        try:
            at = datetime.strptime(m.group(1), "%d-%b-%Y %H:%M:%S").replace(tzinfo=zone)
        except ValueError:
            continue
        age = (now - at).total_seconds()
        if -300 <= age <= window:  # a few minutes of clock skew between the host and here
            count += 1
            if newest is None or at >= newest[0]:
                newest = (at, m.group(3)[:500])
    return count, ({"at": newest[0].astimezone(timezone.utc).isoformat(), "message": newest[1]} if newest else None)


def unreachable() -> HostMetrics:
    """The samples of a host that could not be collected: up=0 and nothing else."""
    return HostMetrics(samples=[Sample(UP, 0.0)])


def to_points(host: str, time: datetime, samples: Iterable[Sample]) -> list[dict[str, Any]]:
    """Samples as rows for `MetricsStore.write_points` (labels as a mapping; the store canonicalises)."""
    return [{"time": time, "host": host, "site": s.site, "metric": s.name, "value": float(s.value),
             "labels": dict(s.labels) or None} for s in samples]


# --- what a round returns (here, not in the flow file, so a deployment run's result unpickles anywhere) ---


class HostResult(BaseModel):
    """One host's part of a round."""

    host: str = Field(description="the series' host: the server's address (address:port when not 22)")
    up: bool
    seconds: float = Field(description="time to connect, run the script and parse its output")
    sites: list[str] = Field(default_factory=list, description="domains of the asked-for sites found on the host")
    values: dict[str, float] = Field(default_factory=dict, description="every sample, keyed name{labels}")
    notes: list[str] = Field(default_factory=list, description="sections that could not be read")
    error: Optional[str] = Field(None, description="why the host could not be collected (up=0)")


class CollectSummary(BaseModel):
    """What a collection round did."""

    time: datetime = Field(description="the round's timestamp (UTC, whole seconds): every point carries it")
    hosts: list[HostResult]
    up: int
    down: int
    points: int = Field(description="points the round produced")
    stored: int = Field(description="points newly stored (0 for a round that was already stored)")
    backend: str = Field(description="the metrics store's database: sqlite or postgresql")
    seconds: float = Field(description="the round, from the first connection to the last parsed output")
    rollup: dict[str, int] = Field(default_factory=dict,
                                   description="what the rollup after the round did (rows written, points expired)")
    note: Optional[str] = Field(None, description="why the round had nothing to do (no servers saved yet)")


def host_label(server) -> str:
    """A server's name in the store: its address (address:port when SSH is not on 22)."""
    return server.address if server.port == 22 else f"{server.address}:{server.port}"
