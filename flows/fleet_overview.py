"""The fleet overview: every site on one page (published after every collection round, and on demand)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Optional

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from blocks.site import WordPressSite
from blocks.storage import AnyStorage
from pressfleet.analysis import overview
from pressfleet.backup import catalog as backups
from pressfleet.backup.targets import encryption_secret, saved_sites, storage_block
from pressfleet.fleet.changes import last_changes
from pressfleet.metrics.collect import host_label
from pressfleet.metrics.store import open_store
from pressfleet.paths import private_dirs, state_dir

ARTIFACT_KEY = "fleet-overview"


def overview_path() -> Path:
    """Where the static page is written (the state folder's reports/overview/index.html)."""
    return state_dir() / "reports" / "overview" / "index.html"


def gather(sites: list[WordPressSite], storage=None) -> list[overview.SiteInput]:
    """Per site: its server, its newest backup and whether it was verified, the last run that changed it."""
    store_block = storage_block(storage)
    try:
        secret = encryption_secret(None, store_block)
    except Exception:  # noqa: BLE001 - no key: backups are listed without authenticating them
        secret = None
    changes = last_changes([s.name for s in sites])
    out = []
    for s in sites:
        newest, verified, note = None, False, ""
        try:
            entries = backups.list_backups(store_block.store(), s.name, secret)
            if len(entries):
                newest, verified = entries[-1].manifest.started_at, entries[-1].verified
        except Exception as exc:  # noqa: BLE001 - one unreadable catalogue does not hide the other sites
            note = str(exc).splitlines()[0][:120]
        server = s.server
        out.append(overview.SiteInput(
            site=s.name, domain=s.config().domain,
            server=getattr(server, "_block_document_name", None) or server.address,
            host=host_label(server), newest_backup=newest, verified=verified, backup_note=note,
            last_change=changes.get(s.name, {})))
    return out


def publish_overview(sites: Optional[list[WordPressSite]] = None, storage=None, store_url: Optional[str] = None) -> dict:
    """Build the overview, publish the `fleet-overview` artifact (one key: the UI shows the newest) and write
    the static page. Returns {"rows": table rows, "path": the page, "text": the terminal table}."""
    targets = sites if sites is not None else saved_sites()
    now = datetime.now(UTC)
    store = open_store(store_url)
    networks = {s.name: tuple(m.domain for m in s.mapped_domains) for s in targets if s.multisite}
    rows = overview.site_rows(store, overview.with_subsites(store, gather(targets, storage), networks), now)
    path = overview_path()
    private_dirs(path.parent)
    tmp = path.with_suffix(".partial")
    tmp.write_text(overview.html(rows, now))
    tmp.replace(path)
    create_markdown_artifact(key=ARTIFACT_KEY, markdown=overview.markdown(rows, now) + f"\nStatic page: {path}\n",
                             description=f"Fleet overview: {len(rows)} sites")
    return {"rows": overview.table(rows, now), "path": str(path), "text": overview.text(rows, now)}


@flow(name="fleet-overview")
def fleet_overview(storage: Optional[AnyStorage] = None, store_url: Optional[str] = None) -> dict:
    """Every saved site on one page: server, WordPress version and pending updates, last backup and whether a
    restore-test verified it, TLS days left, uptime (24 h, 30 days) and response time, the host's free disk, and
    the last flow run that changed it. Published as the `fleet-overview` artifact and as a static page under
    the state folder's reports/overview/ (collect-metrics does this after every round)."""
    result = publish_overview(storage=storage, store_url=store_url)
    get_run_logger().info("fleet overview: %d sites; page %s", len(result["rows"]), result["path"])
    return result
