"""Apply a fleet file: make the saved blocks match `fleet.yaml` and provision what changed.

The same flow runs from the UI (deployment `apply-fleet/apply-fleet`) and from `pressfleet fleet apply`.
"""

from __future__ import annotations

import inspect
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from pressfleet.fleet import fleetblocks
from pressfleet.fleet.fleetfile import FleetDoc, FleetFileError, load_fleet_file, load_fleet_path
from pressfleet.fleet.fleetplan import FleetPlan, plan_fleet
from pressfleet.fleet.sites import saved_sites

# Progress hook (helper F's rich display plugs in here): called as hook(event, host, site, detail) with event
# one of "hosts" (detail: how many), "site-start", "site-done", "site-failed", "host-done", "host-failed".
_PROGRESS: list[Callable[..., None]] = []
_PENDING_LOCK = threading.Lock()


def add_progress_hook(hook: Callable[..., None]) -> Callable[[], None]:
    """Register a progress callback; returns a function that removes it."""
    _PROGRESS.append(hook)
    return lambda: _PROGRESS.remove(hook) if hook in _PROGRESS else None


def _progress(event: str, host: str | None = None, site: str | None = None, detail=None) -> None:
    for hook in list(_PROGRESS):
        try:
            hook(event, host, site, detail)
        except Exception:  # noqa: BLE001 - a display never stops an apply
            pass


def _reach(name: str, server) -> str | None:
    """None when SERVER answers over SSH with its pinned key (a trust-on-first-use key is pinned on the
    unsaved block), else why not."""
    try:
        conn = server.connect(connect_timeout=10, refused_wait=2)
        conn.close()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure to reach is the same refusal
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


@task(name="reach every server", cache_policy=NONE)
def reach_servers(doc: FleetDoc, desired: fleetblocks.Desired) -> None:
    """Connect to every server of the file, in parallel; refuse (with each one's line) any that does not answer."""
    names = list(desired.servers)
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(names)))) as pool:
        why = dict(zip(names, pool.map(lambda n: _reach(n, desired.servers[n]), names)))
    problems = [(("servers", n, "address"),
                 f"servers.{n}: cannot reach {desired.servers[n].target()}: {w}; check the address and port, that "
                 "sshd runs there, and the key, or take the server out of the file")
                for n, w in why.items() if w is not None]
    if problems:
        raise doc.error(problems)


def _refuse_collisions(doc: FleetDoc, desired: fleetblocks.Desired, plan: FleetPlan) -> None:
    if not plan.collisions:
        return
    problems = []
    for kind, name, sentence in plan.collisions:
        loc = {"server": ("servers", name), "storage": ("storage", name), "retention": ("retention", name),
               "site": ("sites", desired.site_index.get(name, 0))}[kind]
        problems.append((loc, sentence))
    raise doc.error(problems)


def _dry_run_diffs(desired: fleetblocks.Desired, plan: FleetPlan) -> dict[str, object]:
    """Per host, what provisioning would change (provision-wordpress with dry_run), or 'pending' when that
    flow cannot do a dry run yet."""
    from flows.provision_wordpress import provision_wordpress

    if "dry_run" not in inspect.signature(provision_wordpress.fn).parameters:
        return {h: "pending: provision-wordpress has no dry_run yet (the block plan above is complete)"
                for h in plan.provision}
    out: dict[str, object] = {}
    for host, sites in plan.provision.items():
        per_site = {}
        for block in sites:
            try:
                per_site[block] = provision_wordpress(server=desired.servers[host], site=desired.sites[block],
                                                      dry_run=True)
            except Exception as exc:  # noqa: BLE001 - reported per site
                per_site[block] = f"dry run failed: {exc}"
        out[host] = per_site
    return out


@task(name="provision one host", cache_policy=NONE)
def provision_host(host: str, server, sites: list[tuple[str, object]]) -> dict:
    """Provision the sites of one host one after another (child runs of provision-wordpress); the first failure
    stops that host (its later sites would meet the same host)."""
    from flows.provision_wordpress import provision_wordpress

    done, failed = [], None
    for block, site in sites:
        _progress("site-start", host, block)
        try:
            provision_wordpress(server=server, site=site)
        except Exception as exc:  # noqa: BLE001 - reported for the host, the other hosts go on
            failed = f"{block}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            _progress("site-failed", host, block, failed)
            break
        done.append(block)
        with _PENDING_LOCK:  # hosts finish in parallel: one read-modify-write of the pending list at a time
            fleetblocks.set_pending([s for s in fleetblocks.pending_sites() if s != block])
        _progress("site-done", host, block)
    _progress("host-failed" if failed else "host-done", host, None, failed)
    return {"host": host, "provisioned": done, "failed": failed}


@flow(name="apply-fleet")
def apply_fleet(fleet_file: str = "fleet.yaml", fleet_yaml: Optional[str] = None, dry_run: bool = False) -> dict:
    """Make the saved blocks match a fleet file and provision what changed.

    `fleet_file` is a path on the machine running the flow (or paste the file's text in `fleet_yaml`). Checks
    everything first, with the file's line for each problem: the file itself (unknown keys, a site twice, a
    domain on two sites), every referenced key file and Secret block, every server over SSH, and identity
    collisions with saved blocks (one domain under two site names, one address under two server names).
    Nothing changes when anything is refused. Then saves the blocks to create or change and provisions the new
    and changed sites: hosts in parallel, the sites of one host one after another, each a child run of
    provision-wordpress. A host that fails does not stop the others; the run then fails naming it, and a
    re-run provisions what is still pending. `dry_run`: the plan (blocks to create, change field by field,
    leave) and per host what provisioning would change; nothing is saved or run.
    """
    log = get_run_logger()
    started = time.monotonic()
    doc = load_fleet_file(fleet_yaml, "fleet_yaml") if fleet_yaml is not None else load_fleet_path(fleet_file)
    secrets = fleetblocks.resolve_secrets(doc)
    saved = fleetblocks.read_saved()
    desired = fleetblocks.desired_blocks(doc, secrets, saved_sites(), saved.host_keys())
    plan = plan_fleet(desired.records(), saved.records())
    _refuse_collisions(doc, desired, plan)
    reach_servers(doc, desired)
    pending = [b for b in fleetblocks.pending_sites() if b in desired.sites]
    for block in pending:  # saved by an apply whose provisioning did not finish
        host = desired.site_server[block]
        if block not in plan.provision.get(host, []):
            plan.provision.setdefault(host, []).append(block)
    lines = plan.lines()
    result: dict = {"dry_run": dry_run, "plan": lines, "saved": [], "provisioned": {}, "failed": {},
                    "unreadable": saved.unreadable}
    for line in lines:
        log.info("%s", line)
    if dry_run:
        result["diffs"] = _dry_run_diffs(desired, plan)
        _artifact(result, time.monotonic() - started)
        return result

    to_save = {(a.kind, a.name) for a in plan.actions if a.op != "leave"}
    fleetblocks.set_pending([*fleetblocks.pending_sites(), *(b for s in plan.provision.values() for b in s)])
    result["saved"] = fleetblocks.save_blocks(desired, to_save)
    _progress("hosts", detail=len(plan.provision))
    futures = [provision_host.submit(host, desired.servers[host], [(b, desired.sites[b]) for b in sites])
               for host, sites in plan.provision.items()]
    for host, fut in zip(plan.provision, futures):
        try:
            outcome = fut.result()
        except Exception as exc:  # noqa: BLE001 - the task itself failed (not a site): the host failed
            outcome = {"host": host, "provisioned": [], "failed": str(exc).splitlines()[0]}
        result["provisioned"][host] = outcome["provisioned"]
        if outcome["failed"]:
            result["failed"][host] = outcome["failed"]
    _artifact(result, time.monotonic() - started)
    if result["failed"]:
        raise FleetApplyFailed(result)
    return result


class FleetApplyFailed(RuntimeError):
    """Some hosts failed (the others finished); `result` is what the apply did."""

    def __init__(self, result: dict):
        self.result = result
        super().__init__("fleet apply failed on " + "; ".join(f"{h} ({w})" for h, w in result["failed"].items())
                         + ": the other hosts finished; re-run to complete")


def _artifact(result: dict, seconds: float) -> None:
    title = "Fleet plan (dry run: nothing changed)" if result["dry_run"] else "Fleet apply"
    md = [f"# {title}", "", f"{seconds:.1f} s", "", "```", *result["plan"], "```"]
    for host, diff in (result.get("diffs") or {}).items():
        md += ["", f"## {host}", "", "```", str(diff)[:20000], "```"]
    if result["failed"]:
        md += ["", "**Failed:**", *[f"- {h}: {w}" for h, w in result["failed"].items()]]
    create_markdown_artifact(key="apply-fleet", markdown="\n".join(md), description=title)


__all__ = ["apply_fleet", "add_progress_hook", "FleetApplyFailed", "FleetFileError", "Path"]
