"""Alert policies as Prefect automations (the specs are pure; `sync()` writes them through the Prefect API).

For a policy P with levels L1..Ln, pressfleet keeps these automations (tag `pressfleet-alerts`, names
`pressfleet-alerts/P/...`), visible and editable in the Automations page:

- `level-1`: reactive, on `pressfleet.alert.firing` or `pressfleet.alert.reminder` of P's alerts -> L1's channels.
- `level-K` (K > 1): proactive, `pressfleet.alert.firing` not followed by `pressfleet.alert.acked` or
  `pressfleet.alert.resolved` of the same alert (for_each `pressfleet.alert.id`) within LK's minutes -> LK's channels.
- `resolved-K`: reactive, on `pressfleet.alert.resolved` of an alert that reached level K or higher
  (the watcher labels the event with the highest level the alert reached) -> LK's channels: whoever was told
  it fired is told it is over.

The watcher emits the events (once per change; reminders every `repeat_hours` while firing and not acked).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence
from uuid import UUID

TAG = "pressfleet-alerts"
FIRING = "pressfleet.alert.firing"
RESOLVED = "pressfleet.alert.resolved"
ACKED = "pressfleet.alert.acked"
REMINDER = "pressfleet.alert.reminder"

SUBJECT = "{{ event.payload.subject }}"
BODY = "{{ event.payload.body }}"


def automation_name(policy: str, part: str) -> str:
    return f"{TAG}/{policy}/{part}"


def _match(policy: str, **labels: Any) -> dict:
    return {"prefect.resource.id": "pressfleet.*", "pressfleet.alert.policy": policy, **labels}


def _notify(channel_ids: Sequence[UUID], subject: str, body: str) -> list[dict]:
    return [{"type": "send-notification", "block_document_id": str(cid), "subject": subject, "body": body}
            for cid in channel_ids]


def policy_automations(policy: str, levels: Sequence[tuple[float, Sequence[UUID]]], *, enabled: bool = True
                       ) -> list[dict]:
    """The automations of one policy, as AutomationCore fields. `levels`: (after_minutes, channel ids) per level.

    A level with no channels gets no automation (nothing to send)."""
    out: list[dict] = []
    n = len(levels)
    for k, (after, channels) in enumerate(levels, start=1):
        if not channels:
            continue
        if k == 1:
            trigger = {"type": "event", "posture": "Reactive", "expect": [FIRING, REMINDER], "match": _match(policy),
                       "threshold": 1, "within": 0}
            subject, body = SUBJECT, BODY
            desc = f"Alerts of policy {policy!r}: tell level 1 when one fires (and remind while nobody acks)."
        else:
            trigger = {"type": "event", "posture": "Proactive", "after": [FIRING], "expect": [ACKED, RESOLVED],
                       "for_each": ["pressfleet.alert.id"], "match": _match(policy), "threshold": 1,
                       "within": float(after) * 60}
            subject = f"[level {k}: no ack in {after:g} min] {SUBJECT}"
            body = (f"Nobody acknowledged this alert within {after:g} minutes; it escalated to level {k}.\n\n"
                    + BODY)
            desc = f"Alerts of policy {policy!r}: level {k} when nobody acks or it does not resolve within {after:g} min."
        out.append({"name": automation_name(policy, f"level-{k}"), "description": desc, "enabled": enabled,
                    "tags": [TAG, f"policy:{policy}"], "trigger": trigger, "actions": _notify(channels, subject, body)})
        reached = [str(j) for j in range(k, n + 1)]
        out.append({
            "name": automation_name(policy, f"resolved-{k}"),
            "description": f"Alerts of policy {policy!r}: tell level {k} an alert it was told about is resolved.",
            "enabled": enabled, "tags": [TAG, f"policy:{policy}"],
            "trigger": {"type": "event", "posture": "Reactive", "expect": [RESOLVED],
                        "match": _match(policy, **{"pressfleet.alert.level": reached}), "threshold": 1, "within": 0},
            "actions": _notify(channels, SUBJECT, BODY),
        })
    return out


def level_reached(levels_after_minutes: Sequence[float], fired_at: float, until: float, acked_at: float | None) -> int:
    """The highest level an alert reached: level K (after M minutes) once it fired M minutes ago with no ack before."""
    stop = min(until, acked_at) if acked_at else until
    reached = 1
    for k, after in enumerate(levels_after_minutes, start=1):
        if k > 1 and stop - fired_at >= after * 60:
            reached = k
    return reached


def sync(specs: Sequence[Mapping[str, Any]], *, policies: Sequence[str]) -> dict[str, list[str]]:
    """Create, update or delete pressfleet's automations so that those of `policies` are exactly `specs`.

    Returns {"created": [...], "updated": [...], "deleted": [...], "unchanged": [...]} by name."""
    from prefect.client.orchestration import get_client
    from prefect.events.schemas.automations import AutomationCore

    wanted = {s["name"]: AutomationCore.model_validate(s) for s in specs}
    result: dict[str, list[str]] = {"created": [], "updated": [], "deleted": [], "unchanged": []}
    with get_client(sync_client=True) as client:
        existing = [a for a in client.read_automations() if TAG in (a.tags or [])]
        upsert(client, wanted, {a.name: a for a in existing}, result)
        ours = {f"{TAG}/{p}/" for p in policies}
        for a in existing:
            if a.name not in wanted and (any(a.name.startswith(pre) for pre in ours) or not _policy_alive(a, policies)):
                client.delete_automation(a.id)
                result["deleted"].append(a.name)
    return result


def upsert(client, wanted: Mapping[str, Any], by_name: Mapping[str, Any], result: dict[str, list[str]]) -> None:
    """Create each wanted automation (AutomationCore by name) missing from BY_NAME, update those that differ;
    RESULT's "created", "updated" and "unchanged" lists get the names."""
    for name, core in wanted.items():
        have = by_name.get(name)
        if have is None:
            client.create_automation(core)
            result["created"].append(name)
        elif _same(have, core):
            result["unchanged"].append(name)
        else:
            client.update_automation(have.id, core)
            result["updated"].append(name)


def _policy_alive(automation, policies: Sequence[str]) -> bool:
    parts = automation.name.split("/")
    return len(parts) < 3 or parts[1] in policies


def _same(have, core) -> bool:
    keys = ("name", "description", "enabled", "tags", "trigger", "actions")
    a = have.model_dump(mode="json", include=set(keys))
    b = core.model_dump(mode="json", include=set(keys))
    return _canonical(a) == _canonical(b)


def _canonical(value):
    """Triggers hold sets (expect, after, for_each): dumped, their order is the set's, not the spec's."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_canonical(v) for v in value]
        return sorted(items) if all(isinstance(v, str) for v in items) else items
    return value
