"""Backups and restores, streamed between a host and storage (no Prefect here: tasks/backup.py wraps it).

Taking a backup (`take_backup`), in this order, each part streamed host -> SSH -> (encrypt) -> storage:
  1. the file listing (`backup_inventory.sh`) and, for an incremental, the previous backup's index;
  2. `database`: mariadb-dump of a consistent snapshot, zstd on the host, rows counted on the way; for an
     incremental, the binary logs from the parent's snapshot to a new consistent snapshot instead;
  3. `files`: a tar of the wp-content entries this backup holds (all of them for a full backup);
  4. `config`: the vhost, PHP pool and wp-config.php;
  5. `index`: the file index (which backup holds each entry);
  6. the manifest, last: until it exists the backup is not listed, so a run cut off anywhere leaves
     no backup that looks complete (and a re-run starts a new one).

Restoring always loads into staging first (a staging database, a staging folder), checks every part's
sha256 and size against the manifest and every table's rows, and only then swaps in (an atomic RENAME
TABLE; two folder renames). A broken part leaves the live site as it was.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Iterable, Optional

import zstandard
from fabric import Connection

from pressfleet import validate
from pressfleet.fleet import dbnames
from pressfleet.backup import binlogchain, catalog
from pressfleet.backup.crypto import DecryptingReader, DecryptionError, EncryptingReader
from pressfleet.backup.dumpinfo import DumpInfo, compare_rows, parse_counts, parse_dump_report
from pressfleet.backup.index import (
    WEBROOT,
    Entry,
    carried,
    compare_tree,
    dump_index,
    load_index,
    nul_list,
    parse_inventory,
    parse_tree_listing,
    plan_files,
    select,
    top_level,
)
from pressfleet.backup.manifest import BackupManifest, ManifestPart
from pressfleet.backup.streams import COPY_CHUNK, HashingReader, TarDigest, drain, pipe_to_remote, remote_reader
from pressfleet.paths import TEMPLATES
from pressfleet.ssh.remote import run
from pressfleet.fleet.siteconfig import SiteConfig
from pressfleet.storage.base import ObjectStore, StorageError
from pressfleet.validate import InvalidInput

log = logging.getLogger("pressfleet.backup")

PARTS = ("database", "uploads", "themes", "plugins", "webroot", "files", "config")
FILE_PARTS = {"uploads": "wp-content/uploads", "themes": "wp-content/themes", "plugins": "wp-content/plugins",
              "files": "wp-content", "webroot": WEBROOT}  # files: wp-content and the web root's own files


class BrokenPart(Exception):
    """A part of a backup does not match its manifest (or does not decrypt); says which."""


def script(name: str) -> str:
    return (TEMPLATES / "scripts" / name).read_text()


def _bytes_of(conn: Connection, argv: list[str], stdin: bytes | None = None) -> bytes:
    with remote_reader(conn, argv, stdin=stdin) as reader:
        return reader.read()


# --- writing parts ------------------------------------------------------------------------------------


def upload_part(store: ObjectStore, key: str, name: str, src: IO[bytes], secret: Optional[str],
                metadata: Optional[dict] = None) -> ManifestPart:
    """Stream `src` (compressed bytes) to `key`, encrypted when `secret` is set; hash what is stored."""
    stream: IO[bytes] = src
    if secret:
        stream = io.BufferedReader(EncryptingReader(src, secret, aad=key, store=store), buffer_size=COPY_CHUNK)
    hashing = HashingReader(stream)
    obj = store.put_stream(key, io.BufferedReader(hashing, buffer_size=COPY_CHUNK), metadata=metadata)
    if obj.size != hashing.size:
        raise StorageError(f"{store.describe()} stored {obj.size} bytes for {key}, {hashing.size} were sent",
                           key=key, operation="put")
    return ManifestPart(name=name, key=key, sha256=hashing.sha256, size=hashing.size, compressed=True,
                        encrypted=bool(secret))


@dataclass
class BackupResult:
    manifest: BackupManifest
    seconds: float
    bytes_stored: int
    previous: Optional[str] = None
    notes: list[str] = field(default_factory=list)


def _previous_for_incremental(store: ObjectStore, site: str, now: datetime, full_every_days: int,
                              secret: Optional[str] = None, restore_mark: Optional[str] = None,
                              ) -> tuple[Optional[BackupManifest], str]:
    """The backup this one can be an incremental on, or None with the reason it is full. Full, besides
    the first and the periodic one: after the database was restored in place (its restore mark changed:
    the staging load and table swap are not in the site's binary-log stream, so an incremental could not
    replay them), and after a restore-test of any backup of the chain failed."""
    entries = catalog.list_backups(store, site, secret)
    if not entries:
        return None, "first backup of the site: full"
    if full_every_days <= 0:
        return None, "full backups only"
    last = entries[-1].manifest
    members = catalog.chain(store, site, last, known={e.manifest.backup_id: e.manifest for e in entries},
                            secret=secret)
    full = members[0]
    if now - full.started_at >= timedelta(days=full_every_days):
        return None, f"the last full backup ({full.backup_id}) is {full_every_days} days old or older: full"
    if last.restore_mark != restore_mark:
        return None, (f"the database was restored in place since backup {last.backup_id} (restore {restore_mark}): "
                      "full backup (a restore is not in the binary log an incremental replays)")
    failed = catalog.restore_test_failures(store, site)
    bad = [m.backup_id for m in members if m.backup_id in failed]
    if bad:
        return None, f"the restore-test of backup {bad[-1]} failed: full backup, sharing nothing with that chain"
    return last, f"incremental on {last.backup_id}"


def read_index(store: ObjectStore, manifest: BackupManifest, secret: Optional[str]) -> list[Entry]:
    part = manifest.part("index")
    if part is None:
        raise BrokenPart(f"backup {manifest.backup_id!r} has no index part")
    with open_part(store, manifest, "index", secret) as plain:
        data = plain.read()
    return load_index(data)


BINLOG_DIR = "/var/lib/mysql"
TABLE_NAME = re.compile(r"^[A-Za-z0-9_$]{1,64}$")


@dataclass
class Increment:
    info: DumpInfo
    logs: list[str]


@dataclass(frozen=True)
class RestoreMark:
    """One in-place restore of a database, as db_restore_mark.sh keeps it on the database server."""

    id: str
    at: datetime
    backup_id: str


def restore_marks(conn: Connection, db: str) -> list[RestoreMark]:
    """The in-place restores of database DB on this host's server, oldest first."""
    out = run(conn, ["sh", "-c", script("db_restore_mark.sh"), "sh", BINLOG_DIR, db, "show"]).stdout
    marks = []
    for line in out.splitlines():
        cells = line.split()
        if len(cells) == 3 and catalog.INSTANCE_ID.match(cells[0]):
            with contextlib.suppress(ValueError):
                marks.append(RestoreMark(cells[0], datetime.fromisoformat(cells[1]).astimezone(UTC), cells[2]))
    return marks


def mark_restore(conn: Connection, db: str, backup_id: str) -> RestoreMark:
    """Record, before the swap, that database DB is being restored in place from BACKUP_ID."""
    at = datetime.now(UTC).replace(microsecond=0)
    out = run(conn, ["sh", "-c", script("db_restore_mark.sh"), "sh", BINLOG_DIR, db, "add",
                     at.strftime("%Y-%m-%dT%H:%M:%S+00:00"), catalog.check_backup_id(backup_id)]).stdout.split()
    return RestoreMark(out[0], at, backup_id)


def database_instance(conn: Connection) -> str:
    """The id of the host's database server (made on first use, kept in its data folder)."""
    found = run(conn, ["sh", "-c", script("db_instance.sh"), "sh", BINLOG_DIR]).stdout.strip()
    if not catalog.INSTANCE_ID.match(found):
        raise RuntimeError(f"the database server's instance id is not a UUID: {found[:80]!r}")
    return found


def snapshot_increment(conn: Connection, db: str, previous: BackupManifest, instance: str) -> Increment | str:
    """The database part of an incremental backup: a consistent snapshot's binary-log position and exact
    row counts (START TRANSACTION WITH CONSISTENT SNAPSHOT: no lock), and the logs from the parent's
    position to it. A sentence saying why not (then the database is dumped whole) when that cannot be."""
    if not previous.binlog_file or previous.binlog_position is None:
        return "the previous backup has no binary-log position: the database is dumped whole"
    if previous.database_instance is None:
        return "the previous backup does not name its database server: the database is dumped whole"
    if previous.database_instance != instance:
        return ("the previous backup was taken from another database server (a reinstalled server or another "
                "host): its binary-log position means nothing here, so the database is dumped whole")
    query = ["mariadb", "--batch", "--skip-column-names"]
    tables = run(conn, query, stdin=(
        f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{db}' "
        "AND table_type = 'BASE TABLE' ORDER BY table_name;\n")).stdout.split()
    if not all(TABLE_NAME.match(t) for t in tables):
        return "a table name needs quoting this check does not do: the database is dumped whole"
    counts = "".join(f"SELECT 'rows', '{t}', COUNT(*) FROM `{db}`.`{t}`;\n" for t in tables)
    out = run(conn, query, stdin=(
        "START TRANSACTION WITH CONSISTENT SNAPSHOT;\nSHOW STATUS LIKE 'binlog_snapshot_file';\n"
        f"SHOW STATUS LIKE 'binlog_snapshot_position';\n{counts}COMMIT;\nSHOW BINARY LOGS;\n")).stdout
    info, logs = DumpInfo(), []
    for line in out.splitlines():
        cells = line.split("\t")
        name = cells[0].lower()  # MariaDB prints Binlog_snapshot_file
        if name == "binlog_snapshot_file" and len(cells) == 2:
            info.binlog_file = cells[1]
        elif name == "binlog_snapshot_position" and len(cells) == 2 and cells[1].isdigit():
            info.binlog_position = int(cells[1])
        elif cells[0] == "rows" and len(cells) == 3 and cells[2].isdigit():
            info.table_rows[cells[1]] = int(cells[2])
        elif len(cells) >= 2 and cells[0].startswith(previous.binlog_file.rsplit(".", 1)[0] + "."):
            logs.append(cells[0])
    if not info.binlog_file or info.binlog_position is None:
        return "the binary log is off: the database is dumped whole"
    if previous.binlog_file not in logs:
        return (f"binary log {previous.binlog_file} (the previous backup's position) is no longer on the host: "
                "the database is dumped whole")
    wanted = [name for name in logs if previous.binlog_file <= name <= info.binlog_file]
    return Increment(info, wanted)


def take_backup(conn: Connection, site: SiteConfig, store: ObjectStore, *, secret: Optional[str] = None,
                full_every_days: int = 7, host: str = "", now: Optional[datetime] = None,
                force_full: bool = False) -> BackupResult:
    started = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    t0 = time.monotonic()
    backup_id = catalog.new_backup_id(started)
    while store.list(catalog.backup_prefix(site.name, backup_id)):  # ids are unique, even a second apart
        started += timedelta(seconds=1)
        backup_id = catalog.new_backup_id(started)
    instance = database_instance(conn)
    marks = restore_marks(conn, site.db_name)
    restore_mark = marks[-1].id if marks else None
    previous, why = (None, "full backup asked for") if force_full else _previous_for_incremental(
        store, site.name, started, full_every_days, secret, restore_mark)
    notes = [why]
    prev_index: Optional[list[Entry]] = None
    if previous is not None:
        try:
            prev_index = read_index(store, previous, secret)
        except (BrokenPart, StorageError, DecryptionError) as exc:
            previous, prev_index = None, None
            notes.append(f"the previous backup's index could not be read ({exc}): full backup instead")

    inventory = _bytes_of(conn, ["sh", "-c", script("backup_inventory.sh"), "sh", site.web_root])
    version, entries = parse_inventory(inventory)
    plan = plan_files(entries, prev_index, backup_id)
    parts: list[ManifestPart] = []
    meta = {"site": site.name, "backup": backup_id}

    increment = snapshot_increment(conn, site.db_name, previous, instance) if previous is not None else None
    if previous is not None and isinstance(increment, str):
        notes.append(increment)
        increment = None
    database_key = catalog.part_key(site.name, backup_id, "database", bool(secret))

    def database_part() -> tuple[ManifestPart, DumpInfo]:
        if increment is not None:  # the binary logs since the parent's snapshot, up to this one's
            with remote_reader(conn, ["bash", "-c", script("backup_archive.sh"), "bash", BINLOG_DIR],
                               stdin=nul_list(increment.logs)) as logs:
                return upload_part(store, database_key, "database", logs, secret, meta), increment.info
        with remote_reader(conn, ["bash", "-c", script("backup_dump.sh"), "bash", site.db_name]) as dump:
            part = upload_part(store, database_key, "database", dump, secret, meta)
            return part, parse_dump_report(dump.raw.stderr)

    def files_part() -> tuple[ManifestPart, dict]:
        # the archive is read back as it streams past, so the index holds what it carried
        with remote_reader(conn, ["bash", "-c", script("backup_archive.sh"), "bash", site.web_root],
                           stdin=nul_list(plan.to_read)) as files:
            digest = TarDigest(files)
            try:
                part = upload_part(store, catalog.part_key(site.name, backup_id, "files", bool(secret)),
                                   "files", io.BufferedReader(digest, buffer_size=COPY_CHUNK), secret, meta)
                return part, digest.result()
            finally:
                digest.close()  # a failed upload ends the reader thread too

    # The dump and the file archive stream side by side (two channels of the one SSH connection): the host's
    # disk, its CPU and the upload overlap instead of waiting on each other. Either failing fails the backup.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="pf-backup") as pool:
        database_future, files_future = pool.submit(database_part), pool.submit(files_part)
        database, info = database_future.result()
        files, members = files_future.result()
        parts += [database, files]
    index = carried(plan.index, backup_id, members)
    config_paths = [p.lstrip("/") for p in (site.nginx_vhost_path, site.php_pool_path, site.wp_config_path)]
    with remote_reader(conn, ["bash", "-c", script("backup_archive.sh"), "bash", "/"],
                       stdin=nul_list(config_paths)) as config:
        parts.append(upload_part(store, catalog.part_key(site.name, backup_id, "config", bool(secret)),
                                 "config", config, secret, meta))
    index_bytes = zstandard.ZstdCompressor(level=3).compress(dump_index(index))
    parts.append(upload_part(store, catalog.part_key(site.name, backup_id, "index", bool(secret)),
                             "index", io.BytesIO(index_bytes), secret, meta))

    source_bytes = sum(e.size for e in entries if e.type == "f")
    manifest = BackupManifest(
        site=site.name, backup_id=backup_id, kind="incremental" if previous else "full",
        parent_id=previous.backup_id if previous else None, started_at=started,
        ended_at=max(datetime.now(UTC).replace(microsecond=0), started), wordpress_version=version, parts=parts,
        table_rows=info.table_rows, host=host, database=site.db_name, binlog_file=info.binlog_file,
        binlog_position=info.binlog_position, database_instance=instance,
        database_from="binlog" if increment else "dump",
        binlog_start_file=previous.binlog_file if increment else None,
        binlog_start_position=previous.binlog_position if increment else None,
        parent_sha256=previous.manifest_sha256() if previous else None,
        restore_mark=restore_mark, files_total=len(index), files_changed=len(plan.to_read),
        bytes_read=plan.bytes_to_read, source_bytes=source_bytes,
    )
    manifest = catalog.write_manifest(store, manifest, secret, metadata=meta)  # MAC'd with a key
    return BackupResult(manifest, round(time.monotonic() - t0, 2), sum(p.size for p in parts),
                        previous.backup_id if previous else None, notes)


# --- reading parts ------------------------------------------------------------------------------------


class _CheckedObject(io.RawIOBase):
    """Plaintext of a stored object; at end of stream the stored bytes' sha256 and size are checked
    against `expected` (a part of a manifest, or a shipped binary log's record)."""

    def __init__(self, store: ObjectStore, expected: ManifestPart, what: str, secret: Optional[str],
                 *, expand: bool = False) -> None:
        super().__init__()
        if expected.encrypted and not secret:
            raise InvalidInput(f"{what} is encrypted: configure its encryption key")
        self._what, self._expected = f"{what} ({expected.key})", expected
        try:
            raw = store.open_read(expected.key)
        except StorageError as exc:
            raise BrokenPart(f"{self._what} cannot be read: {exc}") from None
        self._raw = raw
        self._hash = HashingReader(raw)
        stream: IO[bytes] = io.BufferedReader(self._hash, buffer_size=COPY_CHUNK)
        try:
            if expected.encrypted:
                stream = io.BufferedReader(DecryptingReader(stream, secret, what=self._what, aad=expected.key,
                                                            store=store), buffer_size=COPY_CHUNK)
            self._plain = zstandard.ZstdDecompressor().stream_reader(stream, read_size=COPY_CHUNK) if expand \
                else stream
        except DecryptionError as exc:
            raise BrokenPart(str(exc)) from None
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        try:
            data = self._plain.read(len(b))
        except DecryptionError as exc:
            raise BrokenPart(str(exc)) from None
        except zstandard.ZstdError as exc:
            raise BrokenPart(f"{self._what} does not decompress: {exc}") from None
        if not data:
            self.check()
            return 0
        b[:len(data)] = data
        return len(data)

    def check(self) -> None:
        if self._checked:
            return
        while self._hash.read(COPY_CHUNK):  # whatever the consumer did not read still counts
            pass
        problem = self._expected.mismatch(self._hash.sha256, self._hash.size, self._what)
        if problem:
            raise BrokenPart(problem)
        self._checked = True

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._raw.close()
        super().close()


def open_part(store: ObjectStore, manifest: BackupManifest, name: str, secret: Optional[str]) -> io.BufferedReader:
    """A readable plaintext stream of a part (zstd-compressed for all but the index, which is expanded);
    raises BrokenPart when the stored bytes do not match the manifest, at the latest at end of stream."""
    part = manifest.part(name)
    if part is None:
        raise BrokenPart(f"backup {manifest.backup_id!r} of {manifest.site} has no {name} part")
    what = f"part {name!r} of backup {manifest.backup_id!r}"
    return io.BufferedReader(_CheckedObject(store, part, what, secret, expand=name == "index"), buffer_size=COPY_CHUNK)


# --- restoring ---------------------------------------------------------------------------------------


def _db_names(live: str) -> tuple[str, str]:
    return dbnames.staging_names(live)  # pf_stage_LIVE, pf_old_LIVE: never a valid site name


def load_database(conn: Connection, store: ObjectStore, manifest: BackupManifest, secret: Optional[str],
                  into: str) -> dict[str, int]:
    """Load the backup's database into `into` (created empty): the newest dump of its chain, then the binary
    logs of every later increment; check each part and, at the end, every table's rows."""
    dbnames.check_droppable(into, dbnames.protected_databases())  # restore_db.sh drops and re-creates it
    chain = catalog.chain(store, manifest.site, manifest, secret=secret)
    base = max(i for i, m in enumerate(chain) if m.database_from == "dump")
    try:
        with open_part(store, chain[base], "database", secret) as plain:
            pipe_to_remote(conn, ["bash", "-c", script("restore_db.sh"), "bash", into], plain)
        for member in chain[base + 1:]:
            replay_increment(conn, store, member, secret, into)
    except BaseException:
        drop_database(conn, into)
        raise
    counts = parse_counts(run(conn, ["bash", "-c", script("db_counts.sh"), "bash", into]).stdout)
    problems = compare_rows(manifest.table_rows, counts, f"the restored copy of backup {manifest.backup_id!r}")
    if problems:
        drop_database(conn, into)
        raise BrokenPart("part 'database' restored with the wrong rows: " + "; ".join(problems[:5]))
    return counts


def replay_increment(conn: Connection, store: ObjectStore, member: BackupManifest, secret: Optional[str],
                     into: str) -> None:
    """Apply one incremental backup's binary logs (parent's position to its own) to database `into`."""
    part = member.part("database")
    workdir = binlog_staging(conn, 10 * (part.size if part else 0))
    try:
        with open_part(store, member, "database", secret) as plain:
            pipe_to_remote(conn, ["bash", "-c", script("restore_extract.sh"), "bash", f"{workdir}/logs"], plain)
        run(conn, ["bash", "-c", script("binlog_replay.sh"), "bash", member.database or member.site, into,
                   str(member.binlog_start_position), f"pos:{member.binlog_position}", f"{workdir}/logs"])
    finally:
        run(conn, ["rm", "-rf", "--", workdir], check=False)


STAGING_ROOT = "/var/lib/pressfleet"  # root's own: binary logs are staged on disk here, never in /run (RAM)


def make_staging(conn: Connection, parent: str, prefix: str, need: int = 0) -> str:
    """A fresh root-only folder (mktemp -d) in PARENT, a folder owned by root; refuses when PARENT's file
    system has less than NEED bytes free."""
    return run(conn, ["sh", "-c", script("staging_dir.sh"), "sh", parent, prefix, str(max(0, int(need)))]
               ).stdout.strip()


def binlog_staging(conn: Connection, need: int = 0) -> str:
    run(conn, ["install", "-d", "-m", "700", "-o", "root", "-g", "root", STAGING_ROOT])
    return make_staging(conn, STAGING_ROOT, "binlogs", need + (64 << 20))


def tree_listing(conn: Connection, base: str, hashes: bool) -> dict[str, tuple[str, int, str]]:
    """Every entry of BASE but wp-admin and wp-includes: path -> (type, size, sha256 or "")."""
    return parse_tree_listing(_bytes_of(conn, ["sh", "-c", script("restore_tree.sh"), "sh", base,
                                               "1" if hashes else "0"]))


def drop_database(conn: Connection, name: str) -> None:
    """Drop one of pressfleet's own staging databases; never a saved site's or one a site on the host uses."""
    dbnames.check_droppable(name, dbnames.protected_databases())
    run(conn, ["bash", "-c", script("db_drop.sh"), "bash", name], check=False)


def swap_tables(conn: Connection, live: str, staging: str, tables: Iterable[str], *, all_tables: bool) -> str:
    _, old = _db_names(live)
    protected = dbnames.protected_databases()
    for name in (staging, old):  # db_swap.sh drops both
        dbnames.check_droppable(name, protected)
    names = "\n".join(tables) + "\n"
    return run(conn, ["bash", "-c", script("db_swap.sh"), "bash", live, staging, old,
                      "ALL" if all_tables else "SOME"], stdin=names).stdout.strip()


def extract_files(conn: Connection, store: ObjectStore, chain: list[BackupManifest], wanted: list[Entry],
                  secret: Optional[str], staging: str) -> list[str]:
    """Extract the `wanted` entries into `staging`/tree, each from the archive of the chain member that
    holds it (oldest first). STAGING is a root-only folder from make_staging: nothing else writes there,
    and after each archive every link in the tree must be one the index lists (restore_extract.sh), so
    no later archive is written through a link."""
    tree = f"{staging}/tree"
    links = nul_list(e.path for e in wanted if e.type == "l")
    run(conn, ["sh", "-c", 'umask 077 && cat > "$1"', "sh", f"{staging}/links"], stdin=links)
    used = []
    for member in chain:
        members = [e.path for e in wanted if e.holder == member.backup_id]
        if not members:
            continue
        run(conn, ["sh", "-c", 'umask 077 && cat > "$1"', "sh", f"{staging}/members"], stdin=nul_list(members))
        with open_part(store, member, "files", secret) as plain:
            pipe_to_remote(conn, ["bash", "-c", script("restore_extract.sh"), "bash", tree, f"{staging}/members",
                                  f"{staging}/links"], plain)
        used.append(member.backup_id)
    run(conn, ["mkdir", "-p", "--", tree])
    return used


def check_staged(conn: Connection, tree: str, wanted: list[Entry], backup_id: str, *, hashes: bool) -> int:
    """Every wanted entry is in TREE with its type and size (and, with HASHES, its sha256) as the backup's
    index says; raises BrokenPart naming the first few that are not. Returns how many files were hashed."""
    found = tree_listing(conn, tree, hashes)
    extra = ("wp-content",) if hashes else ()
    problems = compare_tree(wanted, found, extra_under=extra)
    if problems:
        raise BrokenPart(f"part 'files' of backup {backup_id!r} did not restore as its index says: "
                         + "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))
    return sum(1 for e in wanted if e.type == "f" and e.sha256)


def finish_files(conn: Connection, base: str, tree: str, wanted: list[Entry], subdirs: list[str]) -> str:
    """Swap the restored SUBDIRS of TREE into BASE (WEBROOT: each of the web root's own names the backup
    holds, one by one; core and anything else at the web root stay as they are)."""
    names: list[str] = []
    for sub in subdirs:
        names += top_level(select(wanted, (WEBROOT,))) if sub == WEBROOT else [sub]
    return run(conn, ["bash", "-c", script("restore_files_finish.sh"), "bash", base, tree, *names],
               stdin=nul_list(e.path for e in wanted)).stdout.strip()


def parse_parts(parts: Iterable[str]) -> tuple[bool, list[str], list[str]]:
    """(database, tables, file subdirs) from parts such as database, uploads, themes, plugins, files,
    config, table:wp_posts. Refuses unknown parts before anything runs."""
    database, tables, subdirs = False, [], []
    for raw in parts:
        part = str(raw).strip()
        if part.startswith("table:"):
            table = part[len("table:"):]
            if not table or any(c in table for c in "`\n\0/") or len(table) > 64:
                raise InvalidInput(f"{part!r} does not name a table (table:wp_posts)")
            tables.append(table)
        elif part == "database":
            database = True
        elif part == "files":
            subdirs += ["wp-content", WEBROOT]
        elif part in FILE_PARTS:
            subdirs.append(FILE_PARTS[part])
        elif part == "config":
            raise InvalidInput("the config part (vhost, pool, wp-config) is kept for reference; provisioning renders "
                               "those files, so restore it by hand from the archive if you need it")
        else:
            raise InvalidInput(f"unknown part {part!r}: use database, files, uploads, themes, plugins, webroot "
                               "or table:NAME")
    if "wp-content" in subdirs:
        subdirs = ["wp-content"] + ([WEBROOT] if WEBROOT in subdirs else [])
    subdirs = list(dict.fromkeys(subdirs))
    if not (database or tables or subdirs):
        raise InvalidInput("nothing to restore: name at least one part")
    return database, tables, subdirs


@dataclass
class RestoreResult:
    backup_id: str
    restored: list[str]
    seconds: float
    rows: dict[str, int] = field(default_factory=dict)
    chain: list[str] = field(default_factory=list)
    binlog_events_until: Optional[str] = None


def restore(conn: Connection, site: SiteConfig, store: ObjectStore, manifest: BackupManifest,
            secret: Optional[str], parts: Iterable[str] = ("database", "files"),
            until: Optional[datetime] = None) -> RestoreResult:
    """Restore parts of a backup onto a host where the site is provisioned (same host or another).

    With `until`, the binary logs that roll the database forward are staged (and their chain checked)
    before anything else happens: a gap or logs that stop short are refused with nothing changed.
    Files are extracted into a root-only staging folder and checked against the index (type and size)
    before they are swapped in. An in-place database restore is recorded on the database server first,
    so the next backup is a full one."""
    database, tables, subdirs = parse_parts(parts)
    t0 = time.monotonic()
    chain = catalog.chain(store, site.name, manifest, secret=secret)
    restored: list[str] = []
    rows: dict[str, int] = {}
    staging_db, _ = _db_names(site.db_name)
    logs: Optional[StagedLogs] = None
    staging: Optional[str] = None
    try:
        if until is not None and (database or tables):
            logs = stage_binlogs(conn, store, site, manifest, secret, until)
        if subdirs:  # files first: the slow part, and nothing live changes until every part checked out
            wanted = select(read_index(store, manifest, secret), tuple(subdirs))
            need = sum(e.size for e in wanted if e.type == "f")
            staging = make_staging(conn, site.home, "pfrestore", need + need // 10)
            extract_files(conn, store, chain, wanted, secret, staging)
            check_staged(conn, f"{staging}/tree", wanted, manifest.backup_id, hashes=False)
        if database or tables:
            rows = load_database(conn, store, manifest, secret, staging_db)
            if logs is not None:
                try:
                    run(conn, ["bash", "-c", script("binlog_replay.sh"), "bash", site.db_name, staging_db,
                               str(manifest.binlog_position), until.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                               logs.folder, *logs.names])
                except BaseException:
                    drop_database(conn, staging_db)
                    raise
            swap = list(rows) if database else tables
            missing = [t for t in swap if t not in rows]
            if missing:
                drop_database(conn, staging_db)
                raise InvalidInput(f"backup {manifest.backup_id!r} has no table {missing[0]!r}")
            mark_restore(conn, site.db_name, manifest.backup_id)  # before the swap: the next backup is full
            swap_tables(conn, site.db_name, staging_db, swap, all_tables=database)  # drops staging afterwards
            restored += ["database"] if database else [f"table:{t}" for t in tables]
        if subdirs:
            finish_files(conn, site.web_root, f"{staging}/tree", wanted, subdirs)
            from pressfleet.ssh.converge import ensure_webread  # nginx reads restored files through ACLs too (tasks.nginx)
            ensure_webread(conn, "www-data", site.home, site.web_root)
            restored += ["webroot" if s == WEBROOT else s for s in subdirs]
    finally:
        for folder in (staging, logs.folder if logs else None):
            if folder:
                run(conn, ["rm", "-rf", "--", folder], check=False)
    if database:
        # cached pages and objects describe the old content
        run(conn, ["sh", "-c", "rm -rf /var/cache/nginx/pressfleet/* 2>/dev/null; "
                   "redis-cli -n \"$1\" FLUSHDB >/dev/null 2>&1 || true", "sh", str(site.redis_database)], check=False)
    return RestoreResult(manifest.backup_id, restored, round(time.monotonic() - t0, 2), rows,
                         [m.backup_id for m in chain], until.isoformat() if until else None)


# --- binary logs (point-in-time recovery) -----------------------------------------------------------------


def binlog_key(site: str, instance: Optional[str], name: str, encrypted: bool) -> str:
    if not name.replace(".", "").replace("-", "").replace("_", "").isalnum():
        raise InvalidInput(f"{name!r} is not a binary log name")
    return catalog.binlog_prefix(site, instance) + name + ".zst" + (catalog.ENC_SUFFIX if encrypted else "")


def shipped_binlogs(store: ObjectStore, site: str, instance: Optional[str],
                    secret: Optional[str] = None, *, strict: bool = True) -> dict[str, ManifestPart]:
    """One database server's binary logs in storage, by name. A log counts once its record (sha256, size)
    is written, after its upload: a cut-off upload is shipped again. With a key, a record that does not
    authenticate is refused (catalog.Unauthentic), or with `strict` off not counted (so it is shipped again)."""
    out = {}
    for keys in catalog.binlog_objects(store, site).get(instance, {}).values():
        # the log and its record (sorted last): a log whose object or record is gone is not shipped
        if len(keys) >= 2 and keys[-1].endswith(".json") and not keys[0].endswith(".json"):
            try:
                part = catalog.read_binlog_record(store, keys[-1], secret)
            except catalog.Unauthentic:
                if strict:
                    raise
                continue
            out[part.name] = part
    return out


def ship_binlogs(conn: Connection, site: SiteConfig, store: ObjectStore, secret: Optional[str]) -> dict:
    """Close the current binary log and copy every closed one storage lacks (zstd, encrypted if set)."""
    on = run(conn, ["mariadb", "--batch", "--skip-column-names"], stdin="SELECT @@log_bin;\n").stdout.strip()
    if on != "1":
        raise InvalidInput("the binary log is off on this host: re-run provisioning (mariadb) to switch it on")
    listing = run(conn, ["mariadb", "--batch", "--skip-column-names"],
                  stdin="FLUSH BINARY LOGS;\nSHOW BINARY LOGS;\n").stdout.split("\n")
    names = [line.split("\t")[0] for line in listing if line.strip()]
    closed = names[:-1]
    instance = database_instance(conn)
    have = shipped_binlogs(store, site.name, instance, secret, strict=False)  # a bad record: shipped again
    shipped, total = [], 0
    for name in closed:
        if name in have:
            continue
        key = binlog_key(site.name, instance, name, bool(secret))
        with remote_reader(conn, ["sh", "-c", 'zstd -q -3 -c -- "/var/lib/mysql/$1"', "sh", name]) as src:
            part = upload_part(store, key, name, src, secret, {"site": site.name, "binlog": name})
        catalog.write_binlog_record(store, part, secret)  # MAC'd with a key
        shipped.append(name)
        total += part.size
    return {"shipped": shipped, "bytes": total, "closed": len(closed), "already": len(closed) - len(shipped),
            "server": instance}


@dataclass
class StagedLogs:
    folder: str  # root-only, on disk (STAGING_ROOT)
    names: list[str]  # the logs to replay, in order
    reach: str  # how far they reach, for the artifact


def stage_binlogs(conn: Connection, store: ObjectStore, site: SiteConfig, manifest: BackupManifest,
                  secret: Optional[str], until: datetime) -> StagedLogs:
    """Stage on the host the shipped binary logs that roll `manifest` forward to `until`, after checking
    they can: on the site's own database server the open log is closed and shipped first; the chain
    from the backup's log must have no gap up to the first log opened at or after `until` (or the last
    one must hold an event at or after it); no in-place restore may lie between the backup and `until`.
    Refuses (binlogchain.ChainBroken, one sentence) with nothing changed. Each log's sha256 and size are
    checked as it is read, its staged size against its zstd frame, and free space before it is written."""
    if not manifest.binlog_file or manifest.binlog_position is None:
        raise InvalidInput(f"backup {manifest.backup_id!r} has no binary log position (taken with the binary log "
                           "off): it cannot be rolled forward")
    until = until.astimezone(UTC)
    if until < manifest.started_at:
        raise InvalidInput(f"{until.isoformat()} is before backup {manifest.backup_id!r} was taken")
    if database_instance(conn) == manifest.database_instance:  # the site's own server: its open log too
        crossed = [m for m in restore_marks(conn, site.db_name) if manifest.started_at <= m.at <= until]
        if crossed:
            raise binlogchain.ChainBroken(
                f"the database was restored in place at {crossed[0].at.isoformat()} (from backup "
                f"{crossed[0].backup_id}), between backup {manifest.backup_id!r} and {until.isoformat()}: the "
                "binary log does not hold that restore, so choose a backup taken after it; nothing was changed")
        ship_binlogs(conn, site, store, secret)
    logs = shipped_binlogs(store, site.name, manifest.database_instance, secret)
    run_, missing = binlogchain.consecutive(manifest.binlog_file, logs)
    folder = binlog_staging(conn)
    staged: list[str] = []
    try:
        for name in run_:
            with io.BufferedReader(_CheckedObject(store, logs[name], f"binary log {name}", secret),
                                   buffer_size=COPY_CHUNK) as plain:
                try:
                    size = zstandard.get_frame_parameters(plain.peek(32)[:32]).content_size
                except zstandard.ZstdError:
                    size = -1
                known = size if 0 < size < (1 << 62) else None
                out = pipe_to_remote(conn, ["sh", "-c", script("binlog_stage.sh"), "sh", f"{folder}/{name}",
                                            str((known or logs[name].size * 10) + (16 << 20)),
                                            str(known) if known else ""], plain)
            created = datetime.fromtimestamp(int(out.split()[-1]), UTC)
            if staged and binlogchain.stop_after(created, until):
                run(conn, ["rm", "-f", "--", f"{folder}/{name}"])
                return StagedLogs(folder, staged, f"{staged[-1]} (the next log opened at {created.isoformat()})")
            staged.append(name)
        text = run(conn, ["sh", "-c", script("binlog_times.sh"), "sh", f"{folder}/{staged[-1]}", "1"]).stdout
        last_event = _binlog_time(text)
        problem = binlogchain.refusal(until, staged[-1], last_event, missing)
        if problem:
            raise binlogchain.ChainBroken(problem)
        return StagedLogs(folder, staged, f"{staged[-1]} (its last event at {last_event.isoformat()})")
    except BaseException:
        run(conn, ["rm", "-rf", "--", folder], check=False)
        raise


def _binlog_time(text: str) -> Optional[datetime]:
    """The `last YYMMDD HH:MM:SS` line of binlog_times.sh (UTC), None when the log holds no dated event."""
    for line in text.splitlines():
        cells = line.split()
        if len(cells) == 3 and cells[0] == "last":
            with contextlib.suppress(ValueError):
                return datetime.strptime(f"{cells[1]} {cells[2]}", "%y%m%d %H:%M:%S").replace(tzinfo=UTC)
    return None


def apply_binlogs(conn: Connection, store: ObjectStore, site: SiteConfig, manifest: BackupManifest,
                  secret: Optional[str], into: str, until: datetime) -> int:
    """Replay the site's database changes from the backup's snapshot up to `until` into database `into`
    (stage_binlogs, then binlog_replay.sh); returns how many logs were read."""
    logs = stage_binlogs(conn, store, site, manifest, secret, until)
    try:
        run(conn, ["bash", "-c", script("binlog_replay.sh"), "bash", site.db_name, into,
                   str(manifest.binlog_position), until.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                   logs.folder, *logs.names])
        return len(logs.names)
    finally:
        run(conn, ["rm", "-rf", "--", logs.folder], check=False)


# --- restore-test ------------------------------------------------------------------------------------------

SCRATCH_ROOT = "/srv/pressfleet-restore-test"


@dataclass
class RestoreTestResult:
    backup_id: str
    passed: bool
    seconds: float
    checks: list[str]
    failure: Optional[str] = None
    home_status: Optional[int] = None
    home_seconds: Optional[float] = None


def restore_test(conn: Connection, site: SiteConfig, store: ObjectStore, manifest: BackupManifest,
                 secret: Optional[str], *, release_url: str, release_sha256: Optional[str],
                 keep: bool = False) -> RestoreTestResult:
    """Restore a backup into a scratch database and folder on this host and prove it works.

    Checks every part's sha256 and size, every table's rows, and that WordPress boots from the copy
    (a 200 home page rendered by a theme, served by PHP's built-in server on loopback). The scratch
    database, its user and folder are removed afterwards unless `keep`. Raises BrokenPart naming the
    broken part; other failures raise as they are.
    """
    from pressfleet.render import configs as render
    from pressfleet.fleet.siteconfig import WpSalts

    t0 = time.monotonic()
    tag = secrets.token_hex(3)
    scratch = dbnames.scratch_name(tag)
    password = secrets.token_urlsafe(24)
    base = f"{SCRATCH_ROOT}/{site.name}-{tag}"
    port = 20000 + secrets.randbelow(20000)
    checks: list[str] = []
    runner_made = False  # the copy runs as a throwaway user of its own, never www-data (which reads no site)
    try:
        run(conn, ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                   "--shell", "/usr/sbin/nologin", "--", scratch])
        runner_made = True
        run(conn, ["install", "-d", "-m", "755", SCRATCH_ROOT])
        run(conn, ["sh", "-c", script("install_wordpress_release.sh"), "sh", scratch, base, release_url,
                   release_sha256 or "", "uploads"], timeout=900)
        core = run(conn, ["sh", "-c", "sed -n \"s/^\\$wp_version = '\\(.*\\)';/\\1/p\" \"$1\"", "sh",
                          f"{base}/htdocs/wp-includes/version.php"]).stdout.strip()
        if core != manifest.wordpress_version:
            checks.append(f"note: WordPress core {core} from the release archive, the backup was taken on "
                          f"{manifest.wordpress_version}")
        chain = catalog.chain(store, site.name, manifest, secret=secret)
        wanted = read_index(store, manifest, secret)
        need = sum(e.size for e in wanted if e.type == "f")
        stage = make_staging(conn, base, "restored", need + need // 10)
        used = extract_files(conn, store, chain, wanted, secret, stage)
        finish_files(conn, f"{base}/htdocs", f"{stage}/tree", wanted, ["wp-content", WEBROOT])
        run(conn, ["rm", "-rf", "--", stage])
        # every entry of the index is in the copy, with its type, size and (files) sha256
        hashed = check_staged(conn, f"{base}/htdocs", wanted, manifest.backup_id, hashes=True)
        # The archive keeps the site's owners (root and the site's group); the copy runs as its own user.
        run(conn, ["chown", "-R", "--no-dereference", f"root:{scratch}", "--", f"{base}/htdocs/wp-content"])
        run(conn, ["chmod", "-R", "g+rX,o-rwx", "--", f"{base}/htdocs/wp-content"])
        checks.append(f"files: {len(wanted)} entries restored from {len(used)} archive(s) "
                      f"({', '.join(used)}), each part's sha256 and size match; every entry of the index is in "
                      f"the copy with its type and size, {hashed} files with their sha256")
        rows = load_database(conn, store, manifest, secret, scratch)
        checks.append(f"database: {len(rows)} tables, {sum(rows.values())} rows, all as the manifest says")
        for name in ("config", "index"):
            if manifest.part(name):
                with open_part(store, manifest, name, secret) as plain:
                    drain(plain)
        checks.append("config and index parts: sha256 and size match")
        run(conn, ["mariadb", "--batch"], stdin=(
            "SET SESSION sql_log_bin = 0;\n"  # the password stays out of the binary log
            f"CREATE USER '{scratch}'@'localhost' IDENTIFIED BY '{password}';\n"
            f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER ON `{scratch}`.* "
            f"TO '{scratch}'@'localhost';\n"))
        config = render.render_restore_test_wp_config(
            site, db_name=scratch, db_user=scratch, db_password=password, salts=WpSalts.generate(),
            home_url=f"http://127.0.0.1:{port}", abspath=f"{base}/htdocs")
        run(conn, ["sh", "-c", 'umask 027 && cat > "$1" && chgrp "$2" "$1"', "sh", f"{base}/wp-config.php", scratch],
            stdin=config)
        booted = run(conn, ["sh", "-c", script("restore_test_boot.sh"), "sh", f"{base}/htdocs", str(port), scratch],
                     timeout=120).stdout.split()
        status, seconds, size, marker = int(booted[0]), float(booted[1]), int(booted[2]), booted[3] == "1"
        if status != 200 or not marker:
            raise BrokenPart(f"the restored site answered {status} ({size} bytes) on its home page"
                             f"{'' if marker else ', not a page WordPress rendered'}: the backup does not boot")
        checks.append(f"WordPress boots from the copy: home page 200 in {seconds * 1000:.0f} ms ({size} bytes)")
        return RestoreTestResult(manifest.backup_id, True, round(time.monotonic() - t0, 2), checks, None,
                                 status, seconds)
    finally:
        if not keep:
            run(conn, ["mariadb", "--batch"], stdin=f"DROP USER IF EXISTS '{scratch}'@'localhost';\n", check=False)
            with contextlib.suppress(Exception):  # cleanup: the run's own outcome is what is reported
                drop_database(conn, scratch)
            run(conn, ["rm", "-rf", "--", base], check=False)
        if runner_made and not keep:
            run(conn, ["userdel", "--", scratch], check=False)
