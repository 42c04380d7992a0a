"""`pressfleet updates` and `pressfleet update`: what is out of date, and safe updates in waves, from a terminal.

Sites are named as everywhere (domain, site name or block name), or picked with `--tag`, `--server`,
`--template` or `--all`. Both commands run the same flows as the deployments (check-updates, update-sites) in
this process, and exit non-zero when they fail.
"""

from __future__ import annotations

from typing import List, Optional

import typer

from pressfleet.cli.common import fail as _fail
from pressfleet.cli.common import load_block
from pressfleet.cli.common import run_or_fail as _run


def _selectors(sites: list[str], tag: list[str], server: list[str], template: list[str], all_: bool) -> list[str]:
    return [*sites, *(f"tag:{t}" for t in tag), *(f"server:{s}" for s in server),
            *(f"template:{t}" for t in template), *(["all"] if all_ else [])]


def _chosen(selectors: list[str]):
    from pressfleet.fleet.selection import select_saved
    from pressfleet.validate import InvalidInput

    try:
        return select_saved(selectors or ["all"])
    except InvalidInput as exc:
        _fail(str(exc))


def _catalog(name: Optional[str]):
    from blocks.catalog import ReleaseCatalog

    return load_block(ReleaseCatalog, name, "Release Catalog")


def register(app: typer.Typer) -> None:
    @app.command("updates")
    def updates_cmd(
        sites: List[str] = typer.Argument(None, help="Sites (domain, site name or block name); none: every site."),
        tag: List[str] = typer.Option([], "--tag", help="Sites with this tag."),
        server: List[str] = typer.Option([], "--server", help="Sites on this Server block (name or address)."),
        catalog: Optional[str] = typer.Option(None, "--catalog", help="Release Catalog block (default pressfleet-catalog)."),
    ) -> None:
        """List per site what is out of date against the release catalogue (changes nothing)."""
        from flows.check_updates import check_updates
        from pressfleet.updates.catalog import CatalogError

        chosen = _chosen(_selectors(sites or [], tag, server, [], False))
        try:
            rows = _run("check-updates", lambda: check_updates(sites=chosen, catalog=_catalog(catalog)))
        except CatalogError as exc:
            _fail(str(exc))
        width = max(len(r["domain"]) for r in rows)
        for r in rows:
            what = r["error"] and f"not checked: {r['error']}" or "; ".join(r["pending"]) or "up to date"
            typer.echo(f"{r['domain']:<{width}}  WordPress {r['core'] or '?':<8} {what}")

    @app.command("status")
    def status_cmd(
        storage: Optional[str] = typer.Option(None, "--storage", help="Storage block of the backups (default local-backups)."),
    ) -> None:
        """The fleet overview in the terminal: every site, its version, updates, backups, TLS, uptime, disk."""
        from flows.fleet_overview import fleet_overview

        store = None
        if storage:
            from pressfleet.cli.backup import _storage

            store = _storage(storage)
        result = _run("fleet-overview", lambda: fleet_overview(storage=store))
        typer.echo(result["text"])
        typer.echo(f"\npage: {result['path']}")

    @app.command("update")
    def update_cmd(
        sites: List[str] = typer.Argument(None, help="Sites (domain, site name or block name)."),
        tag: List[str] = typer.Option([], "--tag", help="Sites with this tag."),
        server: List[str] = typer.Option([], "--server", help="Sites on this Server block (name or address)."),
        template: List[str] = typer.Option([], "--template", help="Sites made from this site template."),
        all_: bool = typer.Option(False, "--all", help="Every saved site."),
        core: bool = typer.Option(False, "--core", help="Update core (with none of --core/--plugins/--themes: all three)."),
        plugins: bool = typer.Option(False, "--plugins", help="Update plugins."),
        themes: bool = typer.Option(False, "--themes", help="Update themes."),
        waves: str = typer.Option("1,25%,100%", "--waves", help="Each wave's cumulative reach: counts or shares."),
        approve: bool = typer.Option(False, "--approve", help="Pause after each wave for a person's continue or stop in the UI."),
        catalog: Optional[str] = typer.Option(None, "--catalog", help="Release Catalog block (default pressfleet-catalog)."),
        scratch: Optional[str] = typer.Option(None, "--scratch", help="Server block for restore-tests (default: a fresh lab host)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="List what would be updated; change nothing."),
    ) -> None:
        """Update sites safely, in waves: a proven backup first, checks before and after, rollback on a regression."""
        from pressfleet.updates.catalog import CatalogError
        from pressfleet.updates.plan import plan_waves

        selectors = _selectors(sites or [], tag, server, template, all_)
        if not selectors:
            _fail("name the sites to update, or use --tag, --server, --template or --all")
        chosen = _chosen(selectors)
        components = [c for c, on in (("core", core), ("plugins", plugins), ("themes", themes)) if on] or \
            ["core", "plugins", "themes"]
        try:
            plan_waves([s.name for s in chosen], waves)
        except CatalogError as exc:
            _fail(str(exc))
        from blocks.server import Server

        scratch_block = load_block(Server, scratch, "Server")
        if dry_run:
            from flows.update_sites import update_site

            for s in chosen:
                row = _run("update-site", lambda s=s: update_site(site=s, components=components,
                                                                  catalog=_catalog(catalog), dry_run=True))
                typer.echo(f"{s.domain}: " + ("; ".join(row["updates"]) or "up to date") + " (dry run)")
            return
        from flows.update_sites import update_sites

        result = _run("update-sites", lambda: update_sites(
            sites=chosen, components=components, waves=waves, approve_waves=approve, catalog=_catalog(catalog),
            scratch=scratch_block, deployment=None))
        for r in result.get("sites", []):
            typer.echo(f"wave {r['wave']}: {r['site']}: {r['state']}" + (f" ({'; '.join(r['updates'])})" if r.get("updates") else ""))
