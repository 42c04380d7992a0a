"""What every `pressfleet` command shares: one line on stderr and a non-zero exit when it fails."""

from __future__ import annotations

from typing import Callable, NoReturn, TypeVar

import typer

T = TypeVar("T")


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"pressfleet: {message}", err=True)
    raise typer.Exit(code)


def run_or_fail(what: str, call: Callable[[], T]) -> T:
    """call(); any failure becomes `pressfleet: WHAT failed: ...` and exit status 1 (the flow's own log
    above it keeps the details)."""
    try:
        return call()
    except typer.Exit:
        raise
    except Exception as exc:  # noqa: BLE001 - one line for the person, non-zero exit
        fail(f"{what} failed: {exc}")
