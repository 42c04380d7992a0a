"""A WordPress release archive built offline, for the lab's local mirror.

wordpress.org cannot be reached here, so the lab serves a real release (Debian 12's `wordpress` package, 6.1.x)
repacked as upstream ships it: one `wordpress/` folder in a .tar.gz, with the libraries Debian splits into other
packages (underscore, cropper, getID3) put back in place and Debian's own config loader left out. The product
fetches it by URL and checks its sha256 exactly as it would fetch an official release.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

DEBIAN_PACKAGES = ["wordpress", "libjs-cropper", "libjs-underscore", "php-getid3", "wordpress-theme-twentytwentythree"]
# Debian-only files that are not part of an upstream release.
SKIP = {"wp-config.php", ".htaccess"}
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


class MirrorError(RuntimeError):
    pass


def _download(debs: Path) -> None:
    debs.mkdir(parents=True, exist_ok=True)
    cmd = ["apt-get", "download", *DEBIAN_PACKAGES]
    proc = subprocess.run(cmd, cwd=debs, capture_output=True, text=True)
    if proc.returncode != 0:  # package lists may be missing on a fresh machine
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True)
        proc = subprocess.run(cmd, cwd=debs, capture_output=True, text=True)
    if proc.returncode != 0:
        raise MirrorError(f"could not download Debian's wordpress package: {proc.stderr.strip()[-300:]}")


def _resolve(root: Path, path: Path) -> Path:
    """Follow a symlink inside an unpacked package root (absolute targets are taken relative to the root)."""
    for _ in range(20):
        if not path.is_symlink():
            return path
        target = os.readlink(path)
        if target.startswith("/"):
            if Path(target) == CA_BUNDLE:
                return CA_BUNDLE
            path = root / target.lstrip("/")
        else:
            path = Path(os.path.normpath(path.parent / target))
    raise MirrorError(f"symlink loop at {path}")


def build_release(out_dir: Path) -> tuple[Path, str, str]:
    """Build `wordpress-VERSION.tar.gz` in OUT_DIR; returns (path, sha256, version). Reuses a finished build."""
    out_dir.mkdir(parents=True, exist_ok=True)
    done = sorted(out_dir.glob("wordpress-*.tar.gz"))
    if done and (sha := Path(str(done[-1]) + ".sha256")).exists():
        version = done[-1].name[len("wordpress-"):-len(".tar.gz")]
        return done[-1], sha.read_text().split()[0], version
    with tempfile.TemporaryDirectory(prefix="wpmirror-") as tmp:
        tmpd = Path(tmp)
        _download(tmpd / "debs")
        root = tmpd / "root"
        for deb in (tmpd / "debs").glob("*.deb"):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        wp = root / "usr/share/wordpress"
        m = re.search(r"\$wp_version = '([0-9.]+)'", (wp / "wp-includes/version.php").read_text())
        if not m:
            raise MirrorError("could not read the WordPress version from Debian's package")
        version = m.group(1)
        archive = out_dir / f"wordpress-{version}.tar.gz"
        partial = archive.with_suffix(".partial")
        with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
            for dirpath, dirnames, filenames in os.walk(wp, followlinks=False):
                dirnames.sort()
                rel_dir = Path(dirpath).relative_to(wp)
                for name in sorted(filenames + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]):
                    if rel_dir == Path(".") and name in SKIP:
                        continue
                    src = _resolve(root, Path(dirpath) / name)
                    arc = f"wordpress/{(rel_dir / name).as_posix()}"
                    if src.is_dir():
                        tar.add(src, arcname=arc, recursive=True)
                    elif src.is_file():
                        tar.add(src, arcname=arc, recursive=False)
                    else:
                        raise MirrorError(f"{arc} points at {src}, which the package set does not provide")
        digest = hashlib.sha256(partial.read_bytes()).hexdigest()
        partial.rename(archive)
        Path(str(archive) + ".sha256").write_text(f"{digest}  {archive.name}\n")
        shutil.rmtree(tmpd / "root", ignore_errors=True)
        return archive, digest, version
