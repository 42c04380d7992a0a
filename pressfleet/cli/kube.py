"""`pressfleet kube render SITE`: the site's Kubernetes manifests (Kustomize) written from its block, built and
checked against the Kubernetes schemas and pressfleet's rules before they are reported as written."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pressfleet.cli.common import fail as _fail
from pressfleet.cli.common import load_site

kube_app = typer.Typer(help="Kubernetes manifests of a site (Kustomize).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(kube_app, name="kube")


@kube_app.command("render")
def render_cmd(site: str = typer.Argument(..., help="The site: its domain, site name or block name."),
               out: Path = typer.Option(..., "--out", help="Folder to write (base, overlays and site/)."),
               env: str = typer.Option("production", "--env", help="staging or production."),
               tag: str = typer.Option(None, "--tag", help="Image tag (default: the WordPress version of the block's release)."),
               registry: Optional[str] = typer.Option(None, "--registry", help="Registry prefix, e.g. registry.example.com/team."),
               external_db: Optional[str] = typer.Option(None, "--external-db", help="A managed database's IPv4 address."),
               ) -> None:
    """Write SITE's manifests; `kubectl apply -k OUT/site` applies them (create the secrets it names first)."""
    import re

    from pressfleet.kube import check, render
    from pressfleet.validate import InvalidInput

    block = load_site(site)
    config = block.config()
    if tag is None:
        found = re.search(r"wordpress[-_]?(\d+\.\d+(?:\.\d+)?)", getattr(block, "release_url", "") or "")
        tag = found.group(1) if found else "latest"
    try:
        options = render.KubeOptions(environment=env, image_tag=tag, registry=registry, external_db=external_db)
        files = render.files(config, options)
    except InvalidInput as exc:
        _fail(str(exc))
    render.write(out, files)
    try:
        objects = check.check(out / "site")
    except check.ManifestError as exc:
        _fail(str(exc))
    kinds = sorted({o["kind"] for o in objects})
    typer.echo(f"{config.domain}: {len(objects)} objects in namespace pressfleet-{render.dns_name(config.name)} "
               f"({', '.join(kinds)}), valid for Kubernetes {check.KUBERNETES_VERSION}")
    typer.echo(f"  kubectl apply -k {out / 'site'}   (after creating the secrets wordpress-secrets and wordpress-tls)")
