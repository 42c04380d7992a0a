"""Test-only flows for tests/server (deployed by tests/server/prefect.yaml, never by the project)."""

from __future__ import annotations

import os

from prefect import flow, task


@task
def _add(a: int, b: int) -> int:
    return a + b


@flow(name="pf-test-add")
def add(a: int = 1, b: int = 2) -> dict:
    """Adds two numbers and says where it ran (proves the set_working_directory pull step)."""
    return {
        "sum": _add(a, b),
        "cwd": os.getcwd(),
        "pressfleet_root": os.environ.get("PRESSFLEET_ROOT"),
    }
