"""Which shipped binary logs roll a backup forward to a point in time, and whether they reach it (pure).

MariaDB numbers its binary logs (`mariadb-bin.000041`, `.000042`...); a log holds every event from its
creation until the next one is created. To roll backup B forward to time T, every log from B's own
(`binlog_file`) on must be there without a gap until the first log created at or after T (whose
predecessor then holds every event before T), or, when storage holds no such log, the last one must
hold an event at or after T (it was closed after T). Anything short of that is refused, naming the
missing log or how far the shipped logs reach: a roll-forward never stops short silently.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Iterable, Optional

from pressfleet.validate import InvalidInput

LOG_NAME = re.compile(r"^([A-Za-z0-9_.-]{1,200})\.(\d{1,10})$")


class ChainBroken(InvalidInput):
    """The shipped binary logs cannot roll the backup forward to the time asked for."""


def sequence(name: str) -> tuple[str, int]:
    """(basename, number) of a binary log's name; refuses anything else."""
    found = LOG_NAME.match(name or "")
    if not found:
        raise InvalidInput(f"{str(name)[:80]!r} is not a binary log name (like mariadb-bin.000042)")
    return found.group(1), int(found.group(2))


def log_name(base: str, number: int, like: str) -> str:
    """The name of log NUMBER with the zero padding of LIKE."""
    width = len(like.rsplit(".", 1)[1])
    return f"{base}.{number:0{width}d}"


def consecutive(start: str, shipped: Iterable[str]) -> tuple[list[str], Optional[str]]:
    """The logs from START on with no gap, and the name of the first missing one when storage holds
    logs after it (None: the run ends at the newest shipped log). Raises when START itself is missing."""
    base, first = sequence(start)
    numbers = {}
    for name in shipped:
        try:
            b, n = sequence(name)
        except InvalidInput:
            continue
        if b == base:
            numbers[n] = name
    if first not in numbers:
        raise ChainBroken(f"binary log {start} (where the backup's snapshot is) has not been shipped to storage: "
                          "run ship-binlogs first")
    run, n = [], first
    while n in numbers:
        run.append(numbers[n])
        n += 1
    later = [k for k in numbers if k > n]
    return run, (log_name(base, n, start) if later else None)


def stop_after(created: datetime, until: datetime) -> bool:
    """Whether a log created at CREATED (its first event) ends the replay: every event before UNTIL is in
    the logs before it (mariadb-binlog --stop-datetime stops at the first event at or after UNTIL)."""
    return created >= until


def refusal(until: datetime, last: str, last_event: Optional[datetime], missing: Optional[str]) -> Optional[str]:
    """None when the last log staged (LAST, whose newest event is LAST_EVENT) reaches UNTIL; else the
    sentence that says why the roll-forward cannot be done."""
    if last_event is not None and last_event >= until:
        return None
    reach = f"{last_event.isoformat()} ({last})" if last_event else f"an unknown time ({last} holds no dated event)"
    if missing:
        return (f"binary log {missing} is missing from storage (logs after it are there): the shipped logs reach "
                f"only {reach}, not {until.isoformat()}; nothing was changed")
    return (f"the shipped binary logs reach only {reach}, not {until.isoformat()}: run ship-binlogs on the site's "
            "server (its newest events are in its open log) and try again; nothing was changed")
