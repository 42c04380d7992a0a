"""Fixtures for tests that run a real Prefect stack (server + work pool + deployments + worker).

The test stack is separate from the demo stack: its own PREFECT_HOME and run dir under a temporary
folder and its own free port, so it never touches `.state/` or port 4200. It is stopped by PID at
the end of the session, and the teardown checks that none of its processes survived.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from pressfleet.stack import control as stack
from pressfleet.paths import ROOT
from tests.pg import free_port, pid_alive  # noqa: F401 - shared with the tests here

HERE = Path(__file__).resolve().parent
TEST_PREFECT_FILE = HERE / "prefect.yaml"


def make_config(base: Path, **overrides) -> stack.StackConfig:
    """A StackConfig entirely under `base`, on a free port, on SQLite unless told otherwise."""
    kwargs = dict(
        home=base / "prefect-home",
        run_dir=base / "stack",
        port=free_port(),
        database_url=None,
        prefect_file=TEST_PREFECT_FILE,
    )
    kwargs.update(overrides)
    return stack.StackConfig(**kwargs)


@contextlib.contextmanager
def api_settings(cfg: stack.StackConfig, home: Path):
    """Point this (pytest) process's Prefect client at the stack, with a client home of its own."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    home.mkdir(parents=True, exist_ok=True)
    _restart_events_workers()
    try:
        with temporary_settings(updates={PREFECT_API_URL: cfg.api_url, PREFECT_HOME: str(home)}):
            yield
    finally:
        _restart_events_workers()


def _restart_events_workers() -> None:
    """Prefect keeps one events worker per client type, whatever the API URL: one made while the lab tier's
    harness was the API would send this stack's events there. Drained and stopped, the next is made anew."""
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=10)


@dataclass
class RunningStack:
    cfg: stack.StackConfig
    status: stack.StackStatus
    up_seconds: float
    client_home: Path


@pytest.fixture(scope="session")
def prefect_stack(tmp_path_factory) -> RunningStack:
    base = tmp_path_factory.mktemp("prefect-stack")
    cfg = make_config(base)
    t0 = time.monotonic()
    try:
        st = stack.up(cfg, log=lambda m: print(f"[test stack] {m}"))
    except BaseException:
        stack.down(cfg)
        raise
    running = RunningStack(cfg, st, time.monotonic() - t0, base / "client-home")
    print(f"[test stack] up in {running.up_seconds:.1f} s at {cfg.ui_url}")
    yield running
    pids = [p for p in stack.status(cfg).pids.values() if p]
    stack.down(cfg)
    survivors = [p for p in pids if pid_alive(p)]
    assert not survivors, f"test stack processes still alive after down(): {survivors}"


@pytest.fixture
def prefect_api(prefect_stack):
    """The running test stack, with this process's Prefect client pointed at it."""
    with api_settings(prefect_stack.cfg, prefect_stack.client_home):
        yield prefect_stack


__all__ = ["ROOT", "free_port", "pid_alive", "make_config", "api_settings"]
