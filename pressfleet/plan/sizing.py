"""Memory sizing for a shared WordPress host (nginx, PHP-FPM, MariaDB, Redis on one Debian 12 machine).

Pure functions: RAM, measured PHP worker memory, site count and CPU count in; settings out. Nothing here
touches a host. `plan_host()` is the one entry point flows should use: it sizes every service against the
same RAM so that their budgets add up to no more than the machine has; the per-service functions are public
so that each formula can be read and tested on its own.

All arithmetic on budgets is exact (`fractions.Fraction`) and every setting written into a config file is
rounded *down* from its budget, so rounding can only leave memory unused (it goes to the page cache), never
over-commit it. A host too small for the minimum (two PHP workers next to a 64 MiB buffer pool) is refused
with `InsufficientMemory` rather than configured to swap.

## Sizing (how pressfleet sizes a host)

One host runs nginx, PHP-FPM, MariaDB and Redis. pressfleet splits its RAM `R` like this (`plan_host`):

| budget | formula | why |
| --- | --- | --- |
| OS + nginx + sshd + fail2ban | `min(96 MiB + R/16, 2 GiB)` | a minimal Debian 12 with these services idles near 100 MiB; the `R/16` keeps page cache for static files |
| InnoDB buffer pool | `max(64 MiB, 30 % of R)`, or `min(that, max(128 MiB, 2 x data size))` when the data size is known; rounded down to 32 MiB (128 MiB above 2 GiB) | 30 % as on a shared web+db host: WordPress databases are small and PHP is the main consumer, 50 % starves PHP on small hosts |
| MariaDB fixed | 48 MiB server + log buffer `clamp(R/64, 8, 32 MiB)` + key buffer 8 MiB + Aria page cache `clamp(R/64, 8, 32 MiB)` + 2 in-memory temp tables `clamp(R/64, 8, 64 MiB)` + 10 spare connections x 3 MiB | typical, not worst-case: temp tables only grow that large for a few queries at once |
| Redis | `maxmemory = clamp(R/16, 16 MiB, 4 GiB)`, `allkeys-lru`, no persistence; budget `1.25 x maxmemory + 8 MiB` | it is a cache: evict least-recently-used keys, never refuse writes; 25 % for allocator fragmentation |
| OPcache | `max(clamp(R/16, 64, 256 MiB), 64 MiB + 32 MiB per extra site)` | shared by all pools of the one php-fpm master; every site's copy of WordPress is cached separately |
| PHP-FPM workers | `floor((R - all the above - 1 MiB) / (1.25 x worker memory + 1.1 x 3 MiB))`, at least 2, at most `4 x CPUs` (and 1024) | from *measured* worker memory (PSS), with a 25 % safety factor; each worker also holds one MariaDB connection |

- If fewer than 2 workers fit, the buffer pool shrinks (down to 64 MiB) to make room; if that is not enough
  the host is refused.
- Worker memory defaults to 64 MiB until measured: WordPress 6.x workers take roughly 40 MiB (core, few
  plugins) to 64 MiB and more (WooCommerce-class plugin sets). Guessing low swaps or OOM-kills under load;
  guessing high only costs concurrency until the first measurement. Measure `Pss` in
  `/proc/<pid>/smaps_rollup` of workers that have served requests, not RSS: RSS counts OPcache's shared
  segment in every worker, and OPcache has its own budget.
- `pm = ondemand` below 2 GiB or when a site gets fewer than 4 workers (idle workers cost memory there);
  `pm = dynamic` otherwise (warm workers, no fork per burst): `min_spare = max(1, 10 %)`,
  `max_spare = max(min_spare + 1, 30 %)`, `start = halfway`. `pm.max_requests = 500` recycles workers
  before plugin leaks add up. With several sites each pool gets `max(2, total / sites)` workers and the
  global `process.max` is their sum (at most `total`), which bounds them all.
- MariaDB `max_connections = workers + 10 + 10 %` (wp-cli, cron, backups, monitoring), at least 20;
  `innodb_log_file_size = 25 %` of the pool (at least 32 MiB); `tmp_table_size = max_heap_table_size`.
- OPcache `max_accelerated_files` is the smallest of PHP's own hash-table primes that is at least
  `max(10000, 4000 x sites)` (PHP rounds any value up to one of them: 10000 becomes 16229), interned strings
  1/8 of OPcache, timestamps revalidated every 60 s; `realpath_cache_size = 4096K`, `ttl = 600`.
"""

from __future__ import annotations

from fractions import Fraction
from math import ceil, floor
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from pressfleet.validate import InvalidInput

__all__ = [
    "MiB",
    "GiB",
    "DEFAULT_WORKER_RSS",
    "InsufficientMemory",
    "PhpFpmSizing",
    "InnodbSettings",
    "OpcacheSettings",
    "RedisSettings",
    "HostPlan",
    "os_reserve_bytes",
    "worker_rss_from_samples",
    "php_fpm_max_children",
    "innodb_settings",
    "opcache_settings",
    "redis_settings",
    "plan_host",
    "PHP_OPCACHE_PRIMES",
]

MiB = 1024 * 1024
GiB = 1024 * MiB

# Until a host's workers have been measured: the top of the 40-64 MiB range of WordPress 6.x workers
# (see the module docstring for why the top and not the middle).
DEFAULT_WORKER_RSS = 64 * MiB
WORKER_SAFETY = Fraction(5, 4)
DB_BYTES_PER_CONNECTION = 3 * MiB
# Each worker holds at most one MariaDB connection; 10 % more connections are kept for wp-cli and cron.
DB_CONNECTION_SHARE = Fraction(11, 10)
DB_SPARE_CONNECTIONS = 10
MIN_DB_CONNECTIONS = 20
MIN_CHILDREN = 2
CHILDREN_PER_CPU = 4
MAX_CHILDREN_TOTAL = 1024
MAX_REQUESTS = 500
BUFFER_POOL_FRACTION = Fraction(3, 10)
BUFFER_POOL_MIN = 64 * MiB
# Rounding slack so that budgets rounded up to whole bytes still add up to no more than RAM.
SLACK = 1 * MiB

# The sizes zend_accel_hash_init() rounds opcache.max_accelerated_files up to (PHP 7/8,
# ext/opcache/zend_accelerator_hash.c). PHP refuses values above 1,000,000, so the last one is unusable.
PHP_OPCACHE_PRIMES: tuple[int, ...] = (
    223, 463, 983, 1979, 3907, 7963, 16229, 32531, 65407, 130987, 262237, 524521,
)
OPCACHE_FILES_PER_SITE = 4000


class InsufficientMemory(InvalidInput):
    """The host's RAM cannot hold the services and two PHP workers; the message says how short it is."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PhpFpmSizing(_Frozen):
    """Process manager settings for each site's pool, plus the global `process.max` over all pools."""

    pm: Literal["dynamic", "ondemand"]
    max_children: int
    start_servers: int | None = None
    min_spare_servers: int | None = None
    max_spare_servers: int | None = None
    max_requests: int = MAX_REQUESTS
    process_idle_timeout_s: int = 10
    process_max: int
    sites: int = 1
    worker_rss_bytes: int
    worker_cost_bytes: int
    budget_bytes: int

    @model_validator(mode="after")
    def _php_fpm_rules(self) -> PhpFpmSizing:
        # The checks php-fpm itself makes at start (fpm_conf.c), so a bad sizing fails here, not on the host.
        if self.max_children < MIN_CHILDREN or self.process_max < MIN_CHILDREN:
            raise ValueError("pm.max_children and process.max must be at least 2")
        if self.pm == "dynamic":
            mn, mx, st = self.min_spare_servers, self.max_spare_servers, self.start_servers
            if mn is None or mx is None or st is None:
                raise ValueError("pm = dynamic needs start_servers, min_spare_servers and max_spare_servers")
            if not (1 <= mn <= mx <= self.max_children and mn <= st <= mx):
                raise ValueError("need 1 <= min_spare <= start <= max_spare <= max_children")
        if self.max_requests < 0 or self.process_idle_timeout_s < 1:
            raise ValueError("max_requests must be >= 0 and process_idle_timeout_s >= 1")
        return self


class InnodbSettings(_Frozen):
    """MariaDB 10.11 memory settings; `budget_bytes` excludes the per-worker connections (see PHP)."""

    buffer_pool_bytes: int
    log_file_bytes: int
    log_buffer_bytes: int
    key_buffer_bytes: int
    aria_pagecache_bytes: int
    tmp_table_bytes: int
    max_connections: int
    table_open_cache: int
    table_definition_cache: int
    budget_bytes: int


class OpcacheSettings(_Frozen):
    memory_consumption_mb: int
    interned_strings_buffer_mb: int
    max_accelerated_files: int
    validate_timestamps: bool = True
    revalidate_freq_s: int = 60
    max_wasted_percentage: int = 10
    validate_permission: bool = False
    realpath_cache_size_kb: int = 4096
    realpath_cache_ttl_s: int = 600
    budget_bytes: int

    @model_validator(mode="after")
    def _opcache_rules(self) -> OpcacheSettings:
        if not self.interned_strings_buffer_mb < self.memory_consumption_mb:
            raise ValueError("opcache.interned_strings_buffer must be smaller than opcache.memory_consumption")
        if self.max_accelerated_files not in PHP_OPCACHE_PRIMES:
            raise ValueError("opcache.max_accelerated_files must be one of PHP's hash sizes")
        return self


class RedisSettings(_Frozen):
    maxmemory_bytes: int
    maxmemory_policy: Literal["allkeys-lru"] = "allkeys-lru"
    databases: int = 16
    budget_bytes: int


class HostPlan(_Frozen):
    """Every service sized against one machine's RAM."""

    ram_bytes: int
    os_reserve_bytes: int
    php: PhpFpmSizing
    innodb: InnodbSettings
    opcache: OpcacheSettings
    redis: RedisSettings

    def budget(self) -> dict[str, int]:
        """Bytes set aside per consumer; their sum never exceeds `ram_bytes`."""
        return {
            "os": self.os_reserve_bytes,
            "mariadb": self.innodb.budget_bytes,
            "redis": self.redis.budget_bytes,
            "opcache": self.opcache.budget_bytes,
            "php_workers": self.php.budget_bytes,
        }

    @property
    def unallocated_bytes(self) -> int:
        """What rounding and caps left over: the kernel uses it as page cache."""
        return self.ram_bytes - sum(self.budget().values())


# --- helpers --------------------------------------------------------------------------------------------


def _clamp(x: Fraction, lo: int, hi: int) -> Fraction:
    return max(Fraction(lo), min(Fraction(hi), x))


def _check_bytes(value: object, what: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidInput(f"{what} must be a whole number of bytes of at least {low}, not {value!r}.")
    return value


def _check_count(value: object, what: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidInput(f"{what} must be a whole number of at least {low}, not {value!r}.")
    return value


def _mib(x: Fraction | int) -> str:
    return f"{float(x) / MiB:.0f} MiB"


# --- the formulas ---------------------------------------------------------------------------------------


def _os_reserve(ram: int) -> Fraction:
    return min(Fraction(96 * MiB) + Fraction(ram, 16), Fraction(2 * GiB))


def os_reserve_bytes(ram_bytes: int) -> int:
    """Memory left to the kernel, systemd, journald, sshd, nginx, fail2ban and the page cache.

    `min(96 MiB + RAM/16, 2 GiB)`: a minimal Debian 12 with these services idles near 100 MiB; the RAM/16
    share keeps page cache for the static files nginx serves and for MariaDB's data files.
    """
    return ceil(_os_reserve(_check_bytes(ram_bytes, "RAM")))


def worker_rss_from_samples(samples_bytes: list[int] | tuple[int, ...]) -> int:
    """Average memory of PHP-FPM workers, from per-worker samples (PSS in bytes), rounded up.

    Sample workers that have served requests (a freshly forked worker is much smaller than a busy one);
    use PSS (`/proc/<pid>/smaps_rollup`), which counts OPcache's shared segment once across all workers,
    not RSS, which counts it in full in every worker.
    """
    if not samples_bytes:
        raise InvalidInput("At least one PHP worker memory sample is needed.")
    for s in samples_bytes:
        _check_bytes(s, "A worker memory sample")
    return ceil(Fraction(sum(samples_bytes), len(samples_bytes)))


def _worker_cost(worker_rss: int) -> Fraction:
    return worker_rss * WORKER_SAFETY + DB_BYTES_PER_CONNECTION * DB_CONNECTION_SHARE


def php_fpm_max_children(
    ram_bytes: int,
    worker_rss_bytes: int,
    reserved_bytes_for_db_redis_os: int | Fraction,
    sites: int = 1,
    *,
    cpus: int | None = None,
    max_requests: int = MAX_REQUESTS,
) -> PhpFpmSizing:
    """PHP-FPM process manager settings from RAM and *measured* worker memory.

    total = floor((RAM - reserved - 1 MiB) / (1.25 x worker_rss + 1.1 x 3 MiB)), then at most
    `4 x cpus` (when known) and 1024. The 1.25 is a safety factor over the average (workers vary, and a
    few run large admin requests); the 3 MiB is the MariaDB connection each worker holds (1.1 x: 10 % extra
    connections for wp-cli and cron). Fewer than 2 fitting workers raises `InsufficientMemory`.

    Each of `sites` pools gets `max(2, total // sites)` children; the global `process.max` is their sum,
    capped at `total`, so the pools never exceed the budget even when 2 per pool would.
    `pm = ondemand` below 2 GiB of RAM or when a pool gets fewer than 4 children, `dynamic` otherwise, with
    min_spare = max(1, 10 %), max_spare = max(min_spare + 1, 30 %) and start_servers halfway between.
    `pm.max_requests = 500` recycles each worker before plugin memory leaks accumulate.
    """
    ram = _check_bytes(ram_bytes, "RAM")
    rss = _check_bytes(worker_rss_bytes, "PHP worker memory", low=MiB)
    sites = _check_count(sites, "The number of sites")
    if cpus is not None:
        _check_count(cpus, "The number of CPUs")
    reserved = Fraction(reserved_bytes_for_db_redis_os)
    if reserved < 0:
        raise InvalidInput("Reserved memory cannot be negative.")
    cost = _worker_cost(rss)
    available = Fraction(ram) - reserved - SLACK
    fit = floor(available / cost) if available > 0 else 0
    if fit < MIN_CHILDREN:
        raise InsufficientMemory(
            f"{_mib(ram)} of RAM leaves {_mib(max(available, Fraction(0)))} for PHP after MariaDB, Redis, "
            f"OPcache and the OS, not enough for {MIN_CHILDREN} workers of {_mib(cost)} each."
        )
    cap = MAX_CHILDREN_TOTAL if cpus is None else min(MAX_CHILDREN_TOTAL, max(MIN_CHILDREN, CHILDREN_PER_CPU * cpus))
    total = min(fit, cap)
    per_site = max(MIN_CHILDREN, total // sites)
    if ram < 2 * GiB or total // sites < 4:
        pm: Literal["dynamic", "ondemand"] = "ondemand"
        start = min_spare = max_spare = None
    else:
        pm = "dynamic"
        min_spare = max(1, per_site // 10)
        max_spare = max(min_spare + 1, per_site * 3 // 10)
        start = min_spare + (max_spare - min_spare) // 2
    return PhpFpmSizing(
        pm=pm,
        max_children=per_site,
        start_servers=start,
        min_spare_servers=min_spare,
        max_spare_servers=max_spare,
        max_requests=max_requests,
        process_max=min(total, per_site * sites),
        sites=sites,
        worker_rss_bytes=rss,
        worker_cost_bytes=ceil(cost),
        budget_bytes=ceil(total * cost),
    )


def _pool_target(ram: int, db_data_bytes: int | None) -> Fraction:
    target = max(Fraction(BUFFER_POOL_MIN), BUFFER_POOL_FRACTION * ram)
    if db_data_bytes is not None:
        target = min(target, max(Fraction(128 * MiB), Fraction(2 * db_data_bytes)))
    return max(target, Fraction(BUFFER_POOL_MIN))


def _innodb_fixed(ram: int) -> tuple[Fraction, Fraction, Fraction, Fraction, Fraction]:
    """(total fixed budget, log buffer, key buffer, aria page cache, tmp table) excluding the pool."""
    log_buffer = _clamp(Fraction(ram, 64), 8 * MiB, 32 * MiB)
    key_buffer = Fraction(8 * MiB)
    aria = _clamp(Fraction(ram, 64), 8 * MiB, 32 * MiB)
    tmp = _clamp(Fraction(ram, 64), 8 * MiB, 64 * MiB)
    server = Fraction(48 * MiB)
    spare_conns = DB_SPARE_CONNECTIONS * DB_BYTES_PER_CONNECTION
    total = server + log_buffer + key_buffer + aria + 2 * tmp + spare_conns
    return total, log_buffer, key_buffer, aria, tmp


def innodb_settings(
    ram_bytes: int,
    *,
    max_children_total: int | None = None,
    sites: int = 1,
    db_data_bytes: int | None = None,
    buffer_pool_target_bytes: int | Fraction | None = None,
) -> InnodbSettings:
    """MariaDB 10.11 settings for a host that also runs PHP, nginx and Redis.

    - innodb_buffer_pool_size: 30 % of RAM (at least 64 MiB). WordOps uses 30 %, SlickStack 50 %; on a
      shared host PHP workers are the main consumer and WordPress databases are small (a pool larger than
      the data set is wasted), so 30 %. With `db_data_bytes` known: at most `max(128 MiB, 2 x data)`.
      Rounded down to a multiple of 32 MiB (128 MiB from 2 GiB up), always within its budget. MariaDB
      10.11.19 (Debian 12) keeps the size as given (`innodb_buffer_pool_chunk_size` is 0, i.e. automatic;
      checked by starting it with 200M, 288M and 1216M); older releases rounded it *up* to a multiple of a
      128 MiB chunk, which is why the grain is not finer.
    - innodb_log_file_size: 25 % of the pool, at least 32 MiB (disk, not RAM; bounds crash recovery time).
    - innodb_log_buffer_size, aria_pagecache_buffer_size: RAM/64 within 8-32 MiB; key_buffer_size 8 MiB
      (WordPress uses no MyISAM; Aria holds MariaDB's on-disk internal temporary tables).
    - tmp_table_size = max_heap_table_size: RAM/64 within 8-64 MiB.
    - max_connections: PHP workers (each holds one connection) + 10 + 10 % (wp-cli, cron, backups,
      monitoring), at least 20; MariaDB's default 151 when the worker count is not given.
    - table_definition_cache 400 + 60 per site, table_open_cache at least 2000 and 4 x that.

    `budget_bytes` counts the pool, the buffers, two in-memory temp tables, 48 MiB for the server itself
    and 10 spare connections at 3 MiB; the connections of PHP workers are in the PHP workers' budget.
    """
    ram = _check_bytes(ram_bytes, "RAM")
    sites = _check_count(sites, "The number of sites")
    if db_data_bytes is not None:
        _check_bytes(db_data_bytes, "The database size", low=0)
    if buffer_pool_target_bytes is None:
        pool_t = _pool_target(ram, db_data_bytes)
    else:
        pool_t = max(Fraction(buffer_pool_target_bytes), Fraction(BUFFER_POOL_MIN))
    grain = 32 * MiB if pool_t < 2 * GiB else 128 * MiB
    pool = max(BUFFER_POOL_MIN, floor(pool_t / grain) * grain)
    pool = min(pool, floor(pool_t))  # only BUFFER_POOL_MIN itself can be off-grain (64 MiB is on 32 MiB)
    fixed, log_buffer, key_buffer, aria, tmp = _innodb_fixed(ram)
    if max_children_total is None:
        max_connections = 151
    else:
        n = _check_count(max_children_total, "The number of PHP workers")
        max_connections = max(MIN_DB_CONNECTIONS, n + DB_SPARE_CONNECTIONS + ceil(n / 10))
    tdc = 400 + 60 * sites
    return InnodbSettings(
        buffer_pool_bytes=pool,
        log_file_bytes=max(32 * MiB, (pool // 4) // MiB * MiB),
        log_buffer_bytes=floor(log_buffer) // MiB * MiB,
        key_buffer_bytes=int(key_buffer),
        aria_pagecache_bytes=floor(aria) // MiB * MiB,
        tmp_table_bytes=floor(tmp) // MiB * MiB,
        max_connections=max_connections,
        table_open_cache=max(2000, 4 * tdc),
        table_definition_cache=tdc,
        budget_bytes=ceil(pool_t + fixed),
    )


def _opcache_target(ram: int, sites: int) -> Fraction:
    by_ram = _clamp(Fraction(ram, 16), 64 * MiB, 256 * MiB)
    by_sites = Fraction(64 * MiB + 32 * MiB * (sites - 1))
    return min(max(by_ram, by_sites), Fraction(1 * GiB))


def opcache_settings(
    ram_bytes: int,
    *,
    sites: int = 1,
    revalidate_freq_s: int = 60,
) -> OpcacheSettings:
    """OPcache and realpath cache settings for PHP 8.2-FPM.

    - memory_consumption: RAM/16 within 64-256 MiB, and at least 64 MiB + 32 MiB per extra site (each site
      has its own copy of WordPress, cached under its own paths), at most 1 GiB. It is one shared segment
      for all pools of the single php8.2-fpm master, so it is budgeted once, not per worker. Below 1 GiB of
      RAM it stays at 64 MiB, which still holds WordPress core and a usual plugin set.
    - interned_strings_buffer: 1/8 of that (8 MiB at 64, 16 at 128, 32 at 256).
    - max_accelerated_files: at least max(10000, 4000 x sites) (WordPress core is about two thousand PHP
      files, plugins and themes add the rest), written as the prime PHP would round it up to anyway
      (zend_accel_hash_init picks the first of 7963, 16229, 32531, ... not below the setting), so that
      `opcache_get_status()` shows the value in the file.
    - validate_timestamps on, revalidate_freq 60 s: WordPress and plugin updates become visible within a
      minute without a reload, at one stat() per file per minute.
    - validate_permission when several sites (several unix users) share the master, so that one site's
      worker cannot run another site's cached script it could not read.
    - realpath_cache_size 4096K, realpath_cache_ttl 600 s: WordPress resolves hundreds of include paths
      per request. (Deployments that swap a `current` symlink would need a shorter ttl; we do not.)
    """
    ram = _check_bytes(ram_bytes, "RAM")
    sites = _check_count(sites, "The number of sites")
    _check_count(revalidate_freq_s, "revalidate_freq", low=0)
    target = _opcache_target(ram, sites)
    mc = floor(target) // MiB
    want_files = max(10000, OPCACHE_FILES_PER_SITE * sites)
    files = next((p for p in PHP_OPCACHE_PRIMES if p >= want_files), PHP_OPCACHE_PRIMES[-1])
    return OpcacheSettings(
        memory_consumption_mb=mc,
        interned_strings_buffer_mb=max(8, min(64, mc // 8)),
        max_accelerated_files=files,
        revalidate_freq_s=revalidate_freq_s,
        validate_permission=sites > 1,
        budget_bytes=ceil(target),
    )


def _redis_target(ram: int) -> Fraction:
    return _clamp(Fraction(ram, 16), 16 * MiB, 4 * GiB)


def redis_settings(ram_bytes: int, *, sites: int = 1) -> RedisSettings:
    """Redis as WordPress's object cache: `maxmemory = RAM/16` within 16 MiB-4 GiB, `allkeys-lru`.

    allkeys-lru because everything in it is a cache entry WordPress can rebuild: evicting the least
    recently used key is always right, and the default `noeviction` would make writes fail once full.
    The budget adds 25 % for jemalloc fragmentation and 8 MiB for the server itself. Sites are kept apart
    by ACL users (each may use only its `<site>:*` keys, pressfleet.ssh.redisacl), not by databases; there
    are at least as many databases as sites (at least Redis's usual 16) for site blocks that name one.
    """
    ram = _check_bytes(ram_bytes, "RAM")
    sites = _check_count(sites, "The number of sites")
    target = _redis_target(ram)
    maxmemory = floor(target) // MiB * MiB
    return RedisSettings(
        maxmemory_bytes=maxmemory,
        databases=max(16, sites),
        budget_bytes=ceil(target * Fraction(5, 4) + 8 * MiB),
    )


def plan_host(
    ram_bytes: int,
    *,
    worker_rss_bytes: int | None = None,
    sites: int = 1,
    cpus: int | None = None,
    db_data_bytes: int | None = None,
) -> HostPlan:
    """Size every service of one host against its RAM; see the module docstring for the formulas.

    If fewer than two PHP workers fit, the InnoDB buffer pool gives up memory (down to 64 MiB) until two
    do; if that is not enough, `InsufficientMemory` says how much is missing.
    """
    ram = _check_bytes(ram_bytes, "RAM")
    sites = _check_count(sites, "The number of sites")
    rss = DEFAULT_WORKER_RSS if worker_rss_bytes is None else worker_rss_bytes
    os_reserve = _os_reserve(ram)
    redis = redis_settings(ram, sites=sites)
    opcache = opcache_settings(ram, sites=sites)
    fixed_db = _innodb_fixed(ram)[0]
    pool_t = _pool_target(ram, db_data_bytes)
    # Exact (unrounded) budgets, so that the PHP share grows strictly with RAM (the rounded-up figures in
    # HostPlan.budget() exceed these by a few bytes at most, which SLACK covers).
    others = (
        os_reserve
        + _redis_target(ram) * Fraction(5, 4) + 8 * MiB
        + _opcache_target(ram, sites)
        + fixed_db
    )
    try:
        php = php_fpm_max_children(ram, rss, others + pool_t, sites, cpus=cpus)
    except InsufficientMemory:
        rss = _check_bytes(rss, "PHP worker memory", low=MiB)
        squeezed = Fraction(ram) - others - SLACK - MIN_CHILDREN * _worker_cost(rss)
        if squeezed < BUFFER_POOL_MIN:
            short = BUFFER_POOL_MIN - squeezed
            raise InsufficientMemory(
                f"{_mib(ram)} of RAM is {_mib(short)} short of MariaDB's smallest buffer pool, Redis, OPcache, "
                f"the OS and {MIN_CHILDREN} PHP workers of {_mib(_worker_cost(rss))} each."
            ) from None
        pool_t = min(pool_t, squeezed)
        php = php_fpm_max_children(ram, rss, others + pool_t, sites, cpus=cpus)
    innodb = innodb_settings(
        ram,
        max_children_total=php.process_max,
        sites=sites,
        db_data_bytes=db_data_bytes,
        buffer_pool_target_bytes=pool_t,
    )
    return HostPlan(
        ram_bytes=ram,
        os_reserve_bytes=os_reserve_bytes(ram),
        php=php,
        innodb=innodb,
        opcache=opcache,
        redis=redis,
    )
