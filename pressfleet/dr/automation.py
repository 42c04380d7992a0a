"""Automatic failover as Prefect automations: one per pair that asks for it (tag `pressfleet-dr`).

`pressfleet-dr/<site>/auto-failover`: reactive, on the watcher's `pressfleet.alert.firing` of the `site-down`
rule for that site -> run the `failover/failover` deployment with `site` and `automatic: true`. The flow then
decides (pressfleet.dr.decide): it waits the pair's `failover_after_s` with the primary down from every
vantage point that can look, and never acts on the control side's view alone or within the cool-down.
"""

from __future__ import annotations

from typing import Optional
from uuid import UUID

TAG = "pressfleet-dr"
DEPLOYMENT = "failover/failover"
RULE = "site-down"


def automation_name(site: str) -> str:
    return f"{TAG}/{site}/auto-failover"


def failover_automation(site: str, deployment_id: UUID, *, enabled: bool = True) -> dict:
    """The automation of one pair, as AutomationCore fields (pure)."""
    from pressfleet.alerts.automations import FIRING

    return {
        "name": automation_name(site), "enabled": enabled, "tags": [TAG, f"site:{site}"],
        "description": f"{site}: when the watcher says the site is down, run the failover flow (it checks from the "
                       "front and the standby too, and waits out its cool-down).",
        "trigger": {"type": "event", "posture": "Reactive", "expect": [FIRING], "threshold": 1, "within": 0,
                    "match": {"prefect.resource.id": f"pressfleet.site.{site}", "pressfleet.alert.rule": RULE}},
        "actions": [{"type": "run-deployment", "source": "selected", "deployment_id": str(deployment_id),
                     "parameters": {"site": site, "automatic": True}, "job_variables": {}}],
    }


def _deployment_id(client) -> Optional[UUID]:
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(DEPLOYMENT).id
    except ObjectNotFound:  # not deployed (no stack): nothing can run it
        return None


def sync_failover_automations() -> dict[str, list[str]]:
    """Make the `pressfleet-dr` automations exactly those of the saved pairs with automatic failover on.
    Without a `failover` deployment there is nothing to run: every such automation is removed and the result
    says so under "no-deployment"."""
    from prefect.client.orchestration import get_client
    from prefect.events.schemas.automations import AutomationCore

    from pressfleet.alerts.automations import upsert
    from pressfleet.dr.pairs import saved_pairs

    result: dict[str, list[str]] = {"created": [], "updated": [], "deleted": [], "unchanged": [], "no-deployment": []}
    pairs = [p for p in saved_pairs() if p.auto_failover]
    with get_client(sync_client=True) as client:
        dep = _deployment_id(client)
        wanted = {}
        for p in pairs:
            if dep is None:
                result["no-deployment"].append(p.site)
            else:
                wanted[automation_name(p.site)] = AutomationCore.model_validate(failover_automation(p.site, dep))
        existing = {a.name: a for a in client.read_automations() if TAG in (a.tags or [])}
        upsert(client, wanted, existing, result)
        for name, a in existing.items():
            if name not in wanted:
                client.delete_automation(a.id)
                result["deleted"].append(name)
    return result
