"""When a failover may run, and how much it would lose (pure).

A failover is decided on three views of the primary: the control side's (the watcher and this run), the
front's or DNS health checks' (from the traffic side), and the standby's (its replication connection and a
check of the primary's site from there). The control side alone never decides: if it cannot reach the front
nor the standby either, it is the one cut off, and the primary may be serving everyone else. An automatic
failover also waits out a cool-down after the last one: a second failover in a row needs a person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Optional


@dataclass(frozen=True)
class Views:
    """What each vantage point saw of the primary: True up, False down, None could not look."""

    control: Optional[bool]
    front: Optional[bool]
    standby: Optional[bool]
    standby_healthy: bool = True  # the standby's own site answers (it can take over)
    behind_transactions: Optional[int] = 0  # the standby's GTID distance (None: unknown, the primary is gone)
    behind_seconds: Optional[int] = 0


@dataclass
class Decision:
    go: bool
    reason: str
    notes: list[str] = field(default_factory=list)


def decide(views: Views, *, automatic: bool, force: bool, max_behind: int, last_failover: Optional[datetime],
           cooldown: timedelta, now: datetime) -> Decision:
    """Whether to fail over now. A person's failover (automatic False) goes ahead while the primary is up
    (a planned switch) but not onto a standby that is behind by more than MAX_BEHIND transactions unless
    FORCE; an automatic one needs every view that could look to say the primary is down, at least one
    view besides the control side's, and no failover within COOLDOWN."""
    notes: list[str] = []
    if not views.standby_healthy:
        return Decision(False, "the standby does not answer its own health check: failing over to it would "
                               "not bring the site back", notes)
    behind = views.behind_transactions
    if behind is None and views.control and not force:
        return Decision(False, "the primary answers but how far behind the standby is could not be measured: "
                               "nothing is done (--force fails over without knowing what is lost)", notes)
    if behind is not None and behind > max_behind and not force:
        return Decision(False, f"the standby is {behind} transaction(s) behind (allowed {max_behind}); "
                               f"--force fails over anyway and loses them", notes)
    if behind:
        notes.append(f"the standby is {behind} transaction(s) behind: they are lost")
    if not automatic:
        return Decision(True, "asked for by a person", notes)
    if last_failover is not None and now - last_failover < cooldown:
        left = cooldown - (now - last_failover)
        return Decision(False, f"the last failover was at {last_failover.isoformat(timespec='seconds')}: an "
                               f"automatic one waits out the cool-down ({int(left.total_seconds())} s left); "
                               "a person can run `pressfleet failover`", notes)
    others = [v for v in (views.front, views.standby) if v is not None]
    if not others:
        return Decision(False, "neither the front nor the standby could be asked: the control side may be the "
                               "one cut off, so nothing is done", notes)
    if views.control is not False:
        return Decision(False, "the control side still reaches the primary", notes)
    if any(others):
        seen = [name for name, v in (("the front", views.front), ("the standby", views.standby)) if v]
        return Decision(False, f"{' and '.join(seen)} still reach(es) the primary: only the control side lost "
                               "it (a partition), so nothing is done", notes)
    return Decision(True, "the primary is down from the control side, "
                          + " and ".join(n for n, v in (("the front", views.front), ("the standby", views.standby))
                                         if v is False), notes)


def lost_writes(acknowledged: list[int], present: set[int]) -> list[int]:
    """The acknowledged writes (ids) that the new primary does not have: the RPO in writes."""
    return [i for i in acknowledged if i not in present]
