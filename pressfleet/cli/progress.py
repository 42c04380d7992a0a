"""Progress in the terminal for long work, as apt and restic show it: items done of how many (hosts, sites,
steps) and, for transfers, bytes and rate. Drawn with rich's progress display on standard error; quiet when
standard error is not a terminal (a pipe, a log file, CI), so nothing but the command's own output is written.

    with progress.tracker(len(hosts), "hosts") as bar:
        for host in hosts:
            apply(host, on_bytes=bar.bytes_callback())   # a transfer's running byte count (optional)
            bar.done(host.name)                            # or bar.done(host.name, ok=False)

`bytes_callback()` gives a `callable(n)` that adds N bytes to the transfer shown (an engine calls it with each
chunk it sends or receives); `done(name)` advances the count and names the last item finished.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from typing import Callable, Iterator

from rich import filesize
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TaskID,
                           TextColumn, TimeElapsedColumn, TransferSpeedColumn)
from rich.text import Text


@dataclass
class Counts:
    """What the display shows, apart from drawing (pure): items done of TOTAL, failures, bytes moved."""

    total: int
    what: str
    done: int = 0
    failed: list[str] = field(default_factory=list)
    last: str = ""
    bytes: int = 0

    def finish(self, name: str, ok: bool = True) -> None:
        self.done = min(self.total, self.done + 1)
        self.last = name
        if not ok:
            self.failed.append(name)

    def add_bytes(self, n: int) -> None:
        if n < 0:
            raise ValueError("a transfer cannot move a negative number of bytes")
        self.bytes += n

    def label(self) -> str:
        """`2/5 hosts (last: web2; 1 failed)`: the line's words, without the bar and the rate."""
        extra = [f"last: {self.last}"] if self.last else []
        if self.failed:
            extra.append(f"{len(self.failed)} failed")
        return f"{self.done}/{self.total} {self.what}" + (f" ({'; '.join(extra)})" if extra else "")


class AmountColumn(ProgressColumn):
    """`3/5` on an items line; bytes so far and the rate on a transfer line (rich's own columns)."""

    def __init__(self) -> None:
        super().__init__()
        self._items, self._rate = MofNCompleteColumn(), TransferSpeedColumn()

    def render(self, task) -> Text:
        if task.fields.get("transfer"):  # no total is known ahead: the bytes so far, as restic shows them
            return Text.assemble(filesize.decimal(int(task.completed)), " ", self._rate.render(task))
        return self._items.render(task)


class Tracker:
    """One line for the items (done of total) and, once bytes flow, one for the transfer (bytes, rate)."""

    def __init__(self, counts: Counts, bar: Progress):
        self.counts = counts
        self._bar = bar
        self._items: TaskID = bar.add_task(counts.label(), total=counts.total)
        self._transfer: TaskID | None = None

    def set_total(self, total: int) -> None:
        """The count becomes known once the work is planned (fleet apply: the hosts with something to do)."""
        self.counts.total = max(0, total)
        self._bar.update(self._items, total=self.counts.total, description=self.counts.label())

    def done(self, name: str, ok: bool = True) -> None:
        self.counts.finish(name, ok)
        self._bar.update(self._items, completed=self.counts.done, description=self.counts.label())

    def bytes_callback(self, label: str = "transferred") -> Callable[[int], None]:
        """A callable(n) adding N bytes to the transfer line (created on first use)."""

        def on_bytes(n: int) -> None:
            self.counts.add_bytes(n)
            if self._transfer is None:
                self._transfer = self._bar.add_task(label, total=None, transfer=True)
            self._bar.update(self._transfer, completed=self.counts.bytes)

        return on_bytes


def console_for(stream=None) -> Console:
    """A console on STREAM (standard error by default); rich decides whether it is a terminal."""
    return Console(file=stream or sys.stderr)


@contextlib.contextmanager
def tracker(total: int, what: str, *, console: Console | None = None) -> Iterator[Tracker]:
    """Show WHAT done of TOTAL (and bytes, when a transfer reports them) while the block runs."""
    console = console or console_for()
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), AmountColumn(), TimeElapsedColumn(),
        console=console, transient=False, disable=not console.is_terminal,
    )
    with bar:
        yield Tracker(Counts(total=total, what=what), bar)


def fleet_apply_events(bar: Tracker) -> Callable[..., None]:
    """A hook for the apply-fleet flow's progress events (flows.apply_fleet.add_progress_hook): the count of hosts
    with something to do once planned, then each host as it finishes (or fails)."""

    def on_event(event: str, host: str | None = None, site: str | None = None, detail=None) -> None:
        if event == "hosts":
            bar.set_total(int(detail or 0))
        elif event in ("host-done", "host-failed"):
            bar.done(host or "?", ok=event == "host-done")

    return on_event
