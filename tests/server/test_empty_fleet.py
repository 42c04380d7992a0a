"""Scheduled fleet jobs on an empty fleet complete with a note (issue 9, item 17).

A schedule fires whether or not anything was saved yet: the demo's ship-binlogs fired before its first site
existed and failed red in the UI. Here every scheduled deployment of the lab environment (deployments/) runs
its real flow, with the parameters its schedule would pass, against a Prefect API of its own (an in-process
harness with a fresh database, so no test's saved blocks are seen) and a private state folder: each run ends
Completed, and the fleet jobs say "nothing to do" in a log line and in their artifact.
"""

from __future__ import annotations

import importlib
import os

import pytest

from pressfleet.stack import deployments
from pressfleet.fleet.nothing import NO_SERVERS, NO_SITES
from pressfleet.paths import ROOT

pytestmark = [pytest.mark.server, pytest.mark.timeout(900)]

# analysis-notebooks is left out: a minute of papermill, and tests/analysis/test_notebooks.py executes its notebooks
SCHEDULED = [d for d in deployments.compose_files(ROOT / "prefect.yaml", "lab")["deployments"]
             if d["schedules"] and d["name"] != "analysis-notebooks"]
FLEET_JOBS = {"fleet-backup": NO_SITES, "fleet-restore-test": NO_SITES, "weekly-prune": NO_SITES,
              "ship-binlogs": NO_SITES, "collect-metrics": NO_SERVERS}


@pytest.fixture(scope="module")
def empty_api(tmp_path_factory):
    from prefect.testing.utilities import prefect_test_harness

    state = tmp_path_factory.mktemp("empty-fleet") / "state"
    saved = {k: os.environ.get(k) for k in ("PRESSFLEET_STATE", "PRESSFLEET_METRICS_URL")}
    os.environ["PRESSFLEET_STATE"] = str(state)
    os.environ.pop("PRESSFLEET_METRICS_URL", None)
    try:
        with prefect_test_harness(server_startup_timeout=60):
            yield state
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def test_every_fleet_job_is_scheduled():
    assert set(FLEET_JOBS) <= {d["name"] for d in SCHEDULED}


@pytest.mark.parametrize("deployment", SCHEDULED, ids=[d["name"] for d in SCHEDULED])
def test_a_scheduled_job_on_an_empty_fleet_completes(empty_api, deployment):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId

    path, name = deployment["entrypoint"].split(":")
    flow_fn = getattr(importlib.import_module(path[:-3].replace("/", ".")), name)
    state = flow_fn(**(deployment.get("parameters") or {}), return_state=True)
    assert state.is_completed(), f"{deployment['name']}: {state}"
    note = FLEET_JOBS.get(deployment["name"])
    if note is None:
        return  # the analyses of an empty store: completing is what a schedule needs from them
    run_id = state.state_details.flow_run_id
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # the run's log lines reach the API before they are read
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    assert any(note in (a.data or "") for a in artifacts), [a.data for a in artifacts]
    assert any(note in log.message for log in logs), [log.message for log in logs]
    # nothing was created for the empty fleet: no storage block, no backup folder
    assert not (empty_api / "backups").exists()
