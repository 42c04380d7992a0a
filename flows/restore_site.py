"""Bring a site back from a backup: whole or in part, on its own host or another (disaster recovery)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Optional, Union

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.blocks.system import Secret

from blocks.server import Server
from blocks.site import WordPressSite
from blocks.storage import AnyStorage
from pressfleet.alerts.store import maintenance
from pressfleet.backup.targets import server_of, storage_block
from pressfleet.fleet.changes import record_change
from pressfleet.fleet.locks import site_lock
from tasks.backup import restore_one

Part = Union[Literal["database", "files", "uploads", "themes", "plugins", "webroot"], str]


@flow(name="restore-site")
def restore_site(
    site: WordPressSite,
    storage: Optional[AnyStorage] = None,
    backup_id: Optional[str] = None,
    target: Optional[Server] = None,
    parts: list[Part] = ["database", "files"],  # noqa: B006 - a form default, never mutated
    point_in_time: Optional[datetime] = None,
    provision_target: Optional[bool] = None,
    encryption_key: Optional[Secret] = None,
) -> dict:
    """Restore a backup of SITE onto its own server or onto TARGET.

    parts: database, files (wp-content and the web root's own files: ads.txt, robots.txt, .user.ini...),
    uploads, themes, plugins, webroot (those web-root files alone), table:NAME for one table, or, on a network,
    subsite:N for subsite N alone (its wp_N_ tables and uploads/sites/N; the other subsites keep what they have).
    backup_id left empty: the newest backup (or, with point_in_time, the newest taken before it; the
    database is then rolled forward to that moment from the shipped binary logs, and refused, naming the
    missing log or how far they reach, when they cannot get there). Everything is loaded
    into staging and checked (sha256, size, rows) before it replaces the live copy, so a broken backup
    leaves the site as it was. A target other than the site's own server is provisioned first (the
    disaster-recovery path); set provision_target to force it either way.
    """
    own = site.server
    chosen = target if target is not None else server_of(site)
    provision = provision_target if provision_target is not None else (
        own is None or chosen.address != own.address or chosen.port != own.port)
    steps = []
    with site_lock([site.name], "restore-site", hosts=[chosen], logger=get_run_logger()) as lock, \
            maintenance([site.name], "restore-site", log=get_run_logger().warning):
        if lock.note:
            steps.append(lock.note)
        if provision:
            from flows.provision_wordpress import provision_wordpress

            report = provision_wordpress(server=chosen, site=site, verify=False)
            steps.append(f"provisioned {chosen.address} in {report.seconds:.1f} s")
        result = restore_one(site, storage_block(storage), chosen, backup_id, list(parts), point_in_time,
                             encryption_key)
    lines = [f"# Restored {result['site']} from backup {result['backup']}", "",
             f"- target: {result['target']}", f"- restored: {', '.join(result['restored'])} in {result['seconds']:.1f} s",
             f"- chain: {' → '.join(result['chain'])}", f"- database: {result['tables']} tables, {result['rows']} rows checked",
             *([f"- rolled forward to {result['until']}"] if result["until"] else []), *[f"- {s}" for s in steps]]
    create_markdown_artifact(key="restore-site", markdown="\n".join(lines), description="restore-site")
    record_change(site.name, "restore-site", f"restored {', '.join(result['restored'])} from {result['backup']}")
    return {**result, "provisioned": provision}
