"""Fan a fleet-wide job out over the work pool: one child flow run per site (or server), the parent waits.

`fan_out(job, deployment, children)` starts a run of the per-site `deployment` for each `Child`
(`pressfleet.fleet.children`) as a sub-run of the calling flow run (the UI shows them under it), so every
worker polling the pool, on whichever machine, takes some. It waits for all of them, reads back which
worker ran each (the worker's `submitted-flow-run` event), publishes a table artifact (child, host, worker,
run, state, seconds) and returns the outcomes; `raise_if_failed` then fails the parent, after every child
has finished, naming those that did not complete. The per-host and per-site limits
(`pressfleet.fleet.locks`) are taken by the children themselves, so the parent starts them all at once.

Used by flows/fleet_backup.py (nightly backup and restore-test), flows/collect_metrics.py's fleet round,
and the fleet file's provisioning (one child per site).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Iterable, Sequence

from pressfleet.fleet.children import Child, ChildOutcome, failure_sentence, summary_line, summary_rows

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
POLL_SECONDS = 2.0
DEFAULT_TIMEOUT_SECONDS = 12 * 3600.0  # a night's backups; a child still running then is reported as such
SUBMITTED_EVENT = "prefect.worker.submitted-flow-run"


def start_children(job: str, deployment: str, children: Sequence[Child]) -> list[tuple[Child, object]]:
    """Create one flow run of `deployment` per child (scheduled now, as sub-runs of this run) without
    waiting. A parent re-run (a retry of the same run) does not start a child twice: each child's
    idempotency key is the parent run's id and the child's label."""
    from prefect.deployments import run_deployment
    from prefect.runtime import flow_run

    parent = flow_run.get_id()
    started = []
    for child in children:
        run = run_deployment(deployment, parameters=dict(child.parameters), timeout=0, as_subflow=True,
                             flow_run_name=f"{job}-{child.label}"[:100], tags=["pressfleet", "fleet-child", job],
                             idempotency_key=f"{parent}:{job}:{child.label}" if parent else None)
        started.append((child, run))
    return started


def wait_for(run_ids: Sequence, timeout: float = DEFAULT_TIMEOUT_SECONDS, poll: float = POLL_SECONDS) -> dict:
    """{run id: flow run} once every run is in a final state (or the timeout passed: as they are then)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = {r.id: r for r in client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(run_ids))), limit=max(len(run_ids), 1))}
            done = all(r.state is not None and r.state.type.value in TERMINAL for r in runs.values())
            if (done and len(runs) == len(run_ids)) or time.monotonic() > deadline:
                return runs
            time.sleep(poll)


def workers_of(runs: Iterable, settle_seconds: float = 10.0) -> dict:
    """{run id: worker name}: the `prefect.worker.name` label the worker gives each run it takes, else its
    `submitted-flow-run` event (events reach the server a moment after the fact: read again for up to
    `settle_seconds` until every run has one)."""
    runs = list(runs)
    found = {r.id: r.labels["prefect.worker.name"] for r in runs if (r.labels or {}).get("prefect.worker.name")}
    missing = [r for r in runs if r.id not in found]
    if missing:
        found.update(_workers_from_events(missing, settle_seconds))
    return found


def _workers_from_events(runs: list, settle_seconds: float) -> dict:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventRelatedFilter

    since = min((r.created for r in runs if r.created), default=None)
    wanted = {f"prefect.flow-run.{r.id}": r.id for r in runs}
    found: dict = {}
    deadline = time.monotonic() + settle_seconds
    with get_client(sync_client=True) as client:
        while True:
            occurred = EventOccurredFilter(since=since - timedelta(minutes=1)) if since else EventOccurredFilter()
            page = client.read_events(EventFilter(occurred=occurred, event=EventNameFilter(name=[SUBMITTED_EVENT]),
                                                  related=EventRelatedFilter(id=list(wanted))), limit=200)
            events = list(page.events)
            while page.next_page:
                page = client.read_events_page(str(page.next_page))
                events += page.events
            for event in events:
                for res in event.related:
                    if res.id in wanted:
                        found[wanted[res.id]] = event.resource.get("prefect.resource.name") or event.resource.id
            if len(found) >= len(runs) or time.monotonic() > deadline:
                return found
            time.sleep(1.0)


def fan_out(job: str, deployment: str, children: Sequence[Child], *, timeout: float = DEFAULT_TIMEOUT_SECONDS,
            poll: float = POLL_SECONDS, artifact_key: str | None = None) -> list[ChildOutcome]:
    """Start one child run per child, wait for all, report them (table artifact `artifact_key`, default the
    job's name) and return what became of each. Never raises for a child's sake: see raise_if_failed."""
    from prefect import get_run_logger
    from prefect.artifacts import create_table_artifact

    log = get_run_logger()
    started = start_children(job, deployment, children)
    log.info("%s: started %d child runs of %s", job, len(started), deployment)
    runs = wait_for([run.id for _, run in started], timeout=timeout, poll=poll)
    workers = workers_of(runs.values())
    outcomes = []
    for child, run in started:
        now = runs.get(run.id, run)
        state = now.state.type.value if now.state is not None else "UNKNOWN"
        message = "" if state == "COMPLETED" else (now.state.message or "" if now.state else "")
        if state not in TERMINAL:
            message = f"still {state} after {timeout:.0f} s"
        outcomes.append(ChildOutcome(label=child.label, run_name=now.name, run_id=str(now.id), state=state,
                                     worker=workers.get(now.id, ""), host=child.host, started=now.start_time,
                                     ended=now.end_time, message=message))
    line = summary_line(job, outcomes)
    log.info("%s", line)
    create_table_artifact(key=artifact_key or job, table=summary_rows(outcomes), description=line)
    return outcomes


def raise_if_failed(job: str, outcomes: Sequence[ChildOutcome]) -> None:
    """Fail the parent (after all children finished) when any child did not complete, naming them."""
    sentence = failure_sentence(job, outcomes)
    if sentence:
        raise RuntimeError(sentence)
