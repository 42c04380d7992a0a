"""Prune old backups by policy: the weekly job that keeps storage from growing without end."""

from __future__ import annotations

from typing import Optional

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from blocks.backup import BackupRetention
from blocks.site import WordPressSite
from blocks.storage import AnyStorage
from pressfleet.backup.report import human_bytes
from pressfleet.fleet.nothing import no_saved_sites, nothing_to_do
from pressfleet.backup.targets import sites_or_all, storage_block
from pressfleet.fleet.locks import site_lock
from tasks.backup import prune_one

@flow(name="prune-backups")
def prune_backups(
    site: Optional[WordPressSite] = None,
    storage: Optional[AnyStorage] = None,
    policy: Optional[BackupRetention] = None,
    dry_run: bool = False,
) -> list[dict]:
    """Delete the backups a retention policy does not keep; with `dry_run`, only list them.

    Policy left empty: keep the last 7, 14 daily, 8 weekly, 12 monthly and 2 yearly. Whatever the policy,
    the newest verified backup is never deleted, nor a backup that a kept incremental depends on. A
    policy that keeps nothing is refused before anything is deleted. Shipped binary logs that no kept
    backup can roll forward from go too. Objects under an object lock are reported, not forced.
    """
    if no_saved_sites(site):  # a schedule that fires before the first site exists: completes with a note
        return nothing_to_do("prune-backups")
    chosen = (policy or BackupRetention()).policy()
    store_block = storage_block(storage)
    targets = sites_or_all(site)
    with site_lock([s.config().name for s in targets], "prune-backups", logger=get_run_logger()) as lock:
        results = [prune_one(s.config().name, store_block, chosen, dry_run) for s in targets]
    verb = "would delete" if dry_run else "deleted"
    lines = [f"# Prune backups{' (dry run)' if dry_run else ''}", "",
             f"| site | kept | {verb} | freed | binary logs {verb} | not deleted |",
             "| --- | --- | --- | --- | --- | --- |"]
    if lock.note:
        lines[1:1] = [lock.note, ""]
    for r in results:
        gone = r["delete"] if dry_run else r["deleted"]
        lines.append(f"| {r['site']} | {len(r['keep'])} | {', '.join(gone) or '-'} | {human_bytes(r['bytes_freed'])} "
                     f"| {len(r['binlogs_removed'])} | {'; '.join(r['not_deleted']) or '-'} |")
    for r in results:
        lines += ["", f"## Why {r['site']} keeps what it keeps", *[f"- {b}: {', '.join(w)}" for b, w in r["reasons"].items()]]
    create_markdown_artifact(key="prune-backups", markdown="\n".join(lines), description="prune-backups")
    return results
