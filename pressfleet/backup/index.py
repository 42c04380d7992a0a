"""The file index of a backup, and what an incremental backup has to read (pure functions).

The host lists the site's wp-content (`backup_inventory.sh`): for every file, link and folder its
type, size, modification and change times, and path. A backup stores that list as its `index` part,
each entry naming the backup whose archive holds the entry's content (its holder).

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
from dataclasses import dataclass
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
            entries.append(Entry(text, kind.decode(), int(size), mtime.decode(), ctime.decode()))
        except ValueError:
            raise InventoryError(f"the host's file listing has a malformed record: {record[:120]!r}") from None
    return version, entries


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
            index.append(Entry(entry.path, entry.type, entry.size, entry.mtime, entry.ctime, old.holder))
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
                         e.ctime, e.holder], separators=(",", ":")) for e in entries]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def load_index(data: bytes) -> list[Entry]:
    out = []
    for line in data.decode().splitlines():
        if not line.strip():
            continue
        path, kind, size, mtime, ctime, holder = json.loads(line)
        out.append(Entry(path.encode("latin-1").decode("utf-8", "surrogateescape"), kind, int(size), mtime, ctime, holder))
    return out


def nul_list(paths: Iterable[str]) -> bytes:
    """Paths as tar -T --null and the restore scripts read them."""
    return b"".join(p.encode("utf-8", "surrogateescape") + b"\0" for p in paths)


def holders(entries: Iterable[Entry]) -> set[str]:
    return {e.holder for e in entries}


def select(entries: Iterable[Entry], prefixes: tuple[str, ...] | None) -> list[Entry]:
    """The entries under any of `prefixes` (e.g. `wp-content/uploads`), all of them when None."""
    if prefixes is None:
        return list(entries)
    return [e for e in entries if any(e.path == p or e.path.startswith(p.rstrip("/") + "/") for p in prefixes)]
