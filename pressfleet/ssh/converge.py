"""Idempotent steps on a host: files, packages and services brought to a desired state.

Each step reads the host's state in one round trip, changes only what differs, validates before any
service sees a change, and reports what it changed. A file change that fails validation is undone:
the last good file goes back in place (it is also kept beside the file as `<name>.pressfleet-last-good`),
and the service is never reloaded with the bad one (WordOps's rule, with EasyEngine's undo).

Files travel as one tar stream on standard input, never on a command line (secrets such as
wp-config.php ride this way too), and land by rename from a temporary name in the same folder, so a
dropped connection leaves either the old file or the new one, never half of one. Root never follows a
link on the way (templates/scripts/safe_files.py): a managed path that is a link, or a file not root's
own in a folder a site's user can change, raises UnsafePath before anything changes.

Dry run: inside `dry_run(host)`, every step reads the host as usual but changes nothing. `ensure_files`
records the unified diff of each file it would change (content hidden for files others may not read: they
hold secrets), `ensure_packages` the packages it would install, `ensure_service` and every reload or restart
the service actions it would take, and `sh` skips any script not marked `reads=True` (noted, not run). Tasks
guard their other changing commands with `would("...")`, which records the sentence and says to skip.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import difflib
import hashlib
import io
import sys
import posixpath
import re
import tarfile
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from fabric import Connection

from pressfleet.paths import TEMPLATES
from pressfleet.ssh.remote import CommandResult, RemoteCommandError, run

STAGED_SUFFIX = ".pressfleet-new"
LAST_GOOD_SUFFIX = ".pressfleet-last-good"
APT_ENV = ["env", "DEBIAN_FRONTEND=noninteractive", "NEEDRESTART_MODE=a"]
APT_OPTS = ["-o", "DPkg::Lock::Timeout=300", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]


class ValidationFailed(RuntimeError):
    """A new configuration failed its check; the previous one is back in service."""

    def __init__(self, check: list[str], output: str, restored: list[str]):
        self.check = check
        self.output = output
        self.restored = restored
        lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
        # The line that names the problem (nginx's [emerg], a parser's "error"), not the summary after it.
        telling = [ln for ln in lines if re.search(r"\[emerg\]|error|invalid|unknown|not found", ln, re.I)
                   and not re.search(r"test (configuration )?failed|test is successful", ln)]
        reason = (telling or lines or [""])[0]
        super().__init__(
            f"`{' '.join(check)}` refused the new configuration ({reason[:300]}); "
            f"the previous files are back in place: {', '.join(restored)}"
        )


def check_path(path: str) -> str:
    """A remote path pressfleet may manage: absolute, normalized, no `..`, no newline or NUL."""
    if (not isinstance(path, str) or not path.startswith("/") or posixpath.normpath(path) != path
            or "\n" in path or "\0" in path or ".." in path.split("/")):
        raise ValueError(f"managed path {path!r} must be absolute and normalized")
    return path


@dataclass(frozen=True)
class ManagedFile:
    """A file as it should be on the host."""

    path: str
    content: bytes
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"

    def __post_init__(self) -> None:
        check_path(self.path)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def __repr__(self) -> str:  # never print contents (they may hold secrets)
        return f"ManagedFile({self.path!r}, {len(self.content)} bytes, {self.mode:o} {self.owner}:{self.group})"


@dataclass(frozen=True)
class FileState:
    sha256: str
    mode: int
    owner: str
    group: str


@dataclass
class StepResult:
    """What a step did: which things it changed (empty = nothing to do) and how long it took. In a dry run,
    `changed` says what it would change and DIFFS, PACKAGES and ACTIONS hold the details (see DryRun)."""

    name: str
    changed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    diffs: list[dict] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)

    @property
    def did_change(self) -> bool:
        return bool(self.changed)


# ---------------------------------------------------------------------------------------------
# dry run


@dataclass
class DryRun:
    """What a dry run found it would do: file diffs ({"path", "diff"}), packages to install, and actions
    (service enable/start/reload/restart, other commands) as sentences. Nothing was changed."""

    diffs: list[dict] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def take(self) -> "DryRun":
        """What was recorded so far, emptied here (each step takes its own share)."""
        out = DryRun(self.diffs, self.packages, self.actions, self.skipped)
        self.diffs, self.packages, self.actions, self.skipped = [], [], [], []
        return out


_DRY: contextvars.ContextVar[DryRun | None] = contextvars.ContextVar("pressfleet_dry_run", default=None)


@contextlib.contextmanager
def dry_run(enabled: bool = True) -> Iterator[DryRun | None]:
    """Within this block every converge step (and every task guard) reports instead of changing the host."""
    if not enabled:
        yield None
        return
    record = DryRun()
    token = _DRY.set(record)
    try:
        yield record
    finally:
        _DRY.reset(token)


def current_dry_run() -> DryRun | None:
    """The dry run in progress (None when changes are real)."""
    return _DRY.get()


def would(what: str) -> bool:
    """In a dry run: record that WHAT would happen and return True (the caller skips it); else False."""
    dry = _DRY.get()
    if dry is None:
        return False
    dry.actions.append(what)
    return True


def would_unless(conn: Connection, probe: list[str], what: str) -> bool:
    """In a dry run: run the read-only PROBE; when it fails, record WHAT; return True (skip). Else False."""
    if _DRY.get() is None:
        return False
    if not run(conn, probe, check=False).ok:
        would(what)
    return True


def file_diff(path: str, old: bytes | None, new: bytes, *, hidden: bool = False) -> str:
    """A unified diff of PATH from OLD (None: no file yet) to NEW (pure). HIDDEN (a file only its owner and
    group may read: it holds secrets) or binary content gives one line saying the content differs."""
    if hidden or b"\0" in new or (old is not None and b"\0" in old):
        what = "content hidden: the file is not world-readable" if hidden else "binary content"
        if old is None:
            return f"--- /dev/null\n+++ {path}\n(new file, {len(new)} bytes; {what})\n"
        return f"--- {path}\n+++ {path}\n(content differs, {len(new)} bytes after; {what})\n"
    old_lines = [] if old is None else old.decode("utf-8", errors="replace").splitlines(keepends=True)
    new_lines = new.decode("utf-8", errors="replace").splitlines(keepends=True)
    lines = difflib.unified_diff(old_lines, new_lines, "/dev/null" if old is None else path, path)
    return "".join(ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n" for ln in lines)


def meta_changes(cur: FileState | None, f: "ManagedFile") -> list[str]:
    """Mode and ownership changes of an existing file, as `mode 644 -> 640` lines (pure)."""
    if cur is None:
        return []
    out = []
    if cur.mode != f.mode:
        out.append(f"mode {cur.mode:o} -> {f.mode:o}")
    if (cur.owner, cur.group) != (f.owner, f.group):
        out.append(f"owner {cur.owner}:{cur.group} -> {f.owner}:{f.group}")
    return out


def _secret_file(f: "ManagedFile", cur: FileState | None) -> bool:
    # Others may not read it (wp-config.php, keys, ACL files): its content never enters a report.
    return not (f.mode & 0o004) or (cur is not None and not (cur.mode & 0o004))


# ---------------------------------------------------------------------------------------------
# pure parts


def parse_file_states(text: str) -> dict[str, FileState | None]:
    """Parse lines `path<TAB>sha256<TAB>mode<TAB>owner<TAB>group` (or `path<TAB>-` for a missing file)."""
    states: dict[str, FileState | None] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) == 2 and parts[1] == "-":
            states[parts[0]] = None
        elif len(parts) == 5:
            states[parts[0]] = FileState(parts[1], int(parts[2], 8), parts[3], parts[4])
        else:
            raise ValueError(f"unexpected file-state line: {line[:200]!r}")
    return states


def files_to_change(desired: list[ManagedFile], current: dict[str, FileState | None]) -> list[ManagedFile]:
    """The desired files whose content, mode or ownership differ from the host's."""
    out = []
    for f in desired:
        cur = current.get(f.path)
        if cur is None or (cur.sha256, cur.mode, cur.owner, cur.group) != (f.sha256, f.mode, f.owner, f.group):
            out.append(f)
    return out


def tar_of(files: list[ManagedFile], suffix: str = STAGED_SUFFIX) -> bytes:
    """A tar stream placing each file at its path + suffix with its mode and owner (names, not ids)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for f in files:
            info = tarfile.TarInfo(f.path.lstrip("/") + suffix)
            info.size = len(f.content)
            info.mode = f.mode
            info.uname, info.gname = f.owner, f.group
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(f.content))
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# remote parts (scripts are constant text; every variable reaches them as a quoted argument)

# Every change to a managed file goes through one constant Python script on the host (safe_files.py): it walks
# each path from / one folder at a time without following links and works inside the folder's descriptor
# (fresh O_EXCL names renamed into place), so a site's user who owns a folder can never redirect root's writes.
# Shell tools (cp, mv, tar -x -C /, mkdir -p) follow links on the way and cannot promise that.
SAFE_FILES = (TEMPLATES / "scripts" / "safe_files.py").read_text()
REFUSED_EXIT = 3


class UnsafePath(RuntimeError):
    """A managed path could redirect root (a link, or a file not root's own in a folder others can change):
    nothing was changed."""


class ProofFailed(RuntimeError):
    """The reloaded service did not pass its proof; the previous files are back in place and reloaded."""


def sh(conn: Connection, script: str, args: list[str], *, stdin: bytes | None = None, check: bool = True,
       timeout: float | None = None, reads: bool = False):
    """Run a constant sh script with quoted arguments (`sh -c SCRIPT sh ARG...`).

    In a dry run a script not marked READS (only reads the host) is not run: it is noted by its caller's
    name and an empty, successful result comes back (callers then report no change)."""
    dry = _DRY.get()
    if dry is not None and not reads:
        # The caller's function names the script well enough (ensure_site_user, ensure_hosts_entry...).
        dry.skipped.append(f"not checked in a dry run: the change script of {sys._getframe(1).f_code.co_name}")
        return CommandResult(["sh", "-c", "..."], 0, "", "")
    return run(conn, ["sh", "-c", script, "sh", *args], stdin=stdin, check=check, timeout=timeout)


def safe_files(conn: Connection, mode: str, args: list[str], *, stdin: bytes | None = None):
    """Run safe_files.py MODE ARGS as root on the host; a refusal raises UnsafePath with its one sentence."""
    result = run(conn, ["python3", "-c", SAFE_FILES, mode, *args], stdin=stdin, check=False, timeout=600)
    if result.ok:
        return result
    refusal = next((ln[len("refused: "):] for ln in result.stderr.splitlines() if ln.startswith("refused: ")), None)
    if result.exited == REFUSED_EXIT and refusal:
        raise UnsafePath(f"{conn.host}: {refusal}")
    if result.exited == 127:
        raise RemoteCommandError(conn.host, "python3", 127,
                                 "python3 is not installed: pressfleet changes files through it (apt-get install python3)")
    raise RemoteCommandError(conn.host, f"safe_files {mode}", result.exited, result.stderr)


def read_file_states(conn: Connection, paths: list[str]) -> dict[str, FileState | None]:
    if not paths:
        return {}
    return parse_file_states(safe_files(conn, "state", paths).stdout)


def read_files(conn: Connection, paths: list[str]) -> dict[str, bytes | None]:
    """The content of these files (None when absent), read without following a link."""
    if not paths:
        return {}
    out: dict[str, bytes | None] = {}
    for line in safe_files(conn, "read", paths).stdout.splitlines():
        path, _, data = line.partition("\t")
        out[path] = None if data == "-" else base64.b64decode(data)
    return out


def dry_file_diffs(conn: Connection, changing: list[ManagedFile], current: dict[str, FileState | None]) -> list[dict]:
    """{"path", "diff"} for each file that would change: a unified diff of its content, then mode and owner
    changes. Files others may not read are never read here: their diff says only that they differ."""
    content_changes = [f for f in changing if current.get(f.path) is None or current[f.path].sha256 != f.sha256]
    readable = [f.path for f in content_changes if current.get(f.path) is not None and not _secret_file(f, current[f.path])]
    old = read_files(conn, readable)
    out = []
    for f in changing:
        cur = current.get(f.path)
        text = ""
        if f in content_changes:
            text = file_diff(f.path, None if cur is None else old.get(f.path, b""), f.content, hidden=_secret_file(f, cur))
        meta = meta_changes(cur, f)
        if meta:
            text += "".join(f"# {f.path}: {m}\n" for m in meta)
        out.append({"path": f.path, "diff": text})
    return out


def ensure_files(
    conn: Connection,
    files: list[ManagedFile],
    *,
    check: list[str] | None = None,
    on_change: list[str] | None = None,
    prove: Callable[[], None] | None = None,
) -> list[str]:
    """Bring FILES to their desired content; returns the paths changed.

    With CHECK (e.g. `["nginx", "-t"]`), the new files are validated in place and, if the check fails,
    the previous files are restored and ValidationFailed is raised: the service never sees them.
    ON_CHANGE (e.g. `["systemctl", "reload", "nginx"]`) runs once when anything changed. PROVE, when given,
    is called after ON_CHANGE and must raise if the reloaded service does not work (e.g. a fresh SSH login):
    the previous files are then put back, ON_CHANGE runs again and ProofFailed is raised. Only then are the
    new files committed. A path that is a link, or not root's own in a folder others can change, raises
    UnsafePath before anything changes.
    """
    current = read_file_states(conn, [f.path for f in files])
    changing = files_to_change(files, current)
    if not changing:
        return []
    paths = [f.path for f in changing]
    dry = _DRY.get()
    if dry is not None:  # report the diff, the check and the reload it would run; change nothing
        dry.diffs += dry_file_diffs(conn, changing, current)
        if on_change:
            dry.actions.append(f"would run `{' '.join(on_change)}`")
        return paths
    safe_files(conn, "install", paths, stdin=tar_of(changing, suffix=""))
    if check:
        result = run(conn, check, check=False, timeout=120)
        if not result.ok:
            safe_files(conn, "restore", paths)
            raise ValidationFailed(check, result.stdout + result.stderr, paths)
    if on_change:
        try:
            run(conn, on_change, timeout=300)
        except RemoteCommandError:
            safe_files(conn, "restore", paths)
            run(conn, on_change, check=False, timeout=300)
            raise
    if prove:
        try:
            prove()
        except Exception as exc:
            safe_files(conn, "restore", paths)
            if on_change:
                run(conn, on_change, check=False, timeout=300)
            raise ProofFailed(f"{exc}; the previous files are back in place"
                              f"{' and `' + ' '.join(on_change) + '` ran again' if on_change else ''}: "
                              f"{', '.join(paths)}") from exc
    safe_files(conn, "commit", paths)
    return paths


def ensure_webread(conn: Connection, user: str, home: str, web_root: str) -> int:
    """USER (nginx's) may pass through HOME and read every file under WEB_ROOT, new ones included (POSIX ACLs,
    default ACLs on folders); nothing else in HOME (wp-config.php) opens to it. Returns how many entries changed."""
    for path in (home, web_root):
        check_path(path)
    mode = "webread-dry" if _DRY.get() is not None else "webread"
    count = int(safe_files(conn, mode, [user, home, web_root]).stdout.strip() or 0)
    if count and mode == "webread-dry":
        _DRY.get().actions.append(f"would give {user} read access to {count} entries under {web_root}")
    return count


def ensure_links(conn: Connection, links: dict[str, str]) -> list[str]:
    """Symlinks {link: target}; returns the links created or changed."""
    if not links:
        return []
    for path in [*links, *links.values()]:
        check_path(path)
    args = [x for pair in links.items() for x in pair]
    dry = _DRY.get()
    out = [f"link {p}" for p in safe_files(conn, "links-dry" if dry else "links", args).stdout.split()]
    if dry is not None:
        dry.actions += [f"would {x}" for x in out]
    return out


def ensure_absent(conn: Connection, paths: list[str]) -> list[str]:
    """Remove these files or links if present (kept as nothing: they are distro defaults we replace)."""
    if not paths:
        return []
    for path in paths:
        check_path(path)
    dry = _DRY.get()
    out = [f"removed {p}" for p in safe_files(conn, "absent-dry" if dry else "absent", paths).stdout.split()]
    if dry is not None:
        dry.actions += [f"would have {x}" for x in out]
    return out


# `KEY VALUE` lines in a distro file we do not own whole (login.defs): replace the key's active line, or
# append one; commented lines (the distro's documentation) stay as they are.
_SETTINGS_SCRIPT = r"""
set -eu
mode=$1 file=$2; shift 2
changed=""
while [ $# -ge 2 ]; do
  key=$1 value=$2; shift 2
  if grep -Eq "^$key[[:space:]]+$value[[:space:]]*$" "$file"; then continue; fi
  changed="$changed $key"
  [ "$mode" = check ] && continue  # a dry run: report only
  if grep -Eq "^$key[[:space:]]" "$file"; then
    sed -i -E "s|^$key[[:space:]].*|$key $value|" "$file"
  else
    echo "$key $value" >> "$file"
  fi
done
echo $changed
"""


def ensure_settings(conn: Connection, path: str, settings: dict[str, str]) -> list[str]:
    """`KEY VALUE` settings in a file we do not own whole (the rest of it stays as the distro has it)."""
    check_path(path)
    for key, value in settings.items():
        if not re.fullmatch(r"[A-Z_]+", key) or not re.fullmatch(r"[A-Za-z0-9_./-]+", value):
            raise ValueError(f"setting {key}={value!r} is not a plain key and value")
    args = [x for kv in settings.items() for x in kv]
    safe_files(conn, "check", [path])  # sed -i renames by name: only in root's own folders, never through a link
    dry = _DRY.get()
    out = sh(conn, _SETTINGS_SCRIPT, ["check" if dry else "apply", path, *args], reads=bool(dry)).stdout.split()
    if dry is not None:
        dry.diffs += [{"path": path, "diff": "".join(f"# {path}: would set {k} {settings[k]}\n" for k in out)}] if out else []
    return [f"{path}: {key}" for key in out]


def missing_packages(conn: Connection, packages: list[str]) -> list[str]:
    result = run(conn, ["dpkg-query", "-W", "-f", "${Package}\t${db:Status-Status}\n", *packages], check=False)
    installed = {ln.split("\t")[0] for ln in result.stdout.splitlines() if ln.endswith("\tinstalled")}
    return [p for p in packages if p not in installed]


def finish_interrupted_dpkg(conn: Connection, *, timeout: float = 600) -> None:
    """A run cut off half-way can leave dpkg interrupted: finish its work (a no-op otherwise). Waits while
    another apt or dpkg (say, the orphan of that cut-off run) still holds the lock."""
    deadline = time.monotonic() + timeout
    while True:
        result = run(conn, [*APT_ENV, "dpkg", "--configure", "-a"], check=False, timeout=timeout)
        if result.ok:
            return
        if "lock" not in result.stderr.lower() or time.monotonic() > deadline:
            raise RemoteCommandError(conn.host, "dpkg", result.exited, result.stderr)
        time.sleep(2)


def ensure_packages(conn: Connection, packages: list[str], *, timeout: float = 1800) -> list[str]:
    """Install the packages that are missing (one apt transaction); returns those installed."""
    missing = missing_packages(conn, packages)
    if not missing:
        return []
    dry = _DRY.get()
    if dry is not None:
        dry.packages += [p for p in missing if p not in dry.packages]
        return missing
    finish_interrupted_dpkg(conn, timeout=timeout)
    run(conn, [*APT_ENV, "apt-get", *APT_OPTS, "update", "-q"], timeout=timeout)
    run(conn, [*APT_ENV, "apt-get", *APT_OPTS, "install", "-y", "-q", "--no-install-recommends", *missing], timeout=timeout)
    still = missing_packages(conn, missing)
    if still:
        raise RuntimeError(f"apt-get reported success but these packages are not installed: {', '.join(still)}")
    return missing


def ensure_service(conn: Connection, unit: str, *, enabled: bool = True, running: bool = True) -> list[str]:
    """Make UNIT enabled and running (or not); returns what changed."""
    state = run(conn, ["sh", "-c", 'systemctl is-enabled "$1"; systemctl is-active "$1"', "sh", unit], check=False)
    lines = (state.stdout.split() + ["", ""])[:2]
    dry = _DRY.get()
    if dry is not None:
        would_do = ([f"{unit} enabled"] if enabled and lines[0] != "enabled" else []) + (
            [f"{unit} started"] if running and lines[1] != "active" else []) + (
            [f"{unit} stopped"] if not running and lines[1] == "active" else [])
        dry.actions += [f"would have {x}" for x in would_do]
        return would_do
    changed = []
    if enabled and lines[0] != "enabled":
        run(conn, ["systemctl", "enable", unit])
        changed.append(f"{unit} enabled")
    if running and lines[1] != "active":
        run(conn, ["systemctl", "start", unit], timeout=300)
        changed.append(f"{unit} started")
    if not running and lines[1] == "active":
        run(conn, ["systemctl", "stop", unit], timeout=300)
        changed.append(f"{unit} stopped")
    return changed
