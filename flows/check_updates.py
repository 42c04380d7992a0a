"""What each site lacks: its core, plugins and themes against the release catalogue (the daily updates check)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Optional

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from blocks.catalog import ReleaseCatalog, load_catalog
from blocks.site import WordPressSite
from pressfleet.analysis.metric_names import UPDATES_PENDING
from pressfleet.backup.targets import saved_sites, server_of
from pressfleet.fleet.nothing import nothing_to_do
from pressfleet.fleet.selection import select_saved
from pressfleet.metrics.collect import host_label
from pressfleet.metrics.store import open_store
from pressfleet.updates.plan import outdated
from tasks import updates
from tasks.common import connected


def pending_for(site: WordPressSite, cat) -> dict:
    """One site's row: its core and what the catalogue has newer (or why it could not be read)."""
    config = site.config()
    try:
        with connected(server_of(site)) as conn:
            updates.ensure_bootstrap(conn)  # pressfleet's own bootstrap, current (a host of an older version)
            installed = updates.inventory(conn, config)
    except Exception as exc:  # noqa: BLE001 - one unreachable site does not hide the others
        return {"site": site.name, "domain": config.domain, "core": "", "pending": [], "error": str(exc)[:300]}
    found = outdated(installed, cat)
    return {"site": site.name, "domain": config.domain, "core": installed.core,
            "plugins": installed.plugins, "themes": installed.themes,
            "pending": [p.describe() for p in found], "error": ""}


@flow(name="check-updates")
def check_updates(
    sites: Optional[list[WordPressSite]] = None,
    select: list[str] = [],  # noqa: B006 - a form default, never mutated
    catalog: Optional[ReleaseCatalog] = None,
) -> list[dict]:
    """List, per site, what is out of date: each core, plugin and theme the release catalogue has a newer
    release of (as WordPress itself reports what is installed). The table artifact `updates` shows it and the
    metrics store records `updates_pending` per site, for the fleet overview and alerts. Sites: `sites`,
    `select` (names, domains, tag:T, server:S, template:T, all) or every saved site. Changes no site."""
    targets = sites if sites is not None else select_saved(select) if select else saved_sites()
    if not targets:
        return nothing_to_do("check-updates")
    cat = load_catalog(catalog)
    rows = [pending_for(s, cat) for s in targets]
    now = datetime.now(UTC)
    points = [{"time": now, "host": host_label(server_of(s)), "site": r["domain"], "metric": UPDATES_PENDING,
               "labels": {"core": r["core"]}, "value": float(len(r["pending"]))} for s, r in zip(targets, rows) if not r["error"]]
    try:
        open_store().write_points(points)
    except Exception as exc:  # noqa: BLE001 - the list itself is the result
        get_run_logger().warning("updates_pending not recorded in the metrics store: %s", exc)
    table = [{"site": r["site"], "core": r["core"], "pending": "; ".join(r["pending"]) or "up to date",
              "error": r["error"]} for r in rows]
    behind = sum(1 for r in rows if r["pending"])
    create_table_artifact(key="updates", table=table, description=f"{behind} of {len(rows)} sites have updates")
    return rows
