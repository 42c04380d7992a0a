"""Ship MariaDB binary logs to backup storage: what makes point-in-time recovery between nightly backups."""

from __future__ import annotations

from typing import Optional

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.blocks.system import Secret

from blocks.site import WordPressSite
from blocks.storage import AnyStorage
from pressfleet.backup.report import human_bytes
from pressfleet.fleet.nothing import no_saved_sites, nothing_to_do
from pressfleet.backup.targets import sites_or_all, storage_block
from pressfleet.fleet.locks import site_lock
from tasks.backup import ship_one

@flow(name="ship-binlogs")
def ship_binlogs(
    site: Optional[WordPressSite] = None,
    storage: Optional[AnyStorage] = None,
    encryption_key: Optional[Secret] = None,
) -> list[dict]:
    """Close each site's host's current binary log and copy every closed log storage lacks.

    Run every 15 minutes, it bounds how much of the database a disaster can lose to 15 minutes; restore-site
    with point_in_time replays these logs on top of the backup taken before that moment.
    """
    if no_saved_sites(site):  # a schedule that fires before the first site exists: completes with a note
        return nothing_to_do("ship-binlogs")
    store_block = storage_block(storage)
    targets = sites_or_all(site)
    with site_lock([s.name for s in targets], "ship-binlogs", hosts=[s.server for s in targets],
                   logger=get_run_logger()) as lock:
        results = [ship_one(s, store_block, None, encryption_key) for s in targets]
    lines = ["# Binary logs shipped", "", *([lock.note, ""] if lock.note else []),
             "| site | shipped | bytes | already in storage |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['site']} | {', '.join(r['shipped']) or '-'} | {human_bytes(r['bytes'])} | {r['already']} |"
              for r in results]
    create_markdown_artifact(key="ship-binlogs", markdown="\n".join(lines), description="ship-binlogs")
    return results
