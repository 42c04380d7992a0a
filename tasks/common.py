"""What every provisioning task shares: the run's SSH connection to each host, timing, and scripts.

A flow run opens `run_connections()` once: every task of the run then shares one pinned-key connection per
host (`connected`), opened on first use and opened again only when it has dropped; the run closes them at its
end. Outside such a block (a task run on its own) `connected` opens a connection for the task and closes it.
`connected(server, fresh=True)` is always a brand-new login (the ssh step's proof that a fresh login works).
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from typing import Callable, Iterator

from fabric import Connection

from pressfleet.ssh import converge
from pressfleet.ssh.converge import StepResult
from pressfleet.paths import TEMPLATES


class _RunConnections:
    """The open connection of each host for one flow run."""

    def __init__(self) -> None:
        self.conns: dict[tuple[str, int, str], Connection] = {}
        self.lock = threading.Lock()

    def get(self, server) -> Connection:
        key = (server.address, server.port, server.user)
        with self.lock:
            conn = self.conns.get(key)
            if conn is None or not conn.is_connected:  # first use, or the connection dropped: log in again
                if conn is not None:
                    conn.close()
                conn = self.conns[key] = server.connect()
            return conn

    def close(self) -> None:
        with self.lock:
            for conn in self.conns.values():
                conn.close()
            self.conns.clear()


_RUN: contextvars.ContextVar[_RunConnections | None] = contextvars.ContextVar("pressfleet_run_connections", default=None)


@contextlib.contextmanager
def run_connections() -> Iterator[None]:
    """Within this block tasks share one SSH connection per host (closed at its end)."""
    pool = _RunConnections()
    token = _RUN.set(pool)
    try:
        yield
    finally:
        _RUN.reset(token)
        pool.close()


@contextlib.contextmanager
def connected(server, *, fresh: bool = False) -> Iterator[Connection]:
    """An SSH connection to SERVER (a Server block) that trusts only its pinned host key: the run's shared one
    inside `run_connections()` (unless FRESH), else one of the task's own, closed afterwards."""
    pool = _RUN.get()
    if pool is not None and not fresh:
        yield pool.get(server)
        return
    conn = server.connect()
    try:
        yield conn
    finally:
        conn.close()


_STEP_DONE: contextvars.ContextVar[Callable[[StepResult], None] | None] = contextvars.ContextVar(
    "pressfleet_step_done", default=None)


@contextlib.contextmanager
def on_step_done(callback: Callable[[StepResult], None]) -> Iterator[None]:
    """Within this block CALLBACK hears of every step that ends (a terminal's progress display, say)."""
    token = _STEP_DONE.set(callback)
    try:
        yield
    finally:
        _STEP_DONE.reset(token)


@contextlib.contextmanager
def step(name: str) -> Iterator[StepResult]:
    """Time a step; the body appends what it changed to result.changed. In a dry run (converge.dry_run) the
    step also takes what it would have done: file diffs, packages, service actions, skipped scripts."""
    result = StepResult(name=name)
    started = time.monotonic()
    try:
        yield result
    finally:
        result.seconds = round(time.monotonic() - started, 2)
        dry = converge.current_dry_run()
        if dry is not None:
            taken = dry.take()
            result.diffs += [d for d in taken.diffs if d["diff"]]
            result.packages += taken.packages
            result.actions += taken.actions
            result.notes += list(dict.fromkeys(taken.skipped))
        listener = _STEP_DONE.get()
        if listener is not None:
            listener(result)


def script(name: str) -> str:
    """A remote script shipped in pressfleet/templates/scripts (constant text; arguments travel quoted)."""
    return (TEMPLATES / "scripts" / name).read_text()


def wordpress_file(name: str) -> bytes:
    """A PHP file pressfleet ships to WordPress hosts (mu-plugin, drop-in, bootstrap)."""
    return (TEMPLATES / "wordpress" / name).read_bytes()
