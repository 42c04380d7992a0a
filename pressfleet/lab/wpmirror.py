"""A WordPress release archive built offline, for the lab's local mirror.

wordpress.org cannot be reached here, so the lab serves a real release (Debian 12's `wordpress` package, 6.1.x)
repacked as upstream ships it: one `wordpress/` folder in a .tar.gz, with the libraries Debian splits into other
packages (underscore, cropper, getID3) put back in place and Debian's own config loader left out. The product
fetches it by URL and checks its sha256 exactly as it would fetch an official release.

`build_release(out_dir, suite="trixie")` repacks Debian 13's package (WordPress 6.8.x) the same way, through a
private apt state folder (this machine's own apt lists stay Debian 12's): a second real release, for core updates.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

DEBIAN_PACKAGES = ["wordpress", "libjs-cropper", "libjs-underscore", "php-getid3", "wordpress-theme-twentytwentythree"]
# Per Debian release: the packages whose files make up one upstream WordPress release (its default theme included).
SUITE_PACKAGES = {
    "bookworm": DEBIAN_PACKAGES,
    "trixie": ["wordpress", "libjs-cropper", "libjs-underscore", "libjs-lodash", "php-getid3",
               "wordpress-theme-twentytwentyfive"],
}
# Per Debian release: the packages whose wp-content/plugins and wp-content/themes become the catalogue's plugin
# and theme releases (zips as wordpress.org ships them: one SLUG/ folder).
COMPONENT_PACKAGES = {
    "bookworm": ["wordpress", "wordpress-theme-twentytwentythree"],
    "trixie": ["wordpress", "wordpress-theme-twentytwentythree", "wordpress-theme-twentytwentyfour",
               "wordpress-theme-twentytwentyfive"],
}
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# Debian-only files that are not part of an upstream release.
SKIP = {"wp-config.php", ".htaccess"}
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


class MirrorError(RuntimeError):
    pass


def _apt(args: list[str], cwd: Path, apt_dir: Path | None) -> subprocess.CompletedProcess:
    """apt-get, with this machine's own lists, or (APT_DIR) a private sources list and state folder."""
    opts: list[str] = []
    if apt_dir is not None:
        opts = ["-o", f"Dir::Etc::SourceList={apt_dir}/sources.list", "-o", "Dir::Etc::SourceParts=/dev/null",
                "-o", f"Dir::State::Lists={apt_dir}/lists", "-o", f"Dir::Cache={apt_dir}/cache",
                "-o", "Dir::State::status=/dev/null"]
    return subprocess.run(["apt-get", *opts, *args], cwd=cwd, capture_output=True, text=True)


def _private_apt(suite: str, root: Path) -> Path:
    """A private apt folder that knows SUITE from the same Debian mirror this machine uses."""
    from pressfleet.lab.hosts import _debian_mirror

    apt_dir = root / f"apt-{suite}"
    for sub in ("lists/partial", "cache/archives/partial"):
        (apt_dir / sub).mkdir(parents=True, exist_ok=True)
    (apt_dir / "sources.list").write_text(f"deb [signed-by={KEYRING}] {_debian_mirror()} {suite} main\n")
    return apt_dir


def _download(debs: Path, suite: str = "bookworm", apt_dir: Path | None = None,
              packages: list[str] | None = None) -> None:
    debs.mkdir(parents=True, exist_ok=True)
    args = ["download", *(packages or SUITE_PACKAGES[suite])]
    proc = _apt(args, debs, apt_dir)
    if proc.returncode != 0:  # package lists may be missing on a fresh machine
        _apt(["update", "-q"], debs, apt_dir)
        proc = _apt(args, debs, apt_dir)
    if proc.returncode != 0:
        raise MirrorError(f"could not download Debian {suite}'s wordpress package: {proc.stderr.strip()[-300:]}")


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


def build_release(out_dir: Path, suite: str = "bookworm") -> tuple[Path, str, str]:
    """Build `wordpress-VERSION.tar.gz` in OUT_DIR from Debian SUITE's package; returns (path, sha256, version).

    Reuses a finished build of that suite (recorded in `release-SUITE.txt`, so two releases share one folder)."""
    if suite not in SUITE_PACKAGES:
        raise MirrorError(f"no WordPress package set for Debian {suite!r}: choose from {', '.join(SUITE_PACKAGES)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    record = out_dir / f"release-{suite}.txt"
    named = [record.read_text().strip()] if record.exists() else []
    if not named and suite == "bookworm":  # a build from before the record existed: any archive no suite claims
        claimed = {p.read_text().strip() for p in out_dir.glob("release-*.txt")}
        named = [p.name for p in sorted(out_dir.glob("wordpress-*.tar.gz")) if p.name not in claimed][-1:]
    for name in named:
        done = out_dir / name
        if done.exists() and (sha := Path(str(done) + ".sha256")).exists():
            record.write_text(name + "\n")
            return done, sha.read_text().split()[0], name[len("wordpress-"):-len(".tar.gz")]
    with tempfile.TemporaryDirectory(prefix="wpmirror-") as tmp:
        tmpd = Path(tmp)
        _download(tmpd / "debs", suite, None if suite == "bookworm" else _private_apt(suite, out_dir.parent))
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
        record.write_text(archive.name + "\n")  # first, so no other suite's fallback takes this archive
        partial.rename(archive)
        Path(str(archive) + ".sha256").write_text(f"{digest}  {archive.name}\n")
        shutil.rmtree(tmpd / "root", ignore_errors=True)
        return archive, digest, version


_HEADER_VERSION = re.compile(rb"^[ \t/*#@]*Version:[ \t]*([0-9][0-9A-Za-z.-]*)", re.M)


def _component_version(folder: Path, kind: str) -> str | None:
    """A plugin's version from its main file's header, a theme's from style.css (as WordPress reads them)."""
    files = [folder / "style.css"] if kind == "theme" else sorted(folder.glob("*.php"))
    for f in files:
        m = _HEADER_VERSION.search(f.read_bytes()[:8192]) if f.is_file() else None
        if m:
            return m.group(1).decode()
    return None


def _zip_folder(root: Path, folder: Path, slug: str, out: Path) -> None:
    """SLUG/... into OUT with fixed timestamps and sorted names, so the same release always has one sha256."""
    import zipfile

    partial = out.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
            dirnames.sort()
            for name in sorted(filenames + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]):
                src = _resolve(root, Path(dirpath) / name)
                arc = f"{slug}/{(Path(dirpath) / name).relative_to(folder).as_posix()}"
                paths = [(src, arc)] if src.is_file() else [
                    (p, f"{arc}/{p.relative_to(src).as_posix()}") for p in sorted(src.rglob("*")) if p.is_file()]
                for path, name_in_zip in paths:
                    info = zipfile.ZipInfo(name_in_zip, date_time=(2020, 1, 1, 0, 0, 0))
                    info.external_attr = 0o644 << 16
                    info.compress_type = zipfile.ZIP_DEFLATED
                    zf.writestr(info, path.read_bytes())
    partial.rename(out)


def build_components(out_dir: Path) -> list[dict]:
    """The real releases the lab's catalogue lists: both WordPress releases (Debian 12's and 13's) and the plugins
    and themes their packages ship (akismet, the twenty* themes), each a zip under `components/` as
    wordpress.org ships them. Returns entries with `path` (relative to OUT_DIR) where a catalogue has `url`.
    Built once; the index `components.json` is reused while every archive it names is present."""
    index = out_dir / "components.json"
    if index.exists():
        try:
            entries = json.loads(index.read_text())
            if entries and all((out_dir / e["path"]).exists() for e in entries):
                return entries
        except (ValueError, KeyError, TypeError):
            pass
    entries: list[dict] = []
    components = out_dir / "components"
    components.mkdir(parents=True, exist_ok=True)
    for suite in ("bookworm", "trixie"):
        archive, sha256, version = build_release(out_dir, suite)
        entries.append({"kind": "core", "slug": "wordpress", "version": version, "path": archive.name,
                        "sha256": sha256})
        with tempfile.TemporaryDirectory(prefix="wpcomponents-") as tmp:
            tmpd = Path(tmp)
            _download(tmpd / "debs", suite, None if suite == "bookworm" else _private_apt(suite, out_dir.parent),
                      COMPONENT_PACKAGES[suite])
            root = tmpd / "root"
            for deb in sorted((tmpd / "debs").glob("*.deb")):
                subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
            content = root / "usr/share/wordpress/wp-content"
            for kind, sub in (("plugin", "plugins"), ("theme", "themes")):
                for entry in sorted((content / sub).iterdir()):
                    folder = _resolve(root, entry)
                    version = _component_version(folder, kind) if folder.is_dir() else None
                    if not version:
                        continue
                    out = components / f"{entry.name}.{version}.zip"
                    if not out.exists():
                        _zip_folder(root, folder, entry.name, out)
                    entries.append({"kind": kind, "slug": entry.name, "version": version,
                                    "path": f"components/{out.name}",
                                    "sha256": hashlib.sha256(out.read_bytes()).hexdigest()})
    unique = list({(e["kind"], e["slug"], e["version"]): e for e in entries}.values())
    partial = index.with_suffix(".partial")
    partial.write_text(json.dumps(unique, indent=2) + "\n")
    partial.rename(index)
    return unique
