"""Site code on the control side: a plugin's or theme's git repository fetched at a ref, its tree checked
(no link out of it, no submodule), exported, and built (Composer, when it has a composer.json), ready to upload.

Runs on the machine that runs the flow (the worker), never on the site's host: the host receives a finished
tree and no credential to the repository.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from pressfleet.deploy.releases import ReleaseError
from pressfleet.validate import component_slug, git_ref, git_repo

_HEADER = re.compile(r"^[ \t/*#@]*(?P<key>Theme Name|Plugin Name|Version):[ \t]*(?P<value>[^\r\n]*?)[ \t]*(?:\*/)?$", re.M)


@dataclass(frozen=True)
class Built:
    """A release ready to upload: what it is, from which commit, and the tree (FOLDER) that becomes it."""

    repo: str
    ref: str
    commit: str
    kind: str  # plugin or theme
    slug: str
    name: str
    version: str | None
    folder: Path
    composer: bool
    files: int
    size: int

    def summary(self) -> str:
        how = ", composer install --no-dev" if self.composer else ""
        return (f"{self.kind} {self.slug} {self.version or '(no version header)'} from {self.repo} at {self.ref} "
                f"({self.commit[:12]}; {self.files} files, {self.size} bytes{how})")


def _git(args: list[str], *, cwd: Path | None = None, binary: bool = False, stdout=None) -> subprocess.CompletedProcess:
    # Only the file and ssh transports (git's ext:: runs commands); no prompt for a password; no system or
    # user git configuration (a worker's ~/.gitconfig could rewrite URLs or run hooks).
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
           "GIT_SSH_COMMAND": "ssh -o BatchMode=yes", "GIT_PROTOCOL_FROM_USER": "0", "LC_ALL": "C"}
    cmd = ["git", "-c", "protocol.allow=never", "-c", "protocol.file.allow=always", "-c", "protocol.ssh.allow=always",
           "-c", "core.symlinks=true", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=stdout is None, stdout=stdout, text=not binary,
                          timeout=600, check=False)


def fetch(repo: str, ref: str, workdir: Path) -> tuple[Path, str]:
    """REPO cloned bare into WORKDIR; returns (the clone, the full commit id REF names). Clear errors for a
    repository that cannot be read and a ref it does not have."""
    repo, ref = git_repo(repo), git_ref(ref)
    clone = workdir / "repo.git"
    got = _git(["clone", "--bare", "--quiet", "--", repo, str(clone)])
    if got.returncode != 0:
        raise ReleaseError(f"could not fetch {repo}: {got.stderr.strip().splitlines()[-1] if got.stderr.strip() else 'git failed'}")
    found = _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"], cwd=clone)
    if found.returncode != 0 or not found.stdout.strip():
        raise ReleaseError(f"{repo} has no branch, tag or commit {ref!r}: nothing was deployed")
    return clone, found.stdout.strip()


def escapes(path: str, target: str) -> bool:
    """Whether a link at PATH (relative to the tree's top) pointing at TARGET leads out of the tree."""
    if target.startswith("/") or "\0" in target:
        return True
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    return joined == ".." or joined.startswith("../")


def check_tree(clone: Path, commit: str) -> int:
    """Refuse a tree with a link that leads out of it, or a submodule (git archive would leave it out).
    Returns how many entries the tree has."""
    listing = _git(["ls-tree", "-r", "-z", "--full-tree", commit], cwd=clone)
    if listing.returncode != 0:
        raise ReleaseError(f"could not list commit {commit[:12]}: {listing.stderr.strip()}")
    entries = [e for e in listing.stdout.split("\0") if e]
    for item in entries:
        meta, _, path = item.partition("\t")
        mode, kind, obj = meta.split()
        if kind == "commit":
            raise ReleaseError(f"{path} is a git submodule: pressfleet deploys one repository's own files; vendor it")
        if mode == "120000":
            target = _git(["cat-file", "blob", obj], cwd=clone).stdout
            if escapes(path, target):
                raise ReleaseError(f"{path} is a link to {target!r}, out of the repository: nothing was deployed")
    return len(entries)


def export(clone: Path, commit: str, dest: Path) -> None:
    """The commit's files (no .git) into DEST, through git archive (a tree already checked by check_tree)."""
    dest.mkdir(parents=True)
    tar_path = dest.parent / "export.tar"
    with tar_path.open("wb") as out:
        done = _git(["archive", "--format=tar", commit], cwd=clone, binary=True, stdout=out)
    if done.returncode != 0:
        raise ReleaseError(f"git archive of {commit[:12]} failed")
    with tarfile.open(tar_path) as tar:
        # Debian 12's Python 3.11.2 predates tarfile's extraction filters: git's own tree rules (no absolute
        # name, no '..', nothing below a link) and check_tree (no link out) keep every name inside DEST.
        tar.extractall(dest)
    tar_path.unlink()


def headers(text: str) -> dict[str, str]:
    """WordPress's file headers (Theme Name, Plugin Name, Version) in the first 8 KiB of a file, as WordPress reads them."""
    found: dict[str, str] = {}
    for m in _HEADER.finditer(text[:8192]):
        found.setdefault(m["key"], m["value"].strip())
    return found


def identify(tree: Path) -> tuple[str, str, str | None]:
    """(kind, name, version): a theme when style.css at the top names a Theme Name, a plugin when a top PHP
    file names a Plugin Name (as WordPress itself recognises them)."""
    style = tree / "style.css"
    if style.is_file() and not style.is_symlink():
        h = headers(style.read_text(errors="replace"))
        if h.get("Theme Name"):
            return "theme", h["Theme Name"], h.get("Version")
    for php in sorted(tree.glob("*.php")):
        if php.is_file() and not php.is_symlink():
            h = headers(php.read_text(errors="replace"))
            if h.get("Plugin Name"):
                return "plugin", h["Plugin Name"], h.get("Version")
    raise ReleaseError("the repository is neither a WordPress theme (style.css with a Theme Name header) nor a "
                       "plugin (a top-level PHP file with a Plugin Name header)")


def composer_path_repos(manifest: dict) -> list[str]:
    """The `path` repositories a composer.json names; refused unless each is a relative path inside the tree
    (Composer would copy anything on the worker, /etc included, into vendor/)."""
    repos = manifest.get("repositories") or []
    if isinstance(repos, dict):
        repos = list(repos.values())
    urls = []
    for r in repos:
        if isinstance(r, dict) and r.get("type") == "path":
            url = str(r.get("url", ""))
            if not url or escapes("composer.json", url) or any(c in url for c in "*?[{~$"):
                raise ReleaseError(f"composer.json's path repository {url!r} is not a folder inside the repository")
            urls.append(url)
    return urls


def build(tree: Path, workdir: Path) -> bool:
    """`composer install --no-dev` in TREE when it has a composer.json (Debian's composer); False when it has none.
    Composer's scripts and plugins are off: a repository's code never runs on the worker."""
    manifest_path = tree / "composer.json"
    if not manifest_path.is_file():
        return False
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError as exc:
        raise ReleaseError(f"composer.json is not valid JSON: {exc}") from None
    composer_path_repos(manifest)
    if shutil.which("composer") is None:
        raise ReleaseError("the repository has a composer.json and this machine has no composer (apt-get install composer)")
    env = {**os.environ, "COMPOSER_HOME": str(workdir / "composer-home"), "COMPOSER_MIRROR_PATH_REPOS": "1",
           "COMPOSER_NO_INTERACTION": "1", "COMPOSER_ALLOW_SUPERUSER": "1", "COMPOSER_NO_AUDIT": "1",
           "COMPOSER_CACHE_DIR": str(workdir / "composer-cache")}
    done = subprocess.run(["composer", "install", "--no-dev", "--no-scripts", "--no-plugins", "--no-progress",
                           "--optimize-autoloader", "--no-ansi", "--working-dir", str(tree)],
                          env=env, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
        raise ReleaseError("composer install failed: " + " / ".join(tail))
    return True


def scan(tree: Path) -> tuple[int, int]:
    """(files, bytes) of the built tree; refused if the build left a link out of it."""
    files = size = 0
    for dirpath, dirs, names in os.walk(tree):
        for name in [*names, *dirs]:
            p = Path(dirpath) / name
            if p.is_symlink():
                rel = p.relative_to(tree).as_posix()
                if escapes(rel, os.readlink(p)):
                    raise ReleaseError(f"the build left {rel}, a link to {os.readlink(p)!r} out of the release")
            elif name in names:
                files += 1
                size += p.stat().st_size
    return files, size


def default_slug(repo: str) -> str:
    """The folder name a repository's code gets by default: its last path part without `.git`."""
    last = repo.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    return last.removesuffix(".git").lower().replace(".", "-")


def prepare(repo: str, ref: str, workdir: Path, slug: str | None = None) -> Built:
    """Fetch, check, export and build REPO at REF into WORKDIR/tree: the release to upload."""
    slug = component_slug(slug if slug else default_slug(git_repo(repo)))
    clone, commit = fetch(repo, ref, workdir)
    check_tree(clone, commit)
    tree = workdir / "tree"
    export(clone, commit, tree)
    kind, name, version = identify(tree)
    composer = build(tree, workdir)
    files, size = scan(tree)
    return Built(repo, ref, commit, kind, slug, name, version, tree, composer, files, size)


def tar_bytes(tree: Path) -> bytes:
    """The built tree as an uncompressed tar (owners left out: the host makes them root's and the site's group)."""
    import io

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for child in sorted(tree.iterdir()):
            tar.add(child, arcname=child.name, filter=lambda ti: _anonymous(ti))
    return buf.getvalue()


def _anonymous(ti: tarfile.TarInfo) -> tarfile.TarInfo:
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    return ti
