"""Retention pruning: which backups to keep and which to delete, as a pure function.

``plan_prune(backups, policy)`` decides; it reads nothing and deletes nothing. The flow that calls it
deletes ``plan.delete`` (or, on a dry run, only lists it), and ``plan.reasons`` says why each kept
backup stays.

Policy (the ``keep_*`` counts, each a non-negative integer; 0 turns a rule off)
------------------------------------------------------------------------------
The rules follow restic's ``forget``. Backups are taken newest first (ties broken by id) and every
rule looks at the same list; a backup is kept if any rule keeps it.

- ``keep_last = n``: the n newest backups.
- ``keep_daily = n``: for each of the n newest calendar days (UTC) that have a backup, the newest
  backup of that day. Days without a backup do not count: the buckets are counted back from the
  newest backup, not from today, so a site that stopped backing up loses nothing to the calendar.
- ``keep_weekly``, ``keep_monthly``, ``keep_yearly``: the same with ISO weeks (Monday to Sunday, ISO
  week-numbering year), calendar months and calendar years.
- If a daily, weekly, monthly or yearly rule still has buckets left when it reaches the oldest
  backup, the oldest backup is kept as well (restic does the same: it keeps the longest history the
  policy allows).

A policy that keeps nothing (every count 0) is refused: it would delete every backup.

Safety rules, applied after the policy
--------------------------------------
- The newest verified backup (one that a restore-test proved) is never deleted, whatever the policy.
- A kept incremental backup keeps the backup it depends on (its ``parent``), and that one its own
  parent, down to the full backup: a kept backup always restores.

Errors (``RetentionError``, a ``ValueError``; nothing is planned, so nothing is deleted)
------------------------------------------------------------------------------------------
- two backups with the same id;
- an incremental whose parent id is not among the backups, or whose parent is not older than it;
- a backup dated after ``now`` (default: the current time), which would push real backups out of
  the newest buckets.

A full backup has no parent; an incremental must have one. Times must carry a time zone and are
compared in UTC.

Running ``plan_prune`` again on the kept backups deletes nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pressfleet.validate import InvalidInput

Kind = Literal["full", "incremental"]


class RetentionError(InvalidInput):
    """The backups given to ``plan_prune`` are inconsistent; nothing may be deleted."""


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"time {value.isoformat()} has no time zone; give it in UTC")
    return value.astimezone(UTC)


class RetentionPolicy(BaseModel):
    """How many generations to keep; see the module docstring for the rules."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keep_last: int = Field(default=0, ge=0)
    keep_daily: int = Field(default=0, ge=0)
    keep_weekly: int = Field(default=0, ge=0)
    keep_monthly: int = Field(default=0, ge=0)
    keep_yearly: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _keeps_something(self) -> RetentionPolicy:
        if not any((self.keep_last, self.keep_daily, self.keep_weekly, self.keep_monthly, self.keep_yearly)):
            raise ValueError(
                "retention policy keeps nothing (keep_last, keep_daily, keep_weekly, keep_monthly and "
                "keep_yearly are all 0); it would delete every backup: set at least one above 0"
            )
        return self


class BackupRecord(BaseModel):
    """One backup as the storage index lists it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    taken_at: datetime
    kind: Kind = "full"
    parent: str | None = None
    verified: bool = False

    @field_validator("taken_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return _utc(value)

    @model_validator(mode="after")
    def _parent_matches_kind(self) -> BackupRecord:
        if self.kind == "incremental" and not self.parent:
            raise ValueError(f"incremental backup {self.id!r} has no parent (the backup it depends on)")
        if self.kind == "full" and self.parent is not None:
            raise ValueError(f"full backup {self.id!r} has a parent ({self.parent!r}); only incrementals have one")
        return self


class PrunePlan(BaseModel):
    """What to keep and what to delete, newest first; ``reasons`` has an entry for every kept id."""

    keep: list[str]
    delete: list[str]
    reasons: dict[str, list[str]]


def _day(t: datetime) -> str:
    return t.strftime("%Y-%m-%d")


def _week(t: datetime) -> str:
    year, week, _ = t.isocalendar()
    return f"{year}-W{week:02d}"


def _month(t: datetime) -> str:
    return t.strftime("%Y-%m")


def _year(t: datetime) -> str:
    return f"{t.year:04d}"


_BUCKETS: tuple[tuple[str, str, Callable[[datetime], str]], ...] = (
    ("keep_daily", "daily", _day),
    ("keep_weekly", "weekly", _week),
    ("keep_monthly", "monthly", _month),
    ("keep_yearly", "yearly", _year),
)


def _check(backups: Sequence[BackupRecord], now: datetime) -> dict[str, BackupRecord]:
    by_id: dict[str, BackupRecord] = {}
    for b in backups:
        if b.id in by_id:
            raise RetentionError(f"backup id {b.id!r} appears more than once in the list")
        by_id[b.id] = b
    for b in backups:
        if b.taken_at > now:
            raise RetentionError(
                f"backup {b.id!r} is dated {b.taken_at.isoformat()}, after now ({now.isoformat()}); "
                "check the clock of the host that took it"
            )
        if b.parent is None:
            continue
        parent = by_id.get(b.parent)
        if parent is None:
            raise RetentionError(f"backup {b.id!r} depends on {b.parent!r}, which is not among the backups")
        if parent.taken_at >= b.taken_at:
            raise RetentionError(
                f"backup {b.id!r} ({b.taken_at.isoformat()}) depends on {parent.id!r} "
                f"({parent.taken_at.isoformat()}), which is not older than it"
            )
    return by_id


def plan_prune(
    backups: Iterable[BackupRecord], policy: RetentionPolicy, now: datetime | None = None
) -> PrunePlan:
    """Decide which backups to keep and which to delete; see the module docstring for the rules."""
    items = list(backups)
    now = _utc(now) if now is not None else datetime.now(UTC)
    by_id = _check(items, now)
    ordered = sorted(items, key=lambda b: (b.taken_at, b.id), reverse=True)
    reasons: dict[str, list[str]] = {}

    def keep(b: BackupRecord, why: str) -> None:
        reasons.setdefault(b.id, []).append(why)

    for b in ordered[: policy.keep_last]:
        keep(b, "last")

    for field, label, bucket_of in _BUCKETS:
        left = getattr(policy, field)
        last: str | None = None
        for b in ordered:
            if left == 0:
                break
            bucket = bucket_of(b.taken_at)
            if bucket != last:
                keep(b, f"{label} {bucket}")
                last = bucket
                left -= 1
            elif b is ordered[-1]:
                keep(b, f"oldest ({label} has buckets left)")

    newest_verified = next((b for b in ordered if b.verified), None)
    if newest_verified is not None:
        keep(newest_verified, "newest verified")

    # Close the kept set under "depends on": parents are strictly older, so the chains end.
    for b in ordered:
        if b.id in reasons and b.parent is not None:
            parent = by_id[b.parent]
            keep(parent, f"needed by {b.id}")

    return PrunePlan(
        keep=[b.id for b in ordered if b.id in reasons],
        delete=[b.id for b in ordered if b.id not in reasons],
        reasons=reasons,
    )


def binlogs_not_needed(kept: Sequence[tuple[Optional[str], Optional[str]]],
                       shipped: dict[Optional[str], Sequence[str]]) -> dict[Optional[str], list[str]]:
    """The shipped binary logs no kept backup can roll forward from, per database server.

    `kept` holds each kept backup's (database server id, binary log its snapshot stopped in); `shipped`
    the log names in storage per server id. Point-in-time recovery replays a server's logs from a
    backup's own log onward, on that server only: a server's logs older than the oldest log a kept backup
    of it stopped in are not needed, nor are any logs of a server no kept backup was taken from.
    """
    oldest: dict[Optional[str], str] = {}
    for instance, log in kept:
        if log is not None and (instance not in oldest or log < oldest[instance]):
            oldest[instance] = log
    out: dict[Optional[str], list[str]] = {}
    for instance, names in shipped.items():
        floor = oldest.get(instance)
        gone = sorted(n for n in names if floor is None or n < floor)
        if gone:
            out[instance] = gone
    return out
