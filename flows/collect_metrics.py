"""Flow: collect-metrics. One sample of every server's vital signs, every five minutes, into the metrics store."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.task_runners import ThreadPoolTaskRunner

from blocks.server import Server
from blocks.site import WordPressSite
from blocks.storage import AnyStorage
from pressfleet.ssh import remote
from pressfleet.plan.facts import human_bytes
from pressfleet.metrics import collect
from pressfleet.metrics.collect import CollectSummary, HostResult, host_label
from pressfleet.fleet.saved import saved_block_names
from pressfleet.metrics.store import open_store
from pressfleet.fleet.nothing import NO_SERVERS
from pressfleet.paths import state_dir

CONNECT_TIMEOUT_SECONDS = 5.0
SCRIPT_TIMEOUT_SECONDS = 60.0
MAX_PARALLEL_HOSTS = 32
ARTIFACT_KEY = "collect-metrics"
RAW_DAYS = 14  # 5-minute points are kept two weeks, hourly rollups 400 days, daily ones for ever
HOURLY_DAYS = 400


@dataclass
class HostCollection:
    result: HostResult
    metrics: collect.HostMetrics


# --- counters of the previous round (for the hit ratios over the interval) -------------------------------


def _counters_path() -> Path:
    return state_dir() / "metrics" / "collect-counters.json"


def load_counters() -> dict[str, dict[str, float]]:
    try:
        data = json.loads(_counters_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def save_counters(counters: dict[str, dict[str, float]]) -> None:
    path = _counters_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    merged = {**load_counters(), **counters}
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(merged, sort_keys=True))
    tmp.replace(path)


# --- one host -------------------------------------------------------------------------------------------


@task(name="collect-host", cache_policy=NONE, task_run_name="collect-{server.address}")
def collect_host(server: Server, sites: list[collect.SiteRef], previous: Optional[dict[str, float]],
                 at: datetime) -> HostCollection:
    """One SSH connection, one read-only command (the collection script on stdin), parsed.

    Never raises for the host's sake: an unreachable host, a refused key, a timeout or an unreadable
    output is recorded as up=0 with the reason, so one bad host never stops the round.
    """
    started = time.monotonic()
    label = host_label(server)
    try:
        with server.connect(connect_timeout=CONNECT_TIMEOUT_SECONDS, refused_wait=CONNECT_TIMEOUT_SECONDS) as conn:
            out = remote.run(conn, collect.collect_command(sites), stdin=collect.script_text(),
                             timeout=SCRIPT_TIMEOUT_SECONDS)
        metrics = collect.parse_metrics(out.stdout, now=at, sites=sites, previous=previous)
        error = None
    except (remote.RemoteError, collect.CollectParseError, OSError, EOFError) as exc:
        metrics, error = collect.unreachable(), str(exc) or type(exc).__name__
        get_run_logger().warning("%s: not collected: %s", label, error)
    except Exception as exc:  # paramiko and friends raise more kinds than these; the round goes on
        metrics, error = collect.unreachable(), f"{type(exc).__name__}: {exc}"
        get_run_logger().warning("%s: not collected: %s", label, error)
    result = HostResult(host=label, up=error is None, seconds=round(time.monotonic() - started, 3),
                        sites=metrics.sites, values=metrics.values(), notes=metrics.notes, error=error)
    return HostCollection(result, metrics)


def backup_findings(storage: AnyStorage, sites: list[collect.SiteRef], found: set[str], at: datetime,
                    notes: list[str]) -> tuple[dict[str, float], list[tuple[str, str, float, dict]]]:
    """One listing of each found site's backups gives both: {domain: seconds since its newest verified backup}
    (the metric) and the backup rules' inputs, (domain, "backup_age_hours", hours since the newest complete
    backup, evidence) and (domain, "restore_test_failed", 1.0 if the newest backup a restore-test has looked at
    failed it, else 0.0, evidence). The rule's age is of any complete backup: that one is proven is the other's."""
    from pressfleet.backup.catalog import list_backups, restore_test_failures

    def utc(t: datetime) -> datetime:
        return t if t.tzinfo else t.replace(tzinfo=timezone.utc)

    ages: dict[str, float] = {}
    rows: list[tuple[str, str, float, dict]] = []
    store = storage.store()
    for ref in sites:
        if ref.domain not in found:
            continue
        try:
            failed = restore_test_failures(store, ref.name)
            entries = list_backups(store, ref.name)
        except Exception as exc:  # a storage outage must not lose the round's host metrics
            notes.append(f"backups of {ref.name}: {type(exc).__name__}: {exc}")
            continue
        verified = [utc(e.manifest.started_at) for e in entries if e.verified]
        if verified:
            ages[ref.domain] = max((at - max(verified)).total_seconds(), 0.0)
        else:
            notes.append(f"backup age of {ref.name}: no verified backup")
        if entries:
            newest = entries[-1].manifest
            rows.append((ref.domain, "backup_age_hours",
                         round(max((at - utc(newest.started_at)).total_seconds(), 0) / 3600, 2),
                         {"backup": newest.backup_id, "kind": newest.kind}))
        tested = [e for e in entries if e.verified or e.manifest.backup_id in failed]
        if tested:
            rows.append((ref.domain, "restore_test_failed", 0.0 if tested[-1].verified else 1.0,
                         {"backup": tested[-1].manifest.backup_id}))
    return ages, rows


def summary_table(summary: CollectSummary) -> list[dict[str, str]]:
    rows = []
    for h in summary.hosts:
        v = h.values

        def pct(used: str, total: str) -> str:
            return f"{100 * v[used] / v[total]:.0f} %" if v.get(total) else "-"

        site_bits = []
        for domain in h.sites:
            status = v.get(f"{collect.HTTP_STATUS}{{site={domain}}}")
            ttfb = v.get(f"{collect.TTFB_SECONDS}{{site={domain}}}")
            days = v.get(f"{collect.TLS_DAYS_LEFT}{{site={domain}}}")
            site_bits.append(f"{domain}: {int(status) if status is not None else '?'}"
                             + (f", {ttfb * 1000:.0f} ms" if ttfb is not None else "")
                             + (f", TLS {days:.0f} d" if days is not None else ""))
        rows.append({
            "host": h.host,
            "up": "yes" if h.up else "NO",
            "cpu": f"{v[collect.CPU_PERCENT]:.0f} %" if collect.CPU_PERCENT in v else "-",
            "load1": f"{v[collect.LOAD1]:.2f}" if collect.LOAD1 in v else "-",
            "memory": (f"{human_bytes(int(v[collect.MEM_USED_BYTES]))} of {human_bytes(int(v[collect.MEM_TOTAL_BYTES]))}"
                       if collect.MEM_TOTAL_BYTES in v else "-"),
            "disk /": pct(f"{collect.DISK_USED_BYTES}{{mount=/}}", f"{collect.DISK_TOTAL_BYTES}{{mount=/}}"),
            "sites": "; ".join(site_bits) or "-",
            "problems": h.error or "; ".join(h.notes) or "",
        })
    return rows


def replication_findings(at: datetime) -> tuple[list[dict], list]:
    """Each standby pair's replication (running, seconds and transactions behind) and file sync age: points
    for the metrics store (host: the standby) and rows for the alert rules (the site). A pair whose servers
    cannot be read counts as not replicating."""
    from pressfleet.alerts import observe
    from pressfleet.dr.pairs import saved_pairs
    from tasks.standby import pair_status

    points, rows = [], []
    try:
        pairs = [p for p in saved_pairs() if p.standby_state == "replica"]
    except Exception as exc:  # noqa: BLE001 - no pair type registered: nothing to read
        get_run_logger().warning("standby pairs not read: %s", exc)
        return [], []
    from flows.standby import site_block

    for pair in pairs:
        st = pair_status(pair)
        try:
            domain = site_block(pair.site).domain
        except ValueError:
            continue
        evidence = {"primary": st.primary, "standby": st.standby, "io": st.io_running, "sql": st.sql_running,
                    "error": st.error}
        samples = [collect.Sample("replication_ok", 1.0 if st.replicating else 0.0, site=domain)]
        rows.append((observe.site_id(pair.site), "replication_ok", 1.0 if st.replicating else 0.0, evidence))
        for check, value in (("replication_lag_seconds", st.seconds_behind),
                             ("replication_behind_transactions", st.transactions_behind),
                             ("file_sync_age_seconds", st.file_sync_age_s)):
            if value is not None:
                samples.append(collect.Sample(check, float(value), site=domain))
                rows.append((observe.site_id(pair.site), check, float(value), evidence))
        points += collect.to_points(host_label(pair.standby), at, samples)
    return points, rows


def observe_for_alerts(servers: list[Server], collections: list[HostCollection], refs: list[collect.SiteRef],
                       previous: dict, backups: list[tuple[str, str, float, dict]], at: datetime,
                       extra: list | None = None) -> int:
    """Hand the round to the watcher's rules (MariaDB, Redis, FPM, disks, PHP fatals, backup age, the last
    restore-test): rows in the alert store that it reads while they are under 15 minutes old. A store it
    cannot write is a warning."""
    from pressfleet.alerts import observe
    from pressfleet.alerts.store import put_observations

    names = {r.domain: r.name for r in refs}
    rows: list = []
    for server, c in zip(servers, collections):
        label = host_label(server)
        rows += observe.host_observations(getattr(server, "_block_document_name", None) or label, c.metrics,
                                          sites={d: names[d] for d in c.result.sites if d in names},
                                          previous=previous.get(label))
    rows += [(observe.site_id(names[d]), check, v, ev) for d, check, v, ev in backups if d in names]
    rows += list(extra or [])
    return put_observations(rows, at.timestamp(), log=get_run_logger().warning)


@task(name="rollup-metrics", cache_policy=NONE)
def rollup_metrics(store_url: Optional[str], at: datetime, raw_days: float, hourly_days: float) -> dict:
    """Roll the store's raw points up into hourly and daily rows (per series, from its own watermark, so a
    late or backfilled series is rolled up before it expires), then expire what is older than the retention.
    Cheap when nothing is new: every round runs it."""
    rep = open_store(store_url).rollup_and_expire(at, raw_days=raw_days, hourly_days=hourly_days)
    return {"hourly_buckets": rep.hourly_buckets_written, "hourly_series": rep.hourly_series,
            "daily_buckets": rep.daily_buckets_written, "daily_series": rep.daily_series,
            "raw_deleted": rep.raw_deleted, "hourly_deleted": rep.hourly_deleted}


@flow(name="collect-metrics", task_runner=ThreadPoolTaskRunner(max_workers=MAX_PARALLEL_HOSTS))
def collect_metrics(
    servers: Optional[list[Server]] = None,
    sites: Optional[list[WordPressSite]] = None,
    storage: Optional[AnyStorage] = None,
    store_url: Optional[str] = None,
    at: Optional[datetime] = None,
    raw_days: float = RAW_DAYS,
    hourly_days: float = HOURLY_DAYS,
) -> CollectSummary:
    """Take one sample of every server's vital signs and store it (the deployment runs every 5 minutes).

    Pick the Server blocks to watch (empty: every saved Server block) and the WordPress Site blocks
    whose sites to check (empty: every saved one; each site is checked on whichever of the servers
    serves it), and the Storage block holding their backups (empty: the saved `local-backups` block, if
    any) for the age of each site's newest verified backup and whether its last restore-test failed.
    The round also hands MariaDB and Redis up, PHP-FPM max_children, the fullest disk and inodes, PHP
    fatal errors in each site's log and the backup findings to the watcher's alert rules. Each server gets one SSH connection
    and one read-only command; servers are sampled in parallel, and one that cannot be reached is
    recorded as up=0 without holding up the others. The points go to the metrics store (`store_url`,
    else PRESSFLEET_METRICS_URL, else the SQLite file in the state folder), a table artifact
    `collect-metrics` shows the round, and the summary is the flow's result. `at` dates the round
    (default: now); a round stored again is stored once. After each round the store is rolled up
    (hourly and daily) and points older than `raw_days` (hourly rows older than `hourly_days`) expire,
    once rolled up. With no Server block saved yet the run completes with the note "no servers yet".
    """
    log = get_run_logger()
    if servers is None:
        servers = [Server.load(name) for name in saved_block_names("server")]
    if sites is None:
        sites = [WordPressSite.load(name) for name in saved_block_names("wordpress-site")]
    unique: dict[str, Server] = {}
    for server in servers:  # one host saved under two block names is still one host
        unique.setdefault(host_label(server), server)
    servers = list(unique.values())
    round_time = (at or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    refs = [collect.SiteRef.from_config(s.config()) for s in sites]
    previous = load_counters()
    started = time.monotonic()
    futures = [collect_host.submit(server, refs, previous.get(host_label(server)), round_time) for server in servers]
    collections: list[HostCollection] = [f.result() for f in futures]
    seconds = time.monotonic() - started

    points: list[dict] = []
    for c in collections:
        points += collect.to_points(c.result.host, round_time, c.metrics.samples)
    ages: dict[str, float] = {}
    backups: list[tuple[str, str, float, dict]] = []
    if storage is None:  # the deployment's schedule passes none: the default backups, if they are saved
        from pressfleet.backup.targets import saved_default_storage

        storage = saved_default_storage()
    if storage is not None and refs:
        notes: list[str] = []
        found = {d for c in collections for d in c.result.sites}
        ages, backups = backup_findings(storage, refs, found, round_time, notes)
        for c in collections:
            for domain in c.result.sites:
                if domain in ages:
                    sample = collect.Sample(collect.BACKUP_AGE_SECONDS, round(ages[domain], 1), site=domain)
                    points += collect.to_points(c.result.host, round_time, [sample])
                    c.result.values[sample.key] = sample.value
        for note in notes:
            log.warning(note)

    dr_points, dr_rows = replication_findings(round_time)
    points += dr_points
    store = open_store(store_url)
    stored = store.write_points(points)
    observed = observe_for_alerts(servers, collections, refs, previous, backups, round_time, extra=dr_rows)
    save_counters({c.result.host: c.metrics.counters for c in collections if c.metrics.counters})
    rollup = rollup_metrics(store_url, round_time, raw_days, hourly_days)

    up = sum(1 for c in collections if c.result.up)
    summary = CollectSummary(
        time=round_time, hosts=[c.result for c in collections], up=up, down=len(collections) - up,
        points=len(points), stored=stored, backend=store.dialect, seconds=round(seconds, 3),
        rollup=rollup, note=None if servers else NO_SERVERS,
    )
    rolled = (f"; rolled up {rollup['hourly_buckets']} hourly, {rollup['daily_buckets']} daily rows, "
              f"expired {rollup['raw_deleted']} raw points")
    if not servers:
        log.info("%s", NO_SERVERS)
        create_markdown_artifact(
            key=ARTIFACT_KEY, description=f"collect-metrics: {NO_SERVERS}",
            markdown=f"# collect-metrics\n\n**{NO_SERVERS}.** No Server block is saved: `pressfleet lab up NAME` "
                     f"saves one for a lab host (or create a Server block in the UI){rolled}.")
        return summary
    create_table_artifact(
        key=ARTIFACT_KEY,
        table=summary_table(summary),
        description=f"Metrics round {round_time.isoformat()}: {up} of {len(collections)} servers up, "
                    f"{stored} of {len(points)} points stored, {seconds:.1f} s{rolled}",
    )
    log.info("collected %d of %d servers in %.1f s; %d points, %d new; %d observations for the alert rules",
             up, len(collections), seconds, len(points), stored, observed)
    try:  # the overview is read every morning: published after every round, never at the round's cost
        from flows.fleet_overview import publish_overview

        publish_overview(sites=[s for s in sites if s.server is not None], storage=storage, store_url=store_url)
    except Exception as exc:  # noqa: BLE001
        log.warning("fleet overview not published: %s", exc)
    return summary


@flow(name="fleet-collect-metrics")
def fleet_collect_metrics(
    servers: Optional[list[Server]] = None,
    storage: Optional[AnyStorage] = None,
    store_url: Optional[str] = None,
    raw_days: float = RAW_DAYS,
    hourly_days: float = HOURLY_DAYS,
    deployment: str = "collect-metrics/collect-host-metrics",
) -> list[dict]:
    """One metrics round spread over every worker: a child run of collect-metrics per server (each host
    once), every saved site checked on whichever server serves it. Waits for them all, publishes the table
    artifact `fleet-collect-metrics` (server, worker, child run, state, seconds) and fails if a child failed
    (an unreachable server is not a failure: its child records it as up=0).

    The store must be one every worker reaches (`store_url`, or PRESSFLEET_METRICS_URL on the workers, e.g.
    PostgreSQL): each child writes its server's points there. The hit ratios over the interval use the
    previous round's counters kept in the worker's state folder, so a server collected on another machine
    than last time has no ratio for that round. With no Server block saved the run completes with a note.
    """
    from pressfleet.fleet.children import block_ref, server_children
    from pressfleet.fleet.fanout import fan_out, raise_if_failed
    from pressfleet.fleet.nothing import nothing_to_do

    if servers is None:
        servers = [Server.load(name) for name in saved_block_names("server")]
    if not servers:
        return nothing_to_do("fleet-collect-metrics", NO_SERVERS)
    common = {"raw_days": raw_days, "hourly_days": hourly_days, **({"store_url": store_url} if store_url else {}),
              **({"storage": block_ref(storage)} if storage is not None else {})}
    children = server_children(servers, common=common, host_of=host_label)
    outcomes = fan_out("fleet-collect-metrics", deployment, children)
    raise_if_failed("fleet-collect-metrics", outcomes)
    return [o.__dict__ | {"seconds": o.seconds} for o in outcomes]
