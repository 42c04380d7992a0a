"""Automatic failover's wiring through a real Prefect server: a pair with automatic failover gets a
`pressfleet-dr` automation; the watcher's site-down alert for that site (and only that one, and only that rule)
makes a run of the deployed `failover` flow with `automatic: true`; removing the pair removes the automation."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.server


def _failover_runs(client, deployment_id) -> list:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))


def test_a_site_down_alert_runs_the_failover_deployment_for_that_site_only(prefect_api):
    from prefect.client.orchestration import get_client
    from prefect.events import emit_event

    from blocks.standby import StandbyPair, pair_block_name
    from pressfleet.alerts import events
    from pressfleet.dr.automation import automation_name, sync_failover_automations
    from tests.conftest import unreachable_server

    # The failover flow deployed to a pool of its own that no worker polls: the run is created, never started.
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    from flows.failover import failover

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name="pf-dr-idle", type="process"))
        except ObjectAlreadyExists:
            pass
    failover.to_deployment(name="failover", work_pool_name="pf-dr-idle").apply()
    pair = StandbyPair(site="drauto", primary=unreachable_server(), standby=unreachable_server(), traffic="none")
    pair.save(pair_block_name("drauto"), overwrite=True)
    manual = StandbyPair(site="drmanual", primary=unreachable_server(), standby=unreachable_server(),
                         traffic="none", auto_failover=False)
    manual.save(pair_block_name("drmanual"), overwrite=True)
    try:
        done = sync_failover_automations()
        assert done["created"] == [automation_name("drauto")], str(done)
        assert sync_failover_automations()["unchanged"] == [automation_name("drauto")]
        time.sleep(6)  # the triggers service reloads automations at least every 5 s
        with get_client(sync_client=True) as client:
            dep = client.read_deployment_by_name("failover/failover")
            before = {r.id for r in _failover_runs(client, dep.id)}

        def alert(site: str, rule: str) -> None:
            emit_event(event="pressfleet.alert.firing",
                       resource={"prefect.resource.id": f"pressfleet.site.{site}", "pressfleet.alert.rule": rule,
                                 "pressfleet.alert.id": f"t-{site}-{rule}", "pressfleet.alert.policy": "default"},
                       payload={"subject": "test", "body": "test"})

        alert("drmanual", "site-down")  # automatic failover off: nothing runs
        alert("drauto", "site-slow")  # another rule: nothing runs
        alert("drauto", "site-down")
        events.flush()
        deadline = time.monotonic() + 60
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline and not [r for r in _failover_runs(client, dep.id) if r.id not in before]:
                time.sleep(0.5)
            time.sleep(8)  # had the other two alerts started runs, they would be there by now
            new = [r for r in _failover_runs(client, dep.id) if r.id not in before]
        assert [r.parameters for r in new] == [{"site": "drauto", "automatic": True}], [r.parameters for r in new]
    finally:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            for name in ("drauto", "drmanual"):
                doc = client.read_block_document_by_name(pair_block_name(name), block_type_slug="pressfleet-standby-pair")
                client.delete_block_document(doc.id)
        assert sync_failover_automations()["deleted"] == [automation_name("drauto")]
