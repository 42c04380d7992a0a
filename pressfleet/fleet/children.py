"""What a fleet-wide job fans out to, and how its parent reports: pure, no Prefect, no I/O.

A fleet-wide job (the nightly backup, the nightly restore-test, metrics collection, a fleet file's
provisioning) is a parent flow run that starts one child flow run per site (or per server) of the
per-site deployment, so that every worker of the pool takes some; `pressfleet.fleet.fanout` does the
Prefect part. This module says which children (`Child`: a label, the deployment's parameters), and turns
what became of them (`ChildOutcome`) into the parent's table, its verdict and its failure sentence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping

from pressfleet.validate import InvalidInput


@dataclass(frozen=True)
class Child:
    """One child flow run to start: `label` names it in the report (a site or a server), `parameters`
    go to the per-site deployment (block references by document name, as the UI's form would)."""

    label: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    host: str = ""  # the host it works on, for the report ('' when not one host)


@dataclass(frozen=True)
class ChildOutcome:
    """What became of one child: its flow run, the worker that ran it, its final state and times."""

    label: str
    run_name: str
    run_id: str
    state: str  # COMPLETED, FAILED, CRASHED, CANCELLED, ... (Prefect's state type)
    worker: str = ""
    host: str = ""
    started: datetime | None = None
    ended: datetime | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "COMPLETED"

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return (self.ended - self.started).total_seconds()


def block_ref(block) -> dict:
    """How a deployment's parameter names a saved block (what the UI's form sends): a reference to its
    document. An unsaved block cannot be handed to another process: one sentence."""
    doc_id = getattr(block, "_block_document_id", None)
    if doc_id is None or getattr(block, "_is_anonymous", False):
        raise InvalidInput(f"a {type(block).__name__} block must be saved (have a name) to be handed to a child run")
    return {"$ref": {"block_document_id": str(doc_id)}}


def _name_of(block) -> str:
    return getattr(block, "_block_document_name", None) or getattr(block, "name", "") or "?"


def site_children(sites: Iterable, *, site_param: str = "site", common: Mapping[str, Any] | None = None,
                  host_of=None) -> list[Child]:
    """One child per site (each site once, in name order), its parameters `common` plus `site_param`: the
    site block's name. `host_of(site)` names the host a site is on, for the report."""
    by_name: dict[str, Any] = {}
    for site in sites:
        by_name.setdefault(site.name, site)
    out = []
    for name in sorted(by_name):
        site = by_name[name]
        params = {**(common or {}), site_param: block_ref(site)}
        out.append(Child(label=name, parameters=params, host=host_of(site) if host_of else ""))
    return out


def server_children(servers: Iterable, *, server_param: str = "servers", common: Mapping[str, Any] | None = None,
                    host_of=None) -> list[Child]:
    """One child per host (two blocks naming one host: the first), its parameters `common` plus
    `server_param`: a one-element list of the server block's name."""
    seen: dict[str, Child] = {}
    for server in servers:
        host = host_of(server) if host_of else _name_of(server)
        if host in seen:
            continue
        seen[host] = Child(label=host, parameters={**(common or {}), server_param: [block_ref(server)]}, host=host)
    return [seen[h] for h in sorted(seen)]


def failures(outcomes: Iterable[ChildOutcome]) -> list[ChildOutcome]:
    return [o for o in outcomes if not o.ok]


def failure_sentence(job: str, outcomes: Iterable[ChildOutcome]) -> str:
    """'nightly-backup: 2 of 6 child runs did not complete: a (FAILED: ...), b (CRASHED).' ('' when all did)."""
    outcomes = list(outcomes)
    bad = failures(outcomes)
    if not bad:
        return ""
    each = ", ".join(f"{o.label} ({o.state}{': ' + o.message[:200] if o.message else ''})" for o in bad)
    return f"{job}: {len(bad)} of {len(outcomes)} child runs did not complete: {each}."


def summary_rows(outcomes: Iterable[ChildOutcome]) -> list[dict[str, str]]:
    """The parent's table artifact: one row per child (in label order)."""
    rows = []
    for o in sorted(outcomes, key=lambda o: o.label):
        secs = o.seconds
        rows.append({"child": o.label, "host": o.host or "-", "worker": o.worker or "-", "run": o.run_name,
                     "state": o.state, "seconds": f"{secs:.1f}" if secs is not None else "-",
                     "message": o.message[:300]})
    return rows


def summary_line(job: str, outcomes: Iterable[ChildOutcome]) -> str:
    """'nightly-backup: 6 child runs on 2 workers, 6 completed, 0 failed.'"""
    outcomes = list(outcomes)
    workers = {o.worker for o in outcomes if o.worker}
    ok = sum(1 for o in outcomes if o.ok)
    return (f"{job}: {len(outcomes)} child run{'s' if len(outcomes) != 1 else ''} on {len(workers)} "
            f"worker{'s' if len(workers) != 1 else ''}, {ok} completed, {len(outcomes) - ok} not.")


def most_at_once(intervals: Iterable[tuple[datetime, datetime]]) -> int:
    """The largest number of the given (start, end) intervals open at one moment (an end and a start at
    the same instant do not overlap)."""
    events = []
    for start, end in intervals:
        events += [(start, 1), (end, -1)]
    events.sort(key=lambda e: (e[0], e[1]))  # ends (-1) before starts (+1) at the same instant
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak
