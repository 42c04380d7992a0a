"""Prove backups restore: the job that runs after the nightly backup."""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.blocks.system import Secret

from blocks.server import Server
from blocks.site import WordPressSite
from blocks.storage import AnyStorage
from pressfleet.fleet.nothing import no_saved_sites, nothing_to_do
from pressfleet.backup.targets import sites_or_all, storage_block
from pressfleet.fleet.locks import site_lock
from pressfleet.lab import hosts as lab
from pressfleet.lab.blocks import server_for
from pressfleet.validate import InvalidInput
from tasks.backup import restore_test_one


@contextlib.contextmanager
def scratch_server(site_name: str, scratch=None, log=None) -> Iterator[tuple[object, str]]:
    """The configured scratch server, or a fresh lab host (stopped afterwards) on the control machine."""
    if scratch is not None:
        yield scratch, scratch.address
        return
    name = ("rt-" + site_name.replace("_", "-"))[:12].rstrip("-")
    try:
        host = lab.up(name, log=log or (lambda m: None))
    except lab.LabError as exc:
        raise InvalidInput(
            f"no scratch server was given and no lab host can be booted here ({str(exc).rstrip('.')}): set the "
            "restore-test's `scratch` parameter to a Server block (`--scratch SERVER_BLOCK` from the command line)"
        ) from None
    try:
        yield server_for(host), f"fresh lab host {name} ({host.address})"
    finally:
        lab.down(name)


@flow(name="restore-test")
def restore_test(
    site: Optional[WordPressSite] = None,
    storage: Optional[AnyStorage] = None,
    scratch: Optional[Server] = None,
    backup_id: Optional[str] = None,
    encryption_key: Optional[Secret] = None,
    keep_scratch: bool = False,
) -> list[dict]:
    """Restore each site's newest backup (or `backup_id`) somewhere else and prove it works.

    On the scratch server (left empty: a fresh lab host on the control machine, stopped afterwards) the
    backup goes into a scratch database and folder: every part's sha256 and size, every table's rows and
    every file of the backup's index (present, with its size and sha256) are checked, WordPress boots from
    the copy and its home page must answer 200. A failed restore-test makes the site's next backup full.
    Then the backup is marked verified in storage with the time it took (the measured RTO). A broken
    backup fails the run and the artifact names the broken part. Scratch data is deleted unless
    `keep_scratch`.
    """
    if no_saved_sites(site):  # a schedule that fires before the first site exists: completes with a note
        return nothing_to_do("restore-test")
    store_block = storage_block(storage)
    results, failures = [], []
    targets = sites_or_all(site)
    with site_lock([s.name for s in targets], "restore-test", hosts=[scratch], logger=get_run_logger()) as lock:
        for s in targets:
            try:
                with scratch_server(s.name, scratch, log=get_run_logger().info) as (server, where):
                    results.append(restore_test_one(s, store_block, server, where, backup_id, encryption_key,
                                                    keep_scratch))
            except Exception as exc:
                failures.append(f"{s.name}: {exc}")
    lines = ["# Restore tests", "", *([lock.note, ""] if lock.note else []),
             "| site | backup | kind | verified | took | target |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['site']} | {r['backup']} | {r['kind']} | yes | {r['seconds']:.1f} s | {r['target']} |" for r in results]
    for r in results:
        lines += ["", f"## {r['site']} {r['backup']}", *[f"- {c}" for c in r["checks"]]]
    if failures:
        lines += ["", "## Failed (not verified)", *[f"- {f}" for f in failures]]
    create_markdown_artifact(key="restore-test", markdown="\n".join(lines), description="restore-test")
    if failures:
        raise RuntimeError("restore-test failed: " + "; ".join(failures))
    return results
