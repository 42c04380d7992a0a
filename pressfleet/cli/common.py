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


def load_site(text: str):
    """The saved WordPressSite that TEXT names: a domain (or alias), a site name or a block name; one clear
    line and exit 1 when none does. Every command that takes a SITE resolves it here."""
    from blocks.site import WordPressSite
    from pressfleet.fleet import sites
    from pressfleet.validate import InvalidInput

    try:
        block = sites.resolve_site_block(text, sites.saved_sites())
    except InvalidInput as exc:
        fail(str(exc))
    try:
        return WordPressSite.load(block)
    except ValueError as exc:  # a block saved with values that are no longer valid
        fail(f"site block {block!r} cannot be loaded: {str(exc).splitlines()[0]}")


def load_block(cls, name: str | None, what: str):
    """The saved block NAME of CLS (None when no name was given); a name nothing is saved under fails in one
    sentence naming WHAT kind of block it should be."""
    if not name:
        return None
    try:
        return cls.load(name)
    except ValueError:
        fail(f"no {what} block {name!r}")
