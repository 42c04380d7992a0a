"""The file index of a backup, and what an incremental backup has to read (pure functions).

The host lists the site's files (`backup_inventory.sh`): wp-content, and every entry at the web root
that is not WordPress core (`ads.txt`, `robots.txt`, `.user.ini`, verification files, `.well-known/`...),
for each its type, size, modification and change times, and path. A backup stores that list as its
`index` part, each entry naming the backup whose archive holds the entry's content (its holder) and,
for a file, the sha256 and size of what that archive carried (hashed on the control side as the
archive streams past: `TarDigest`), so a restore-test can check every restored file.

An incremental backup compares the new listing with the previous backup's index: an entry whose type,
size, mtime or ctime differs, or that is new, is read into this backup's archive and this backup
becomes its holder; every other entry keeps its holder, and nothing of it is read or uploaded again.
Deleted entries simply drop out of the index.

Restoring backup B (the documented chain): follow B's parents down to its full backup, extract the
archives of the chain members that hold at least one entry of B's index, oldest first, then delete
whatever is not in B's index. A full backup holds all of its entries, so it restores on its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Iterable

from pressfleet.validate import InvalidInput


class InventoryError(InvalidInput):
    """The host's file listing could not be read."""


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the site's web root, e.g. wp-content/uploads/2026/11/a.jpg
    type: str  # f (file), l (symlink), d (folder)
    size: int
    mtime: str  # as find printed it (seconds with fraction): compared as text, never rounded
    ctime: str
    holder: str = ""
    sha256: str = ""  # of a file's content as its holder's archive carried it ("" unknown: older backups)

    def same_content(self, other: "Entry") -> bool:
        return (self.type, self.size, self.mtime, self.ctime) == (other.type, other.size, other.mtime, other.ctime)


def parse_inventory(data: bytes) -> tuple[str, list[Entry]]:
    """(WordPress version, entries) from backup_inventory.sh's output.

    Format: a first line `version X.Y.Z\\n`, then NUL-terminated records `TYPE SIZE MTIME CTIME PATH`.
    """
    head, sep, rest = data.partition(b"\n")
    if not sep or not head.startswith(b"version "):
        raise InventoryError("the host's file listing has no WordPress version line (is WordPress installed?)")
    version = head[len(b"version "):].decode("utf-8", "replace").strip()
    if not version:
        raise InventoryError("WordPress's version could not be read from wp-includes/version.php")
    entries: list[Entry] = []
    for record in rest.split(b"\0"):
        if not record:
            continue
        fields = record.split(b" ", 4)
        if len(fields) != 5:
            raise InventoryError(f"the host's file listing has a malformed record: {record[:120]!r}")
        kind, size, mtime, ctime, path = fields
        try:
            text = path.decode("utf-8", "surrogateescape")
            entry = Entry(text, kind.decode(), int(size), mtime.decode(), ctime.decode())
        except ValueError:
            raise InventoryError(f"the host's file listing has a malformed record: {record[:120]!r}") from None
        if backed_up(entry.path):
            entries.append(entry)
    return version, entries


# WordPress core at the web root: installed from the release (checksum verified), never backed up.
CORE_ROOT = frozenset({
    "wp-admin", "wp-includes", "index.php", "license.txt", "readme.html", "wp-activate.php", "wp-blog-header.php",
    "wp-comments-post.php", "wp-config-sample.php", "wp-cron.php", "wp-links-opml.php", "wp-load.php",
    "wp-login.php", "wp-mail.php", "wp-settings.php", "wp-signup.php", "wp-trackback.php", "xmlrpc.php",
    "wp-config.php",  # the config part holds it (pressfleet keeps it above the web root)
})
WEBROOT = "."  # the part name for the web root's own files: every backed-up entry outside wp-content


def backed_up(path: str) -> bool:
    """Whether a path (relative to the web root) belongs in a backup: wp-content and everything at the web
    root but WordPress core and pressfleet's own side files (`*.pressfleet-last-good`, `*.pressfleet-old`...:
    root's copies, which the site's user may not read)."""
    top = path.split("/", 1)[0]
    return bool(top) and top not in CORE_ROOT and ".pressfleet-" not in path and top not in (".", "..")


def top_level(entries: Iterable[Entry]) -> list[str]:
    """The web root's own names among `entries` (what a restore swaps in one by one), sorted."""
    return sorted({e.path.split("/", 1)[0] for e in entries})


def carried(index: Iterable[Entry], backup_id: str, members: dict[str, tuple[str, int, str]]) -> list[Entry]:
    """The index once the archive has streamed: each entry this backup holds takes the type, size and
    sha256 its archive carried (`members`: path -> (type, size, sha256)). An entry the archive lacks
    (it vanished while the backup ran) leaves the index; one whose size changed while it was read keeps
    no mtime, so the next backup reads it again."""
    out = []
    for e in index:
        if e.holder != backup_id:
            out.append(e)
            continue
        got = members.get(e.path)
        if got is None:
            continue
        kind, size, sha = got
        changed = kind != e.type or (kind == "f" and size != e.size)
        out.append(replace(e, type=kind, size=size if kind == "f" else e.size, sha256=sha,
                           mtime="" if changed else e.mtime))
    return out


@dataclass(frozen=True)
class IncrementalPlan:
    index: list[Entry]  # the new backup's index, holders filled in
    to_read: list[str]  # paths this backup's archive must hold
    bytes_to_read: int
    deleted: int


def plan_files(current: Iterable[Entry], previous: Iterable[Entry] | None, backup_id: str) -> IncrementalPlan:
    """What this backup reads: everything (previous None: a full backup) or only what changed."""
    before = {e.path: e for e in previous} if previous is not None else {}
    index: list[Entry] = []
    to_read: list[str] = []
    size = 0
    for entry in sorted(current, key=lambda e: e.path):
        old = before.get(entry.path)
        if old is not None and old.holder and entry.same_content(old):
            index.append(Entry(entry.path, entry.type, entry.size, entry.mtime, entry.ctime, old.holder, old.sha256))
            continue
        index.append(Entry(entry.path, entry.type, entry.size, entry.mtime, entry.ctime, backup_id))
        to_read.append(entry.path)
        size += entry.size if entry.type == "f" else 0
    current_paths = {e.path for e in index}
    deleted = sum(1 for p in before if p not in current_paths)
    return IncrementalPlan(index, to_read, size, deleted)


def dump_index(entries: Iterable[Entry]) -> bytes:
    """JSON lines, one entry each (paths with any bytes survive through surrogateescape)."""
    lines = [json.dumps([e.path.encode("utf-8", "surrogateescape").decode("latin-1"), e.type, e.size, e.mtime,
                         e.ctime, e.holder, e.sha256], separators=(",", ":")) for e in entries]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def load_index(data: bytes) -> list[Entry]:
    out = []
    for line in data.decode().splitlines():
        if not line.strip():
            continue
        path, kind, size, mtime, ctime, holder, *rest = json.loads(line)  # rest: sha256 (absent before it was kept)
        out.append(Entry(path.encode("latin-1").decode("utf-8", "surrogateescape"), kind, int(size), mtime, ctime,
                         holder, str(rest[0]) if rest else ""))
    return out


def nul_list(paths: Iterable[str]) -> bytes:
    """Paths as tar -T --null and the restore scripts read them."""
    return b"".join(p.encode("utf-8", "surrogateescape") + b"\0" for p in paths)


def holders(entries: Iterable[Entry]) -> set[str]:
    return {e.holder for e in entries}


def _under(path: str, prefix: str) -> bool:
    if prefix == WEBROOT:
        return not _under(path, "wp-content")
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def select(entries: Iterable[Entry], prefixes: tuple[str, ...] | None) -> list[Entry]:
    """The entries under any of `prefixes` (e.g. `wp-content/uploads`; WEBROOT: the web root's own files
    outside wp-content), all of them when None."""
    if prefixes is None:
        return list(entries)
    return [e for e in entries if any(_under(e.path, p) for p in prefixes)]


def compare_tree(expected: Iterable[Entry], found: dict[str, tuple[str, int, str]], *,
                 extra_under: tuple[str, ...] = ()) -> list[str]:
    """One sentence per entry of the backup's index that the restored tree lacks or holds otherwise
    (`found`: path -> (type, size, sha256 or "" when not hashed)); entries under `extra_under` that the
    index does not list are named too."""
    problems = []
    wanted = {e.path: e for e in expected}
    for path, e in sorted(wanted.items()):
        got = found.get(path)
        if got is None:
            problems.append(f"{path} is missing from the restored copy")
            continue
        kind, size, sha = got
        if kind != e.type:
            problems.append(f"{path} is a {_KIND.get(kind, kind)} in the restored copy, the index says "
                            f"{_KIND.get(e.type, e.type)}")
        elif kind == "f" and size != e.size:
            problems.append(f"{path} has {size} bytes in the restored copy, the index says {e.size}")
        elif kind == "f" and e.sha256 and sha and sha != e.sha256:
            problems.append(f"{path} has sha256 {sha[:16]}... in the restored copy, the index says {e.sha256[:16]}...")
    for path in sorted(found):
        if path not in wanted and any(_under(path, p) for p in extra_under):
            problems.append(f"{path} is in the restored copy but not in the backup's index")
    return problems


_KIND = {"f": "file", "d": "folder", "l": "symbolic link"}


def parse_tree_listing(data: bytes) -> dict[str, tuple[str, int, str]]:
    """restore_tree.sh's output: `TYPE SIZE PATH` records, then (after PRESSFLEET-HASHES) `sha256  PATH`
    records, all NUL-terminated -> path -> (type, size, sha256 or "")."""
    found: dict[str, tuple[str, int, str]] = {}
    records = data.split(b"\0")
    hashes = False
    for record in records:
        if not record:
            continue
        if record == b"PRESSFLEET-HASHES":
            hashes = True
            continue
        if hashes:
            digest, sep, path = record.partition(b"  ")
            name = path.decode("utf-8", "surrogateescape")
            if sep and name in found:
                kind, size, _ = found[name]
                found[name] = (kind, size, digest.decode().lstrip("\\"))
            continue
        fields = record.split(b" ", 2)
        if len(fields) == 3 and fields[1].isdigit():
            found[fields[2].decode("utf-8", "surrogateescape")] = (fields[0].decode(), int(fields[1]), "")
    return found
