"""Each site's update policy, applied on a schedule: what it takes automatically goes in now, what waits for a
person is asked about in the Prefect UI."""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from typing import Literal, Optional

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.blocks.system import Secret
from prefect.exceptions import FlowPauseTimeout
from prefect.input import RunInput

from blocks.catalog import ReleaseCatalog, load_catalog
from blocks.server import Server
from blocks.site import WordPressSite
from blocks.storage import AnyStorage
from blocks.template import with_template
from flows.update_sites import UPDATE_DEPLOYMENT, UpdateFailed, update_sites
from pressfleet.backup.targets import saved_sites, server_of
from pressfleet.fleet.nothing import nothing_to_do
from pressfleet.fleet.selection import select_saved
from pressfleet.updates.policy import split
from tasks import updates
from tasks.common import connected


class ApprovalDecision(RunInput):
    """The updates the site policies leave to a person: install them now (in waves, as update-sites does), or
    leave them for another day."""

    decision: Literal["approve", "skip"] = "skip"


def _plan(site: WordPressSite, cat) -> dict:
    """One site's updates by what its policy does with them (or why they could not be read)."""
    policy = with_template(site).update_policy
    try:
        with connected(server_of(site)) as conn:
            updates.ensure_bootstrap(conn)
            installed = updates.inventory(conn, site.config())
    except Exception as exc:  # noqa: BLE001 - one unreachable site does not hide the others
        return {"site": site, "policy": policy, "error": str(exc)[:300], "auto": [], "approval": [], "never": []}
    return {"site": site, "policy": policy, "error": "", **split(installed, cat, policy)}


def _groups(plans: list[dict], action: str) -> dict[tuple, list[WordPressSite]]:
    """Sites with updates under ACTION, grouped by the levels their policies give it (one update-sites run each)."""
    out: dict[tuple, list[WordPressSite]] = defaultdict(list)
    for p in plans:
        if p[action]:
            out[tuple(p["policy"].levels(action))].append(p["site"])
    return out


@flow(name="auto-update")
def auto_update(
    sites: Optional[list[WordPressSite]] = None,
    select: list[str] = [],  # noqa: B006 - a form default, never mutated
    waves: str = "1,25%,100%",
    approval_timeout_minutes: int = 60,
    catalog: Optional[ReleaseCatalog] = None,
    storage: Optional[AnyStorage] = None,
    encryption_key: Optional[Secret] = None,
    scratch: Optional[Server] = None,
    deployment: Optional[str] = UPDATE_DEPLOYMENT,
) -> dict:
    """Apply every site's update policy (its own, or its template's; by default security releases
    automatically, minor and major ones by approval).

    Releases a policy installs automatically go in first, in waves, exactly as update-sites does (a proven
    backup first, checks before and after, a failing site rolled back and later waves not started). Then the
    releases left to approval are listed in the `auto-update-approval` artifact and the run pauses for a person
    to choose approve (installed the same way) or skip in the Prefect UI; no answer within
    `approval_timeout_minutes` is a skip, and they are asked about again on the next run. Releases a policy
    says `never` to are listed only. Sites: `sites`, `select` or every saved site.
    """
    log = get_run_logger()
    targets = sites if sites is not None else select_saved(select) if select else saved_sites()
    if not targets:
        return nothing_to_do("auto-update")
    cat = load_catalog(catalog)
    common = {"waves": waves, "catalog": catalog, "storage": storage, "encryption_key": encryption_key,
              "scratch": scratch, "deployment": deployment}
    with ThreadPoolExecutor(max_workers=max(1, min(len(targets), 4))) as pool:
        plans = [f.result() for f in [pool.submit(copy_context().run, _plan, s, cat) for s in targets]]
    table = [{"site": p["site"].name, "auto": "; ".join(u.describe() for u in p["auto"]),
              "approval": "; ".join(u.describe() for u in p["approval"]),
              "never": "; ".join(u.describe() for u in p["never"]), "error": p["error"]} for p in plans]
    result = {"plan": table, "auto": [], "approval": [], "decision": None}

    for levels, group in _groups(plans, "auto").items():
        log.info("installing %s releases automatically on %s", "/".join(levels), ", ".join(s.name for s in group))
        result["auto"] += update_sites(sites=group, levels=list(levels), **common)["sites"]

    if result["auto"]:  # what is left to ask about, as the sites are now
        again = {p["site"].name for p in plans if p["approval"]}
        plans = [_plan(p["site"], cat) if p["site"].name in again else p for p in plans]
    asked = _groups(plans, "approval")
    if asked:
        create_table_artifact(key="auto-update-approval", table=[
            {"site": p["site"].name, "approval": "; ".join(u.describe() for u in p["approval"])}
            for p in plans if p["approval"]],
                              description="Updates the site policies leave to a person: approve or skip in the "
                                          "paused auto-update run")
        from prefect.flow_runs import pause_flow_run

        try:
            decision = pause_flow_run(wait_for_input=ApprovalDecision, timeout=approval_timeout_minutes * 60,
                                      key="auto-update-approval").decision
        except FlowPauseTimeout:
            decision = "skip"
            log.info("no answer within %d min: the updates left to approval wait for the next run",
                     approval_timeout_minutes)
        result["decision"] = decision
        if decision == "approve":
            for levels, group in asked.items():
                result["approval"] += update_sites(sites=group, levels=list(levels), **common)["sites"]
    errors = [r for r in table if r["error"]]
    if errors:
        raise UpdateFailed("auto-update could not read " + "; ".join(f"{r['site']}: {r['error']}" for r in errors))
    return result
