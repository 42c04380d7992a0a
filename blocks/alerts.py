"""Alert rules and escalation policies, as blocks a person edits in the UI (the watcher reads them every minute).

An Alert Rule block is one rule (pressfleet.alerts.rules.Rule); the shipped defaults are saved as `rule-NAME`
blocks the first time `pressfleet alerts sync` (or `pressfleet stack up`) runs, and are never overwritten after
that, so an edit in the UI stays. An Alert Policy block maps rules to channels, level by level; `pressfleet
alerts sync` turns each policy into Prefect automations (the Automations page shows them).
"""

from __future__ import annotations

import re
from typing import Literal, Optional

from prefect.blocks.core import Block
from pydantic import BaseModel, Field, field_validator

from pressfleet.alerts.rules import CHECKS, Rule, rule_name

CHANNEL_RE = re.compile(r"^[a-z0-9-]{1,100}/[a-z0-9][a-z0-9-]{0,99}$")


class AlertRule(Block):
    """One alert rule: a check, who it selects, when it fires and resolves, and how bad it is."""

    _block_type_name = "Alert Rule"
    _block_type_slug = "alert-rule"
    _description = "One alert rule: check, selector, comparison, threshold, for, severity."

    name: str = Field(..., title="Rule name", description="a-z, 0-9, -: what messages and `alerts list` call it")
    check: str = Field(..., title="Check", description="One of: " + ", ".join(sorted(CHECKS)))
    comparison: Literal[">", ">=", "<", "<=", "==", "!="] = Field(">", title="Comparison")
    threshold: float = Field(0.0, title="Threshold")
    for_seconds: float = Field(0, ge=0, title="For (seconds)", description="How long it holds before it fires.")
    resolve_seconds: float = Field(60, ge=0, title="Resolve after (seconds)",
                                   description="How long it stays clear before it resolves (stops flapping).")
    severity: Literal["critical", "warning", "info"] = Field("warning", title="Severity")
    sites: list[str] = Field(default_factory=list, title="Sites", description="Site names; empty: every site.")
    servers: list[str] = Field(default_factory=list, title="Servers", description="Server names; empty: every server.")
    tags: list[str] = Field(default_factory=list, title="Tags", description="Only resources with one of these tags.")
    summary: str = Field("", title="Summary", max_length=300, description="{value} and {threshold} are filled in.")
    enabled: bool = Field(True, title="Enabled")

    def rule(self) -> Rule:
        """The validated rule (raises ValueError naming what is wrong, e.g. an unknown check)."""
        return Rule(**self.model_dump(include=set(Rule.model_fields)))

    @classmethod
    def from_rule(cls, rule: Rule) -> "AlertRule":
        return cls(**rule.model_dump())


class EscalationLevel(BaseModel):
    channels: list[str] = Field(default_factory=list, title="Channels",
                                description="Notification blocks as BLOCK-TYPE/NAME, e.g. email-channel/ops.")
    after_minutes: float = Field(0, ge=0, le=10080, title="After (minutes)",
                                 description="Level 1: 0. Later levels: minutes after firing with no ack.")

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: list[str]) -> list[str]:
        for v in value:
            if not CHANNEL_RE.fullmatch(v):
                raise ValueError(f"a channel is BLOCK-TYPE/NAME (e.g. email-channel/ops), not {v!r}")
        return value


class AlertPolicy(Block):
    """Which alerts go to whom: level 1 at once; later levels when nobody acks in time; reminders; resolved."""

    _block_type_name = "Alert Policy"
    _block_type_slug = "alert-policy"
    _description = "Escalation: channels per level, minutes until the next level, reminders while firing."

    levels: list[EscalationLevel] = Field(default_factory=lambda: [EscalationLevel()], title="Levels", min_length=1)
    repeat_hours: float = Field(4.0, gt=0, le=168, title="Repeat every (hours)",
                                description="Level 1 is reminded while an alert fires and nobody acked it.")
    rules: list[str] = Field(default_factory=list, title="Rules", description="Rule names; empty: every rule.")
    severities: list[Literal["critical", "warning", "info"]] = Field(
        default_factory=lambda: ["critical", "warning", "info"], title="Severities")
    enabled: bool = Field(True, title="Enabled")

    @field_validator("rules")
    @classmethod
    def _rules(cls, value: list[str]) -> list[str]:
        return [rule_name(v) for v in value]

    @field_validator("levels")
    @classmethod
    def _levels(cls, value: list[EscalationLevel]) -> list[EscalationLevel]:
        if value and value[0].after_minutes != 0:
            raise ValueError("level 1 is notified at once (after 0 minutes)")
        for a, b in zip(value, value[1:]):
            if b.after_minutes <= a.after_minutes:
                raise ValueError("each level comes after the one before it (after_minutes increasing)")
        if any(0 < lv.after_minutes < 1 / 6 for lv in value):
            raise ValueError("an escalation delay is at least 10 seconds (Prefect's proactive triggers)")
        return value

    def covers(self, rule: Rule) -> bool:
        return self.enabled and (not self.rules or rule.name in self.rules) and rule.severity in self.severities


DEFAULT_POLICY = "default"


def policy_for(rule: Rule, policies: dict[str, AlertPolicy]) -> Optional[str]:
    """The policy an alert of RULE goes to: the first (by name) that names the rule, else the first that covers it
    (the default policy last)."""
    named = sorted(n for n, p in policies.items() if p.rules and p.covers(rule))
    if named:
        return named[0]
    wide = sorted((n for n, p in policies.items() if not p.rules and p.covers(rule)), key=lambda n: (n == DEFAULT_POLICY, n))
    return wide[0] if wide else None
