"""pressfleet's WordPress images: the build context (Containerfiles, rendered configuration, the verified
release), their tags (the WordPress version and a sha256 of everything that goes in), the build itself and
what each image holds (its Debian packages)."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pressfleet.containers.podman import ImageInfo, Podman, PodmanError
from pressfleet.paths import ROOT

CONTAINERS = ROOT / "deployments" / "containers"
IMAGES = {"php": "wordpress-php", "nginx": "wordpress-nginx"}
REPO = "localhost/pressfleet"
_VERSION = re.compile(rb"\$wp_version\s*=\s*'([0-9][0-9A-Za-z.-]*)'")


# How each image runs: a read-only root (podman then mounts tmpfs on /tmp, /var/tmp and /run; everything either
# image writes is in /tmp: podman's own --tmpfs over an image folder comes up root's 755, which the image's user
# cannot write), no healthcheck timer (podman's needs systemd; `podman healthcheck run` still runs it).
RUN_OPTIONS = {
    "php": ["--read-only", "--health-interval", "disable"],
    "nginx": ["--read-only", "--health-interval", "disable"],
}


@dataclass
class Built:
    name: str
    ref: str
    seconds: float
    info: ImageInfo
    packages: list[str] = field(default_factory=list)


def wordpress_version(archive: bytes) -> str:
    """The version a WordPress release archive holds (wordpress/wp-includes/version.php)."""
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        member = tar.extractfile("wordpress/wp-includes/version.php")
        found = _VERSION.search(member.read() if member else b"")
    if not found:
        raise PodmanError("the release archive has no wordpress/wp-includes/version.php with a $wp_version")
    return found.group(1).decode()


def context_files(files: dict[str, str]) -> dict[str, bytes]:
    """Everything a build reads but the release: the Containerfiles, package lists and rendered files."""
    out = {p.name: p.read_bytes() for p in sorted(CONTAINERS.iterdir()) if p.is_file()}
    out.update({f"files/{name}": text.encode() for name, text in files.items()})
    return out


def content_sha256(release_sha256: str, files: dict[str, bytes]) -> str:
    """A sha256 of what goes into the images: the release's sha256 and every context file (name and bytes)."""
    h = hashlib.sha256(release_sha256.encode())
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()


def tag(version: str, content: str) -> str:
    return f"{version}-{content[:12]}"


def healthcheck_script() -> str:
    # php-fpm answers on its port (one line of PHP: the image has no cgi-fcgi)
    return "#!/bin/sh\nexec php -r 'exit(@fsockopen(\"127.0.0.1\", 9000, $e, $s, 2) ? 0 : 1);'\n"


def write_context(folder: Path, files: dict[str, bytes], archive: bytes) -> None:
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (folder / "wordpress.tar.gz").write_bytes(archive)


def build(podman: Podman, containerfile: str, ref: str, context: Path, *, base: str, apt_proxy: str,
          args: dict[str, str]) -> float:
    """One image built (layers cached); returns the seconds it took. A failed build leaves REF as it was."""
    build_args = [x for k, v in {"BASE": base, "APT_PROXY": apt_proxy, **args}.items() for x in ("--build-arg", f"{k}={v}")]
    started = time.monotonic()
    # --network host: the RUN steps reach the lab's apt proxy on the lab bridge (podman's own network would
    # switch IP forwarding on); --format docker keeps HEALTHCHECK
    podman.run("build", "--format", "docker", "--network", "host", "--layers", *build_args,
               "-f", str(context / containerfile), "-t", ref, str(context), timeout=3600)
    return round(time.monotonic() - started, 2)


def packages(podman: Podman, ref: str) -> list[str]:
    """`package version` of every Debian package the image holds (dpkg's own list, read in a container
    with no network and a read-only root)."""
    out = podman.run("run", "--rm", "--network", "none", "--read-only", "--no-healthcheck", "--entrypoint", "dpkg-query", ref,
                     "-W", "-f", "${Package} ${Version}\n").stdout
    return sorted(ln for ln in out.splitlines() if ln.strip())


def clean_context(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
