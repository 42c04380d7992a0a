"""`pressfleet deploy`, `pressfleet rollback` and `pressfleet releases`: a site's plugin or theme deployed from
its git repository, switched back, and listed (the deploy-site-code and rollback-site-code flows, in this process)."""

from __future__ import annotations

from typing import Optional

import typer

from pressfleet.cli.common import fail as _fail
from pressfleet.cli.common import load_site
from pressfleet.cli.common import run_or_fail as _run
from pressfleet import validate


def _print(r: dict) -> None:
    was = f" (was {r['previous']})" if r.get("previous") else ""
    typer.echo(f"{r['domain']}: {r['kind']} {r['slug']} release {r['release']} is {r['result']}{was}; "
               f"switched in {r['switch_seconds']} s")
    if r.get("pruned"):
        typer.echo(f"  removed old releases: {', '.join(r['pruned'])}")


def _checked(check) -> None:
    """Bad input refused in one sentence before any flow runs."""
    try:
        check()
    except validate.InvalidInput as exc:
        _fail(str(exc))


def register(app: typer.Typer) -> None:
    @app.command("deploy")
    def deploy(site: str = typer.Argument(..., help="The site: its domain, site name or block name."),
               repo: str = typer.Option(..., "--repo", help="git repository: ssh://user@host/path, user@host:path "
                                                            "or an absolute local path."),
               ref: str = typer.Option("main", "--ref", help="Branch, tag or commit."),
               slug: Optional[str] = typer.Option(None, "--slug", help="Folder name under wp-content "
                                                                      "(default: the repository's name)."),
               activate: bool = typer.Option(False, "--activate", help="Activate the plugin or switch to the theme."),
               keep: int = typer.Option(5, "--keep", help="Releases kept on the host."),
               ) -> None:
        """Deploy a plugin or theme from REPO at REF as a new release, switched atomically, rolled back when checks fail."""
        from flows.deploy_site_code import deploy_site_code

        block = load_site(site)
        _checked(lambda: (validate.git_repo(repo), validate.git_ref(ref), slug and validate.component_slug(slug)))
        _print(_run("deploy", lambda: deploy_site_code(site=block.name, repo=repo, ref=ref, slug=slug,
                                                       activate=activate, keep=keep)))

    @app.command("rollback")
    def rollback(site: str = typer.Argument(..., help="The site."),
                 slug: Optional[str] = typer.Option(None, "--slug", help="Which deployed plugin or theme "
                                                                        "(needed when the site has several)."),
                 to: Optional[str] = typer.Option(None, "--to", help="This release (default: the one before)."),
                 ) -> None:
        """Switch a deployed plugin or theme back to its previous release."""
        from flows.deploy_site_code import rollback_site_code
        from pressfleet.deploy.releases import RELEASE_ID

        block = load_site(site)
        _checked(lambda: slug and validate.component_slug(slug))
        if to is not None and not RELEASE_ID.fullmatch(to):
            _fail(f"{to!r} is not a release id such as 20261203T171500Z-0123456789ab (pressfleet releases SITE)")
        _print(_run("rollback", lambda: rollback_site_code(site=block.name, slug=slug, to=to)))

    @app.command("releases")
    def releases(site: str = typer.Argument(..., help="The site.")) -> None:
        """The releases of each plugin and theme deployed to SITE, the live one marked."""
        from pressfleet.backup.targets import server_of
        from tasks import deploy as dep

        block = load_site(site)
        config = block.config()
        try:
            with server_of(block).connect() as conn:
                found = [dep.on_host(conn, config, k, s) for k, s in dep.deployed_components(conn, config)]
        except Exception as exc:  # noqa: BLE001 - one line for the person
            _fail(f"could not read the releases of {config.domain}: {exc}")
        if not found:
            typer.echo(f"{config.domain}: nothing deployed from a repository (pressfleet deploy SITE --repo URL)")
        for host in found:
            typer.echo(f"{host.kind} {host.slug}:")
            for r in host.releases:
                typer.echo(f"  {'*' if r == host.current else ' '} {r}")
