"""Where pressfleet keeps its files.

Everything a run writes lives under the project's state folder (`.state/`, ignored by git) unless
`PRESSFLEET_STATE` points elsewhere. The lab's template and hosts live under `PRESSFLEET_LAB_DIR`
(default `/var/lib/pressfleet/lab`) so that every clone on a machine shares one cached template.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "templates"


def state_dir() -> Path:
    return Path(os.environ.get("PRESSFLEET_STATE", ROOT / ".state")).resolve()


def lab_dir() -> Path:
    return Path(os.environ.get("PRESSFLEET_LAB_DIR", "/var/lib/pressfleet/lab")).resolve()


# --------------------------------------------------------------------------------------------
# Owner-only state (issue 9 item 15): the state folder holds Prefect's database with every block's secrets,
# local backups, reports and the metrics store. pressfleet processes that write there run with umask 077
# (the CLI, and the Prefect server and worker that pressfleet.stack.control starts; flow runs inherit the worker's);
# start-up takes group and other bits off whatever is already there.

PRIVATE_UMASK = 0o077


def use_private_umask() -> int:
    """Files and folders this process creates are its owner's alone from now on; returns the old umask."""
    return os.umask(PRIVATE_UMASK)


def private_dirs(path: Path, stop: Path | None = None) -> Path:
    """mkdir -p PATH with every folder it creates mode 0700 (os.makedirs gives intermediate folders the
    umask's default); `stop` (an existing ancestor) is never created or changed."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists() and p != stop and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            continue
        os.chmod(d, 0o700)
    return path


def secure_tree(root: Path) -> list[str]:
    """Take group and other permission bits off ROOT and everything under it (symlinks are left alone and
    not followed). Returns the paths that were changed."""
    import stat

    changed = []
    root = Path(root)
    if not root.is_dir() or root.is_symlink():
        return changed

    def fix(path: str, st: os.stat_result) -> None:
        if stat.S_ISLNK(st.st_mode) or not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            return
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            os.chmod(path, mode & 0o700 | (0o700 if stat.S_ISDIR(st.st_mode) else 0))
            changed.append(path)

    fix(str(root), os.lstat(root))
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            try:
                fix(full, os.lstat(full))
            except FileNotFoundError:  # removed meanwhile (a run in flight)
                continue
    return changed


class world_readable:
    """Decorator/context: umask 022 for the duration (the lab builds file trees that other users of a lab
    host must read: its root folder, /etc/hosts, the mirror's archives), whatever the caller's umask."""

    def __init__(self, fn=None) -> None:
        import functools

        self.fn = fn
        if fn is not None:
            functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        with world_readable():
            return self.fn(*args, **kwargs)

    def __enter__(self):
        self.old = os.umask(0o022)
        return self

    def __exit__(self, *exc) -> None:
        os.umask(self.old)
