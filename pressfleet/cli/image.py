"""`pressfleet image build` and `pressfleet image list`: pressfleet's WordPress container images (the build-images
flow, in this process; podman with pressfleet's own image storage under the state folder)."""

from __future__ import annotations

from typing import Optional

import typer

from pressfleet.cli.common import fail as _fail
from pressfleet.cli.common import load_site
from pressfleet.cli.common import run_or_fail as _run

image_app = typer.Typer(help="WordPress container images (podman).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(image_app, name="image")


@image_app.command("build")
def build(site: Optional[str] = typer.Option(None, "--site", help="Build the WordPress release this site's block names."),
          release_url: Optional[str] = typer.Option(None, "--release-url", help="Or a release archive's URL..."),
          sha256: Optional[str] = typer.Option(None, "--sha256", help="...and its sha256."),
          base: Optional[str] = typer.Option(None, "--base", help="A Debian 12 image (default: the lab's template)."),
          apt_proxy: Optional[str] = typer.Option(None, "--apt-proxy", help="An apt proxy URL (default: the lab's)."),
          naive: bool = typer.Option(False, "--naive", help="Also the naive single-stage build, for comparison."),
          ) -> None:
    """Build the PHP-FPM and nginx images with WordPress core inside."""
    from flows.build_images import build_images

    if site:
        block = load_site(site)
        release_url, sha256 = block.release_url, block.release_sha256
    if not release_url or not sha256:
        _fail("give --site SITE, or --release-url URL and --sha256 HEX")
    r = _run("image build", lambda: build_images(release_url=release_url, release_sha256=sha256, base=base,
                                                  apt_proxy=apt_proxy, naive=naive))
    for b in r["images"]:
        typer.echo(f"{b['ref']}  {b['size_mb']} MB, {b['layers']} layer(s), user {b['user'] or 'root'}, "
                   f"{len(b['packages'])} packages, built in {b['seconds']} s")


@image_app.command("list")
def list_images() -> None:
    """pressfleet's images in its image storage: tag, WordPress version, size, layers."""
    from pressfleet.containers.podman import Podman, PodmanError

    try:
        found = Podman().images()
    except PodmanError as exc:
        _fail(str(exc))
    if not found:
        typer.echo("no images yet (pressfleet image build --site SITE)")
    for info in found:
        for ref in info.tags:
            what = f"WordPress {info.labels['io.pressfleet.wordpress.version']}" \
                if "io.pressfleet.wordpress.version" in info.labels else "the base image"
            typer.echo(f"{ref}  {what}, "
                       f"{info.size_mb} MB, {info.layers} layer(s), id {info.id[:12]}")
