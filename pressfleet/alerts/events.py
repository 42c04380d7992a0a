"""Alerts as Prefect events: `pressfleet.alert.firing`, `.resolved`, `.reminder` (the watcher) and `.acked` (the CLI).

The resource is the site or server (`pressfleet.site.NAME`, `pressfleet.server.NAME`) with the alert's id, rule,
severity, policy and (on resolved) the highest escalation level it reached as labels; the payload holds the value,
the rule and the evidence, and the subject and body the channels send (the automations' templates use them).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional, Sequence

from pressfleet.alerts.automations import ACKED, FIRING, REMINDER, RESOLVED, level_reached
from pressfleet.alerts.rules import AlertState, Notice, Resource, Rule


def _resource(res: Resource, st: AlertState, rule: Rule, policy: Optional[str], level: int = 1) -> dict:
    return {"prefect.resource.id": res.resource_id, "prefect.resource.name": res.address or res.name,
            "pressfleet.alert.id": st.alert_id, "pressfleet.alert.rule": rule.name,
            "pressfleet.alert.severity": rule.severity, "pressfleet.alert.policy": policy or "",
            "pressfleet.alert.level": str(level)}


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _evidence_lines(evidence) -> list[str]:
    lines = []
    for k, v in dict(evidence).items():
        if v in ("", None, False) and k != "status":
            continue
        lines.append(f"  {k}: {str(v)[:500]}")
    return lines


def texts(event: str, st: AlertState, rule: Rule, res: Resource, now: float) -> tuple[str, str]:
    """The subject and body a person reads."""
    who = f"{res.kind} {res.name}" + (f" ({res.address})" if res.address and res.address != res.name else "")
    what = rule.describe(st.value)
    if event == "resolved":
        subject = f"[RESOLVED] {rule.name}: {who}"
        head = f"Resolved at {_when(now)} after {(now - st.since) / 60:.1f} min: {what}"
    else:
        tag = "REMINDER" if event == "reminder" else rule.severity.upper()
        subject = f"[{tag}] {rule.name}: {who}: {what}"
        head = f"Firing since {_when(st.since)}: {what}"
    body = "\n".join([
        head,
        f"Rule: {rule.name} ({rule.check} {rule.comparison} {rule.threshold:g}, for {rule.for_seconds:g} s), "
        f"severity {rule.severity}",
        f"Value: {st.value}",
        "Evidence:", *(_evidence_lines(st.evidence) or ["  (none)"]),
        "",
        f"Alert id: {st.alert_id}",
        *([f"Acknowledge: pressfleet alerts ack {st.alert_id}",
           f"Silence:     pressfleet alerts silence --{res.kind} {res.name} --for 2h --reason \"...\""]
          if event != "resolved" else []),
    ])
    return subject, body


def _emit(event: str, res: Resource, st: AlertState, rule: Rule, policy: Optional[str], now: float, *,
          level: int = 1, extra: dict | None = None) -> None:
    from prefect.events import emit_event

    subject, body = texts(event.rsplit(".", 1)[-1], st, rule, res, now)
    payload = {"alert_id": st.alert_id, "rule": rule.name, "check": rule.check, "comparison": rule.comparison,
               "threshold": rule.threshold, "severity": rule.severity, "value": st.value,
               "evidence": {k: (v if isinstance(v, (int, float, bool)) or v is None else str(v)[:1000])
                            for k, v in dict(st.evidence).items()},
               "since": st.since, "subject": subject, "body": body, **(extra or {})}
    emit_event(event=event, resource=_resource(res, st, rule, policy, level), payload=payload,
               occurred=datetime.fromtimestamp(now, timezone.utc))


def emit(notice: Notice, *, policy: Optional[str], now: float, levels: Sequence[float] = (0.0,),
         acked_at: float | None = None) -> None:
    """A firing or resolved notice as its event (a resolved one labelled with the level the alert reached)."""
    if notice.event == "firing":
        _emit(FIRING, notice.resource, notice.state, notice.rule, policy, now)
    else:
        level = level_reached(levels, notice.state.since, now, acked_at)
        _emit(RESOLVED, notice.resource, notice.state, notice.rule, policy, now, level=level)


def emit_reminder(st: AlertState, rule: Rule, res: Resource, *, policy: Optional[str], now: float) -> None:
    _emit(REMINDER, res, st, rule, policy, now)


def emit_acked(*, alert_id: str, resource_id: str, rule: str, policy: str, by: str, now: float) -> None:
    """The ack of one alert (its escalation stops: the proactive triggers expect this event)."""
    from prefect.events import emit_event

    emit_event(event=ACKED,
               resource={"prefect.resource.id": resource_id, "pressfleet.alert.id": alert_id,
                         "pressfleet.alert.rule": rule, "pressfleet.alert.policy": policy or ""},
               payload={"alert_id": alert_id, "by": by}, occurred=datetime.fromtimestamp(now, timezone.utc))


def flush(timeout: float = 10.0) -> None:
    """Send what is queued (before a process exits)."""
    try:
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all(timeout=timeout)
    except Exception:  # noqa: BLE001 - nothing queued or no worker started
        pass
