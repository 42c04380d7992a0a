"""Build pressfleet's WordPress container images: PHP-FPM and nginx, WordPress core inside (a new image
upgrades it), from Debian 12 with podman.

The release comes by URL and is checked against its sha256 before anything is built. The images are tagged
`localhost/pressfleet/wordpress-php:<WordPress version>-<sha256 of all that goes in, 12 hex>` (and -nginx),
one layer each (see deployments/containers/), non-root, with a healthcheck. The artifact lists each image's
size, layers and every Debian package it holds. With `naive`, the same packages are also built the naive way
(one stage, as root, caches left) for comparison. A build that fails leaves the tags as they were.

Where no registry is reachable (here), the base is the lab's Debian 12 debootstrap template imported as an
image and apt goes through the lab's proxy; elsewhere give `base` (e.g. docker.io/library/debian:bookworm-slim)
and an empty `apt_proxy`.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Optional

import httpx
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from pressfleet import validate
from pressfleet.containers import images as img
from pressfleet.containers.podman import Podman, PodmanError
from pressfleet.render.configs import render_container_files


def _release(url: str, sha256: str) -> bytes:
    data = httpx.get(validate.url(url), timeout=300, follow_redirects=False).raise_for_status().content
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise PodmanError(f"{url}: sha256 {got}, not {sha256}: nothing was built")
    return data


def _lab_base(podman: Podman) -> tuple[str, str]:
    """The lab's template as an image (imported once per template id) and the lab's apt proxy."""
    from pressfleet.lab import hosts as lab

    lab.ensure_network()
    tree = lab.ensure_template(log=lambda m: None)
    ref = f"{img.REPO}/debian12:{lab.template_id()}"
    if not podman.exists(ref):
        podman.import_tree(tree, ref)
    return ref, lab.namespace().proxy_url()


def _markdown(r: dict) -> str:
    lines = [f"# pressfleet images: WordPress {r['wordpress_version']}", "",
             "| image | size MB | layers | user | healthcheck | build s |", "|---|---|---|---|---|---|"]
    for b in r["images"]:
        lines.append(f"| `{b['ref']}` | {b['size_mb']} | {b['layers']} | {b['user'] or 'root'} | "
                     f"{'yes' if b['healthcheck'] else 'no'} | {b['seconds']} |")
    for b in r["images"]:
        lines += ["", f"## Packages in {b['ref']} ({len(b['packages'])})", "", "```", *b["packages"], "```"]
    return "\n".join(lines)


@flow(name="build-images")
def build_images(release_url: str, release_sha256: str, base: Optional[str] = None, apt_proxy: Optional[str] = None,
                 naive: bool = False) -> dict:
    """Build the WordPress PHP-FPM and nginx images for the release at RELEASE_URL (checked by RELEASE_SHA256)."""
    log = get_run_logger()
    if not validate.re.fullmatch(r"[0-9a-f]{64}", release_sha256 or ""):
        raise validate.InvalidInput("release_sha256: the release's sha256 (64 hex digits)")
    if apt_proxy:
        validate.url(apt_proxy)
    podman = Podman()
    archive = _release(release_url, release_sha256)
    version = img.wordpress_version(archive)
    files = img.context_files({**render_container_files(), "php-fpm-healthcheck": img.healthcheck_script()})
    content = img.content_sha256(release_sha256, files)
    tag = img.tag(version, content)
    if base is None:
        base, lab_proxy = _lab_base(podman)
        apt_proxy = lab_proxy if apt_proxy is None else apt_proxy
    built = []
    with tempfile.TemporaryDirectory(prefix="pressfleet-image-") as ctx:
        img.write_context(Path(ctx), files, archive)
        wanted = [(name, f"{image}.Containerfile", f"{img.REPO}/{image}:{tag}") for name, image in img.IMAGES.items()]
        if naive:
            wanted.append(("naive", "naive.Containerfile", f"{img.REPO}/wordpress-naive:{tag}"))
        for name, containerfile, ref in wanted:
            seconds = img.build(podman, containerfile, ref, Path(ctx), base=base, apt_proxy=apt_proxy or "",
                                args={"WORDPRESS_VERSION": version, "CONTENT_SHA256": content})
            info = podman.inspect(ref)
            log.info("built %s in %.1f s: %.1f MB, %d layer(s)", ref, seconds, info.size_mb, info.layers)
            built.append({"name": name, "ref": ref, "seconds": seconds, "size_mb": info.size_mb, "layers": info.layers,
                          "user": info.user, "healthcheck": list(info.healthcheck), "id": info.id,
                          "packages": img.packages(podman, ref)})
    result = {"wordpress_version": version, "tag": tag, "content_sha256": content, "base": base, "images": built}
    create_markdown_artifact(_markdown(result), key="pressfleet-images")
    return result
