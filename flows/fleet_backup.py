"""The fleet's nightly jobs, spread over every worker: one child run of the per-site deployment per site.

`fleet-backup` (scheduled nightly) starts a run of `backup-site/nightly-backup` for each saved site and
`fleet-restore-test` (two hours later) a run of `restore-test/nightly-restore-test`; whichever workers poll
the pool take them, on one control machine or several. Each child holds its site's lock and a slot of its
host's limit (the Server block's `max_operations`), so a host never has more than that many at once.
"""

from __future__ import annotations

from typing import Optional

from prefect import flow
from prefect.blocks.system import Secret

from blocks.server import Server
from blocks.site import WordPressSite
from blocks.storage import AnyStorage
from pressfleet.backup.targets import saved_sites, server_of
from pressfleet.fleet.children import block_ref, site_children
from pressfleet.fleet.fanout import DEFAULT_TIMEOUT_SECONDS, fan_out, raise_if_failed
from pressfleet.fleet.locks import host_lock_name
from pressfleet.fleet.nothing import nothing_to_do

BACKUP_DEPLOYMENT = "backup-site/nightly-backup"
RESTORE_TEST_DEPLOYMENT = "restore-test/nightly-restore-test"


def _host(site) -> str:
    server: Server = server_of(site)
    return host_lock_name(server.address, server.port).removeprefix("pressfleet-host-")


def _refs(**blocks) -> dict:
    """The parameters that name blocks, for the children (those left empty are left out: the child's default)."""
    return {k: block_ref(v) for k, v in blocks.items() if v is not None}


@flow(name="fleet-backup")
def fleet_backup(
    sites: Optional[list[WordPressSite]] = None,
    storage: Optional[AnyStorage] = None,
    encryption_key: Optional[Secret] = None,
    full_every_days: int = 7,
    full: bool = False,
    deployment: str = BACKUP_DEPLOYMENT,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> list[dict]:
    """Back up every site of the fleet (or the picked ones), one child run of backup-site per site.

    The children are shared by every worker of the pool; each waits for its site and for a slot on its
    host. This run waits for them all, then publishes the table artifact `fleet-backup` (site, host, worker,
    child run, state, seconds) and fails if any child failed. Storage and key left empty: each child's
    defaults (`local-backups`, `pressfleet-backup-key`). No saved site: completes with a note.
    """
    targets = sites if sites is not None else saved_sites()
    if not targets:
        return nothing_to_do("fleet-backup")
    common = {**_refs(storage=storage, encryption_key=encryption_key), "full_every_days": full_every_days,
              "full": full}
    outcomes = fan_out("fleet-backup", deployment, site_children(targets, common=common, host_of=_host),
                       timeout=timeout_seconds)
    raise_if_failed("fleet-backup", outcomes)
    return [o.__dict__ | {"seconds": o.seconds} for o in outcomes]


@flow(name="fleet-restore-test")
def fleet_restore_test(
    sites: Optional[list[WordPressSite]] = None,
    storage: Optional[AnyStorage] = None,
    scratch: Optional[Server] = None,
    encryption_key: Optional[Secret] = None,
    keep_scratch: bool = False,
    deployment: str = RESTORE_TEST_DEPLOYMENT,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> list[dict]:
    """Prove every site's newest backup (or the picked sites'), one child run of restore-test per site.

    Each child restores on the scratch server (left empty: a fresh lab host of its worker's machine) and
    marks the backup verified; this run waits for all, publishes the table artifact `fleet-restore-test`
    and fails if any child failed. No saved site: completes with a note.
    """
    targets = sites if sites is not None else saved_sites()
    if not targets:
        return nothing_to_do("fleet-restore-test")
    common = {**_refs(storage=storage, scratch=scratch, encryption_key=encryption_key), "keep_scratch": keep_scratch}
    outcomes = fan_out("fleet-restore-test", deployment, site_children(targets, common=common, host_of=_host),
                       timeout=timeout_seconds)
    raise_if_failed("fleet-restore-test", outcomes)
    return [o.__dict__ | {"seconds": o.seconds} for o in outcomes]
