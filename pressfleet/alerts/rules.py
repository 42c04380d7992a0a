"""Alert rules and the state machine that turns observations into firing and resolved alerts (pure).

A rule names a check (a number observed for a site or a server: `site_up`, `disk_used_percent`, ...), a
selector (sites, servers, tags; empty selects every resource of the check's kind), a comparison and threshold,
a `for` duration (the condition must hold that long before the alert fires) and a `resolve_for` duration
(it must stay clear that long before the alert resolves: the hysteresis that stops a flapping site from sending
a message per flap), and a severity.

`step()` moves one alert along ok -> pending -> firing -> resolving -> ok; `evaluate()` runs every rule over a
round of observations, applies silences and inhibition (a server that is down mutes its sites), and returns
what to notify: a firing notice once per alert that is firing and not suppressed, and a resolved notice only
for an alert that was notified. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import math
import operator
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Literal, Mapping, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pressfleet import validate

Kind = Literal["site", "server"]
Severity = Literal["critical", "warning", "info"]
SEVERITIES: tuple[str, ...] = ("critical", "warning", "info")


@dataclass(frozen=True)
class Check:
    kind: Kind
    unit: str
    description: str
    source: str  # where the value comes from: probe, collection, backup catalog, forecast


CHECKS: dict[str, Check] = {
    # the watcher's probes, every 30 s from the control side
    "site_up": Check("site", "1/0", "HTTPS answers below 500 (a failure is retried once after 3 s)", "probe"),
    "http_status": Check("site", "code", "HTTP status of the home page (0: no answer)", "probe"),
    "ttfb_seconds": Check("site", "s", "time to first byte of the home page", "probe"),
    "keyword_found": Check("site", "1/0", "the site's watch keyword is on its home page", "probe"),
    "tls_days_left": Check("site", "days", "days until the certificate served expires", "probe"),
    "ssh_up": Check("server", "1/0", "the SSH port answers with an SSH banner", "probe"),
    # collection (collect-metrics), over SSH
    "php_fatal_count": Check("site", "errors", "PHP fatal errors in the site's error log since the last round", "collection"),
    "php_max_children_reached": Check("server", "times", "PHP-FPM hit max_children since the last round", "collection"),
    "disk_used_percent": Check("server", "%", "fullest real filesystem", "collection"),
    "inodes_used_percent": Check("server", "%", "fullest real filesystem's inodes", "collection"),
    "mariadb_up": Check("server", "1/0", "MariaDB answers its status query", "collection"),
    "redis_up": Check("server", "1/0", "Redis answers INFO", "collection"),
    "backup_age_hours": Check("site", "h", "age of the newest backup in the catalog", "backup catalog"),
    "restore_test_failed": Check("site", "1/0", "the newest restore-test of the site failed", "backup catalog"),
    # predictive (forecast-capacity's forecasts and the backup history)
    "disk_full_days": Check("server", "days", "forecast days until the fullest filesystem is full", "forecast"),
    "backup_size_ratio": Check("site", "x", "newest backup's size over the median of the ones before", "backup catalog"),
    # standby pairs (collect-metrics reads both servers of each pair)
    "replication_ok": Check("site", "1/0", "the standby's replication threads both run", "collection"),
    "replication_lag_seconds": Check("site", "s", "the standby's Seconds_Behind_Master", "collection"),
    "replication_behind_transactions": Check("site", "transactions", "the primary's GTIDs the standby has not applied",
                                             "collection"),
    "file_sync_age_seconds": Check("site", "s", "time since the last complete file sync to the standby", "collection"),
    "dr_drill_failed": Check("site", "1/0", "the last DR drill of the site failed", "drill"),
}

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
}


class Rule(BaseModel):
    """One alert rule (the AlertRule block holds one; pressfleet ships DEFAULT_RULES)."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(..., description="a-z, 0-9 and -: the alert's name in messages and `alerts list`")
    check: str = Field(..., description="what is compared: " + ", ".join(CHECKS))
    comparison: Literal[">", ">=", "<", "<=", "==", "!="] = ">"
    threshold: float = 0.0
    for_seconds: float = Field(0, ge=0, le=7 * 86400, description="how long the condition holds before it fires")
    resolve_seconds: float = Field(60, ge=0, le=7 * 86400, description="how long it stays clear before it resolves")
    severity: Severity = "warning"
    sites: list[str] = Field(default_factory=list, description="site names; empty: every site")
    servers: list[str] = Field(default_factory=list, description="server names or addresses; empty: every server")
    tags: list[str] = Field(default_factory=list, description="only resources with one of these tags")
    summary: str = Field("", max_length=300, description="one line for the message; {value} and {threshold} are filled in")
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return rule_name(v)

    @field_validator("check")
    @classmethod
    def _check(cls, v: str) -> str:
        if v not in CHECKS:
            raise ValueError(f"unknown check {v!r}: one of {', '.join(sorted(CHECKS))}")
        return v

    @field_validator("threshold")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("the threshold must be a finite number")
        return v

    @field_validator("sites")
    @classmethod
    def _sites(cls, v: list[str]) -> list[str]:
        return [validate.site_name(s) for s in v]

    @field_validator("servers", "tags")
    @classmethod
    def _labels(cls, v: list[str]) -> list[str]:
        return [label(s) for s in v]

    @model_validator(mode="after")
    def _selector_fits(self) -> "Rule":
        if CHECKS[self.check].kind == "server" and self.sites:
            raise ValueError(f"{self.check} is a server check: select servers or tags, not sites")
        return self

    @property
    def kind(self) -> Kind:
        return CHECKS[self.check].kind

    def holds(self, value: float) -> bool:
        return COMPARISONS[self.comparison](value, self.threshold)

    def describe(self, value: float | None) -> str:
        shown = "no data" if value is None else _fmt(value)
        text = self.summary or f"{self.check} {self.comparison} {_fmt(self.threshold)}"
        return text.replace("{value}", shown).replace("{threshold}", _fmt(self.threshold))


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.3g}"


def rule_name(value: object) -> str:
    import re

    if not isinstance(value, str) or not re.fullmatch(r"[a-z][a-z0-9-]{0,62}", value):
        raise validate.InvalidInput(f"a rule name is 1-63 of a-z, 0-9 and - starting with a letter, not {value!r}")
    return value


def label(value: object) -> str:
    """A server name or tag as a selector: letters, digits, . _ : - (an address or a block name)."""
    import re

    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}", value):
        raise validate.InvalidInput(f"a selector is 1-100 of letters, digits, . _ : - , not {value!r}")
    return value


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(name="site-down", check="site_up", comparison="<", threshold=1, for_seconds=0, resolve_seconds=55,
         severity="critical", summary="the site does not answer over HTTPS"),
    Rule(name="site-slow", check="ttfb_seconds", comparison=">", threshold=3, for_seconds=300, resolve_seconds=300,
         severity="warning", summary="time to first byte {value} s (over {threshold} s for 5 minutes)"),
    Rule(name="keyword-missing", check="keyword_found", comparison="<", threshold=1, for_seconds=60,
         resolve_seconds=60, severity="critical", summary="the home page no longer shows its watch keyword"),
    Rule(name="certificate-expiring", check="tls_days_left", comparison="<", threshold=14, resolve_seconds=0,
         severity="warning", summary="the certificate expires in {value} days"),
    Rule(name="certificate-renewal-failing", check="tls_days_left", comparison="<", threshold=25,
         for_seconds=86400, resolve_seconds=0, severity="warning",
         summary="the certificate has {value} days left a day after renewal was due (30 days before expiry)"),
    Rule(name="server-down", check="ssh_up", comparison="<", threshold=1, for_seconds=0, resolve_seconds=55,
         severity="critical", summary="the server's SSH port does not answer: its sites are muted until it does"),
    Rule(name="php-fatal", check="php_fatal_count", comparison=">", threshold=0, resolve_seconds=900,
         severity="warning", summary="{value} PHP fatal error(s) in the site's error log"),
    Rule(name="fpm-max-children", check="php_max_children_reached", comparison=">", threshold=0,
         resolve_seconds=900, severity="warning", summary="PHP-FPM reached max_children {value} time(s): requests queued"),
    Rule(name="disk-nearly-full", check="disk_used_percent", comparison=">", threshold=90, resolve_seconds=600,
         severity="warning", summary="a filesystem is {value}% full"),
    Rule(name="inodes-nearly-full", check="inodes_used_percent", comparison=">", threshold=90, resolve_seconds=600,
         severity="warning", summary="a filesystem's inodes are {value}% used"),
    Rule(name="mariadb-down", check="mariadb_up", comparison="<", threshold=1, resolve_seconds=0,
         severity="critical", summary="MariaDB does not answer"),
    Rule(name="redis-down", check="redis_up", comparison="<", threshold=1, resolve_seconds=0,
         severity="critical", summary="Redis does not answer"),
    Rule(name="backup-stale", check="backup_age_hours", comparison=">", threshold=26, resolve_seconds=0,
         severity="warning", summary="the newest backup is {value} hours old"),
    Rule(name="restore-test-failed", check="restore_test_failed", comparison=">=", threshold=1, resolve_seconds=0,
         severity="critical", summary="the last restore-test failed: the newest backup is not proven"),
    Rule(name="disk-full-soon", check="disk_full_days", comparison="<", threshold=7, resolve_seconds=0,
         severity="warning", summary="the forecast fills a filesystem within {value} days"),
    Rule(name="backup-size-jump", check="backup_size_ratio", comparison=">", threshold=2, resolve_seconds=0,
         severity="warning", summary="the newest backup is {value}x the usual size"),
    Rule(name="replication-broken", check="replication_ok", comparison="<", threshold=1, resolve_seconds=0,
         severity="critical", summary="the standby does not replicate: a failover would lose what it misses"),
    Rule(name="replication-lag", check="replication_lag_seconds", comparison=">", threshold=60, for_seconds=300,
         resolve_seconds=300, severity="warning", summary="the standby is {value} s behind its primary"),
    Rule(name="file-sync-stale", check="file_sync_age_seconds", comparison=">", threshold=600, resolve_seconds=0,
         severity="warning", summary="the standby's files were last synced {value} s ago"),
    Rule(name="dr-drill-failed", check="dr_drill_failed", comparison=">=", threshold=1, resolve_seconds=0,
         severity="critical", summary="the last DR drill failed: failover is not proven"),
)


# --- resources and observations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    """A site or a server, as rules select it (`server` of a site: its server's name)."""

    kind: Kind
    name: str
    tags: tuple[str, ...] = ()
    server: str = ""  # a site's server (its name), for selection by server and for inhibition
    address: str = ""  # what a person reads in the message: the site's domain, the server's address

    @property
    def resource_id(self) -> str:
        return f"pressfleet.{self.kind}.{self.name}"


def selects(rule: Rule, res: Resource) -> bool:
    if not rule.enabled or rule.kind != res.kind:
        return False
    if rule.sites and res.name not in rule.sites:
        return False
    if rule.servers:
        names = {res.server} if res.kind == "site" else {res.name, res.address}
        if not names & set(rule.servers):
            return False
    if rule.tags and not set(rule.tags) & set(res.tags):
        return False
    return True


@dataclass(frozen=True)
class Observation:
    value: Optional[float]  # None: no data this round (never fires, never resolves)
    evidence: Mapping[str, object] = field(default_factory=dict)


# --- the state machine --------------------------------------------------------------------------------------

Status = Literal["ok", "pending", "firing", "resolving"]


@dataclass(frozen=True)
class AlertState:
    rule: str
    resource: str  # Resource.resource_id
    status: Status = "ok"
    since: float = 0.0  # pending since / firing since
    clear_since: float = 0.0  # resolving since
    value: Optional[float] = None
    evidence: Mapping[str, object] = field(default_factory=dict)
    alert_id: str = ""  # set when it fires; the same id until it resolves
    notified: bool = False  # a firing notice went out (so the resolved notice goes out too)

    @property
    def active(self) -> bool:
        return self.status in ("firing", "resolving")


def alert_id(rule: str, resource: str, fired_at: float) -> str:
    """Short, stable id for one firing of one rule on one resource (what `alerts ack ID` takes)."""
    return hashlib.sha256(f"{rule}|{resource}|{fired_at:.3f}".encode()).hexdigest()[:10]


def step(state: AlertState, rule: Rule, obs: Observation, now: float) -> AlertState:
    """One round for one rule on one resource. A value of None keeps the state as it is."""
    if obs.value is None:
        return state
    holds = rule.holds(obs.value)
    s = replace(state, value=obs.value, evidence=dict(obs.evidence) if holds or not state.active else state.evidence)
    if s.status == "ok":
        if not holds:
            return s
        s = replace(s, status="pending", since=now)
    if s.status == "pending":
        if not holds:
            return replace(s, status="ok", since=0.0)
        if now - s.since >= rule.for_seconds:
            return replace(s, status="firing", since=now, alert_id=alert_id(rule.name, s.resource, now),
                           notified=False)
        return s
    if s.status == "firing":
        if holds:
            return s
        s = replace(s, status="resolving", clear_since=now)
    if s.status == "resolving":
        if holds:
            return replace(s, status="firing", clear_since=0.0)
        if now - s.clear_since >= rule.resolve_seconds:
            return replace(s, status="ok", since=0.0, clear_since=0.0)
        return s
    return s


# --- silences and inhibition ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Silence:
    id: str
    kind: Kind
    target: str  # a site name or a server name
    until: float
    reason: str = ""
    rule: str = ""  # empty: every rule

    def covers(self, res: Resource, rule: str, now: float) -> bool:
        if now >= self.until or (self.rule and self.rule != rule):
            return False
        if self.kind == res.kind and self.target == res.name:
            return True
        return self.kind == "server" and res.kind == "site" and res.server == self.target


INHIBITING_RULE_CHECK = "ssh_up"  # a firing rule on this check mutes the sites of its server


@dataclass(frozen=True)
class Notice:
    """What to tell the channels: an alert that started firing (or resolved) for a person."""

    event: Literal["firing", "resolved"]
    state: AlertState
    rule: Rule
    resource: Resource


@dataclass
class Round:
    states: dict[tuple[str, str], AlertState]
    notices: list[Notice]
    suppressed: dict[tuple[str, str], str]  # (rule, resource) -> why (silence id / inhibited by ...)


def evaluate(
    rules: Sequence[Rule],
    resources: Iterable[Resource],
    observations: Mapping[tuple[str, str], Observation],
    states: Mapping[tuple[str, str], AlertState],
    now: float,
    silences: Sequence[Silence] = (),
) -> Round:
    """One round: step every (rule, resource) that a rule selects, then decide what to notify.

    `observations` is keyed (resource_id, check); a missing key is no data. `states` keyed (rule, resource_id).
    """
    res_list = list(resources)
    by_id = {r.resource_id: r for r in res_list}
    out: dict[tuple[str, str], AlertState] = {}
    for rule in rules:
        for res in res_list:
            if not selects(rule, res):
                continue
            key = (rule.name, res.resource_id)
            prev = states.get(key) or AlertState(rule=rule.name, resource=res.resource_id)
            obs = observations.get((res.resource_id, rule.check), Observation(None))
            new = step(prev, rule, obs, now)
            if new.status != "ok" or prev.status != "ok":
                out[key] = new
    # alerts of resources or rules that are gone: resolve what was notified, drop the rest
    rule_by_name = {r.name: r for r in rules}
    notices: list[Notice] = []
    for key, prev in states.items():
        if key in out:
            continue
        if prev.notified and prev.active and key[0] in rule_by_name and key[1] in by_id:
            continue  # selected no more (a rule edited): keep until the rule lets go below
        if prev.notified and prev.active:
            rule = rule_by_name.get(key[0]) or Rule(name=key[0], check="site_up")
            res = by_id.get(key[1]) or _resource_from_id(key[1])
            notices.append(Notice("resolved", replace(prev, status="ok"), rule, res))
    down_servers = {
        by_id[rid].name for (rname, rid), st in out.items()
        if st.active and rid in by_id and rule_by_name[rname].check == INHIBITING_RULE_CHECK
    }
    suppressed: dict[tuple[str, str], str] = {}
    for key, st in list(out.items()):
        rule, res = rule_by_name[key[0]], by_id[key[1]]
        why = ""
        for sil in silences:
            if sil.covers(res, rule.name, now):
                why = f"silenced ({sil.id}{': ' + sil.reason if sil.reason else ''})"
                break
        if not why and res.kind == "site" and res.server in down_servers:
            why = f"inhibited: server {res.server} is down"
        if why:
            suppressed[key] = why
        wants = st.active and not why
        if wants and not st.notified:
            out[key] = replace(st, notified=True)
            notices.append(Notice("firing", out[key], rule, res))
        elif st.notified and st.status == "ok":
            out[key] = replace(st, notified=False)
            notices.append(Notice("resolved", st, rule, res))
        if out[key].status == "ok" and not out[key].notified:
            del out[key]
    return Round(out, notices, suppressed)


def _resource_from_id(resource_id: str) -> Resource:
    _, kind, name = resource_id.split(".", 2)
    return Resource(kind=kind if kind in ("site", "server") else "site", name=name)  # type: ignore[arg-type]
