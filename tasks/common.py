"""What every provisioning task shares: one pinned-key connection per task, timing, and scripts."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

from fabric import Connection

from pressfleet.ssh.converge import StepResult
from pressfleet.paths import TEMPLATES


@contextlib.contextmanager
def connected(server) -> Iterator[Connection]:
    """An SSH connection to SERVER (a Server block) that trusts only its pinned host key."""
    conn = server.connect()
    try:
        yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def step(name: str) -> Iterator[StepResult]:
    """Time a step; the body appends what it changed to result.changed."""
    result = StepResult(name=name)
    started = time.monotonic()
    try:
        yield result
    finally:
        result.seconds = round(time.monotonic() - started, 2)


def script(name: str) -> str:
    """A remote script shipped in pressfleet/templates/scripts (constant text; arguments travel quoted)."""
    return (TEMPLATES / "scripts" / name).read_text()


def wordpress_file(name: str) -> bytes:
    """A PHP file pressfleet ships to WordPress hosts (mu-plugin, drop-in, bootstrap)."""
    return (TEMPLATES / "wordpress" / name).read_bytes()
