"""`pressfleet bulk OPERATION --select ...`: one operation over many sites, from a terminal (the bulk flow)."""

from __future__ import annotations

from typing import List, Optional

import typer

from pressfleet.cli.common import fail as _fail
from pressfleet.cli.common import run_or_fail as _run


def register(app: typer.Typer) -> None:
    @app.command("bulk")
    def bulk_cmd(
        operation: str = typer.Argument(..., help="backup, restore-test, reprovision, purge-cache, rotate-secrets, set or admin-user."),
        select: List[str] = typer.Option([], "--select", help="Sites: names or domains, tag:T, server:S, template:T, all."),
        setting: Optional[str] = typer.Option(None, "--setting", help="For set: wp:OPTION=VALUE."),
        login: Optional[str] = typer.Option(None, "--login", help="For admin-user: the administrator's login."),
        email: Optional[str] = typer.Option(None, "--email", help="For admin-user: their e-mail (to add them)."),
        remove: bool = typer.Option(False, "--remove", help="For admin-user: remove them instead."),
        storage: Optional[str] = typer.Option(None, "--storage", help="Storage block (default local-backups)."),
    ) -> None:
        """Run one operation on every selected site; one line per site, non-zero exit when any failed."""
        from typing import get_args

        from flows.bulk import AdminUser, Operation, bulk
        from pressfleet.validate import InvalidInput

        if operation not in get_args(Operation):
            _fail(f"unknown operation {operation!r}: choose from {', '.join(get_args(Operation))}")
        if not select:
            _fail("--select the sites: names or domains, tag:T, server:S, template:T or all")
        admin = None
        if operation == "admin-user":
            try:
                admin = AdminUser(action="remove" if remove else "add", login=login or "", email=email)
            except ValueError as exc:
                _fail(f"admin-user: {str(exc).splitlines()[0]} ({str(exc).splitlines()[-1].strip()})")
        store = None
        if storage:
            from pressfleet.cli.backup import _storage

            store = _storage(storage)
        try:
            from pressfleet.fleet.selection import select_saved

            chosen = select_saved(select)
        except InvalidInput as exc:
            _fail(str(exc))
        rows = _run(f"bulk {operation}", lambda: bulk(operation=operation, sites=chosen, setting=setting, admin=admin,
                                                      storage=store))
        for r in rows:
            typer.echo(f"{r['domain']}: {r['state']}: {r['detail']} ({r['seconds']} s)")
