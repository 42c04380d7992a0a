"""Backup tasks: one site's backup, restore-test, restore, prune and binary-log shipping.

Each task opens its own pinned-key SSH connection, resolves the encryption key itself (so the key is
never a task input Prefect records), and returns a plain dict summary the flows put in artifacts. The
flows compose the rest: the scratch lab host of a restore-test and the metrics store's backup_bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Optional

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from pressfleet.ssh import converge
from pressfleet.backup import binlogs, catalog, engine, restore, restoretest
from pressfleet.backup.retention import binlogs_not_needed, plan_prune
from pressfleet.backup.targets import encryption_secret, server_of
from pressfleet.storage.base import StorageError
from pressfleet.validate import InvalidInput
from tasks.common import connected

# What a scratch host needs to prove a backup: MariaDB, PHP's CLI (its built-in server boots the copy),
# zstd and curl. A provisioned WordPress host has them all already.
RESTORE_TEST_PACKAGES = ["mariadb-server", "php8.2-cli", "php8.2-mysql", "php8.2-xml", "php8.2-mbstring",
                         "php8.2-curl", "zstd", "curl", "ca-certificates"]


def _summary(site_name: str, result: engine.BackupResult, entries: list[catalog.CatalogEntry]) -> dict:
    m = result.manifest
    proofs = [e for e in entries if e.verified]
    last_proof = max(proofs, key=lambda e: e.verification.verified_at) if proofs else None
    seconds = max(result.seconds, 0.001)
    return {
        "site": site_name, "backup": m.backup_id, "kind": m.kind, "parent": m.parent_id,
        "bytes": result.bytes_stored, "seconds": result.seconds,
        "throughput_mb_s": round(result.bytes_stored / seconds / 1e6, 2),  # stored bytes per second
        "files_changed": m.files_changed, "files_total": m.files_total, "bytes_read": m.bytes_read,
        "tables": len(m.table_rows), "rows": sum(m.table_rows.values()), "verified": False,
        "rpo_seconds": round((datetime.now(UTC) - m.started_at).total_seconds(), 1),
        "rto_seconds": last_proof.verification.seconds if last_proof else None,
        "binlog": f"{m.binlog_file}:{m.binlog_position}" if m.binlog_file else None,
        "notes": result.notes,
    }


@task(name="backup", cache_policy=NONE, retries=0)
def backup_one(site, storage, server=None, key_block=None, full_every_days: int = 7, full: bool = False) -> dict:
    """Back one site up to storage: database, wp-content (changed files only on incremental runs), configs."""
    secret = encryption_secret(key_block, storage)
    store = storage.store()
    config = site.config()
    chosen = server_of(site, server)
    with connected(chosen) as conn:
        result = engine.take_backup(conn, config, store, secret=secret, full_every_days=full_every_days,
                                    host=chosen.address, force_full=full)
    entries = catalog.list_backups(store, config.name, secret)  # read once: the summary's RTO and backup_bytes
    result.notes.extend(f"left out of the catalogue: {p}" for p in entries.problems)
    summary = _summary(config.name, result, entries)
    summary["stored_bytes"] = sum(p.size for e in entries for p in e.manifest.parts)  # the flow records it
    summary["size_ratio"] = catalog.size_ratio(entries, summary["backup"])  # the backup-size-jump rule's input
    get_run_logger().info(
        "%s: %s backup %s, %d bytes stored in %.1f s (%d of %d files read)", config.name, summary["kind"],
        summary["backup"], summary["bytes"], summary["seconds"], summary["files_changed"], summary["files_total"])
    for note in result.notes:
        get_run_logger().info("%s: %s", config.name, note)
    return summary


@task(name="restore-test", cache_policy=NONE)
def restore_test_one(site, storage, scratch, where: str, backup_id: Optional[str] = None, key_block=None,
                     keep: bool = False) -> dict:
    """Restore a site's newest backup on the scratch server SCRATCH (described as WHERE) and prove it; mark
    it verified if it is, and record a failure (the site's next backup is then a full one) if it is not."""
    secret = encryption_secret(key_block, storage)
    store = storage.store()
    config = site.config()
    manifest = catalog.load_manifest(store, config.name, backup_id, secret) if backup_id else \
        catalog.newest(store, config.name, secret).manifest
    started = datetime.now(UTC)
    logger = get_run_logger()
    with connected(scratch) as conn:
        installed = converge.ensure_packages(conn, RESTORE_TEST_PACKAGES)
        converge.ensure_service(conn, "mariadb")
        try:
            result = restoretest.restore_test(conn, config, store, manifest, secret, release_url=site.release_url,
                                              release_sha256=site.release_sha256, keep=keep)
        except Exception as exc:
            # the next backup is a full one: it does not build on a chain that failed its proof
            catalog.mark_restore_test_failed(store, config.name, manifest.backup_id, datetime.now(UTC), str(exc))
            raise
    seconds = round((datetime.now(UTC) - started).total_seconds(), 2)
    checks = ([f"scratch target: {where}" + (f" ({len(installed)} packages installed)" if installed else "")]
              + result.checks)
    catalog.mark_verified(store, config.name, catalog.Verification(
        backup_id=manifest.backup_id, verified_at=datetime.now(UTC), seconds=seconds, target=where, checks=checks),
        secret=secret, manifest=manifest)  # MAC'd, and names the manifest it proved
    logger.info("%s: backup %s verified on %s in %.1f s", config.name, manifest.backup_id, where, seconds)
    return {"site": config.name, "backup": manifest.backup_id, "kind": manifest.kind, "verified": True,
            "seconds": seconds, "target": where, "checks": checks, "home_ms": round((result.home_seconds or 0) * 1000)}


@task(name="prune", cache_policy=NONE)
def prune_one(site_name: str, storage, policy, dry_run: bool = False, now: Optional[datetime] = None) -> dict:
    """Delete the backups the policy does not keep (or only list them on a dry run)."""
    store = storage.store()
    secret = encryption_secret(None, storage)  # retention trusts only markers that authenticate
    entries = catalog.list_backups(store, site_name, secret)
    records = [e.manifest.as_record(verified=e.verified) for e in entries]
    plan = plan_prune(records, policy, now=now)
    deleted, locked = [], []
    if not dry_run:
        for backup_id in plan.delete:
            try:
                catalog.delete_backup(store, site_name, backup_id)
                deleted.append(backup_id)
            except StorageError as exc:
                locked.append(f"{backup_id}: {exc}")
    # Parts of runs cut off more than a day ago (no manifest: never listed, never restorable) go too.
    cutoff = catalog.new_backup_id((now or datetime.now(UTC)) - timedelta(days=1))
    stale = [b for b in catalog.incomplete_backups(store, site_name) if b < cutoff]
    if not dry_run:
        for backup_id in stale:
            catalog.delete_backup(store, site_name, backup_id)
    # Shipped binary logs no kept backup can roll forward from (older than the oldest kept snapshot of their
    # server, or from a server no kept backup came from). Each record goes before its log, so a cut-off
    # prune leaves a log that is simply not counted as shipped.
    kept = [(e.manifest.database_instance, e.manifest.binlog_file) for e in entries if e.manifest.backup_id in plan.keep]
    logs = catalog.binlog_objects(store, site_name)
    old_logs = binlogs_not_needed(kept, {i: list(names) for i, names in logs.items()})
    binlogs_removed = []
    for instance, names in old_logs.items():
        for name in names:
            if not dry_run:
                try:
                    for key in reversed(logs[instance][name]):  # the record first
                        store.delete(key)
                except StorageError as exc:
                    locked.append(f"binary log {name}: {exc}")
                    continue
            binlogs_removed.append(name)
    sizes = {e.manifest.backup_id: sum(p.size for p in e.manifest.parts) for e in entries}
    return {"site": site_name, "dry_run": dry_run, "keep": plan.keep, "delete": plan.delete, "deleted": deleted,
            "not_deleted": locked, "reasons": plan.reasons, "binlogs_removed": binlogs_removed,
            "bytes_freed": sum(sizes.get(b, 0) for b in (plan.delete if dry_run else deleted)),
            "incomplete_removed": [] if dry_run else stale, "incomplete": catalog.incomplete_backups(store, site_name),
            "problems": entries.problems}


@task(name="restore", cache_policy=NONE)
def restore_one(site, storage, target, backup_id: Optional[str], parts: list[str], until: Optional[datetime],
                key_block=None) -> dict:
    """Restore parts of a backup onto TARGET (staging first; swapped in only when every check passed)."""
    secret = encryption_secret(key_block, storage)
    store = storage.store()
    config = site.config()
    rest, blog_ids = restore.split_subsites(parts)  # refuse bad parts before anything is read
    restore.subsite_scope(config, blog_ids)
    if rest or not blog_ids:
        restore.parse_parts(rest)
    if backup_id:
        manifest = catalog.load_manifest(store, config.name, backup_id, secret)
    elif until is not None:
        before = [e for e in catalog.list_backups(store, config.name, secret) if e.manifest.started_at <= until]
        if not before:
            raise InvalidInput(f"{config.name} has no backup taken before {until.isoformat()}")
        manifest = before[-1].manifest
    else:
        manifest = catalog.newest(store, config.name, secret).manifest
    with connected(target) as conn:
        result = restore.restore(conn, config, store, manifest, secret, parts, until=until)
    return {"site": config.name, "backup": result.backup_id, "restored": result.restored, "seconds": result.seconds,
            "chain": result.chain, "tables": len(result.rows), "rows": sum(result.rows.values()),
            "until": result.binlog_events_until, "target": target.address}


@task(name="ship-binlogs", cache_policy=NONE)
def ship_one(site, storage, server=None, key_block=None) -> dict:
    """Copy the site's host's closed binary logs to storage (point-in-time recovery)."""
    secret = encryption_secret(key_block, storage)
    config = site.config()
    with connected(server_of(site, server)) as conn:
        out = binlogs.ship_binlogs(conn, config, storage.store(), secret)
    return {"site": config.name, **out}
