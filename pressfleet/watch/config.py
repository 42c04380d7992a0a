"""Alert configuration through the Prefect API: shipped defaults, channels joining a policy, `alerts sync`.

The default rules are saved as `rule-NAME` Alert Rule blocks and the `default` Alert Policy (level 1 at once,
level 2 after 15 min, level 3 after 30 min, reminders every 4 h) only where missing, so edits in the UI stay.
"""

from __future__ import annotations

from typing import Any

CHANNEL_TYPES = ("email-channel", "custom-webhook", "slack-webhook", "ms-teams-webhook", "pager-duty-webhook")


def ensure_defaults() -> list[str]:
    """Save the shipped rules and the default policy where no block of that name exists; returns what was saved."""
    from blocks.alerts import DEFAULT_POLICY, AlertPolicy, AlertRule, EscalationLevel
    from pressfleet.alerts.rules import DEFAULT_RULES
    from pressfleet.fleet.saved import saved_block_names

    saved: list[str] = []
    have = set(saved_block_names("alert-rule"))
    for rule in DEFAULT_RULES:
        name = f"rule-{rule.name}"
        if name not in have:
            AlertRule.from_rule(rule).save(name)
            saved.append(f"alert-rule/{name}")
    if DEFAULT_POLICY not in saved_block_names("alert-policy"):
        AlertPolicy(levels=[EscalationLevel(after_minutes=0), EscalationLevel(after_minutes=15),
                            EscalationLevel(after_minutes=30)]).save(DEFAULT_POLICY)
        saved.append(f"alert-policy/{DEFAULT_POLICY}")
    return saved


def channel_id(ref: str) -> Any:
    """The block document id of channel `TYPE/NAME` (ValueError if there is no such notification block)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    slug, _, name = ref.partition("/")
    with get_client(sync_client=True) as client:
        try:
            return client.read_block_document_by_name(name=name, block_type_slug=slug, include_secrets=False).id
        except ObjectNotFound:
            raise ValueError(f"no channel {ref!r} (a notification block of type {slug!r} named {name!r})") from None


def join_default(ref: str, level: int = 1) -> None:
    from blocks.alerts import DEFAULT_POLICY, AlertPolicy

    ensure_defaults()
    pol = AlertPolicy.load(DEFAULT_POLICY)
    if ref not in pol.levels[level - 1].channels:
        pol.levels[level - 1].channels.append(ref)
        pol.save(DEFAULT_POLICY, overwrite=True)


def leave_policies(ref: str) -> list[str]:
    """Take channel REF out of every policy; returns the policies changed."""
    from blocks.alerts import AlertPolicy
    from pressfleet.fleet.saved import saved_block_names

    changed = []
    for name in saved_block_names("alert-policy"):
        pol = AlertPolicy.load(name)
        if any(ref in lv.channels for lv in pol.levels):
            for lv in pol.levels:
                lv.channels = [c for c in lv.channels if c != ref]
            pol.save(name, overwrite=True)
            changed.append(name)
    return changed


def sync() -> dict[str, list[str]]:
    """Every policy block as its automations (pressfleet.alerts.automations); channels that are gone are named."""
    from blocks.alerts import AlertPolicy
    from pressfleet.alerts import automations
    from pressfleet.fleet.saved import saved_block_names

    saved = ensure_defaults()
    specs, missing, names = [], [], saved_block_names("alert-policy")
    for name in names:
        pol = AlertPolicy.load(name)
        levels = []
        for lv in pol.levels:
            ids = []
            for ref in lv.channels:
                try:
                    ids.append(channel_id(ref))
                except ValueError as exc:
                    missing.append(f"policy {name}: {exc}")
            levels.append((lv.after_minutes, ids))
        specs += automations.policy_automations(name, levels, enabled=pol.enabled)
    result = automations.sync(specs, policies=names)
    result["defaults_saved"] = saved
    result["missing_channels"] = missing
    return result
