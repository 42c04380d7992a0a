"""Taking a backup, streamed host -> SSH -> (encrypt) -> storage (no Prefect here: tasks/backup.py wraps it).

`take_backup`, in this order:
  1. the file listing (`backup_inventory.sh`) and, for an incremental, the previous backup's index;
  2. `database`: mariadb-dump of a consistent snapshot, zstd on the host, rows counted on the way; for an
     incremental, the site's own events of the binary logs from the parent's snapshot to a new consistent
     snapshot instead (binlogs.site_events: other databases' events blanked);
  3. `files`: a tar of the wp-content entries this backup holds (all of them for a full backup);
  4. `config`: the vhost, PHP pool and wp-config.php;
  5. `index`: the file index (which backup holds each entry);
  6. the manifest, last: until it exists the backup is not listed, so a run cut off anywhere leaves
     no backup that looks complete (and a re-run starts a new one).

Restoring is pressfleet.backup.restore, binary logs pressfleet.backup.binlogs, the restore-test
pressfleet.backup.restoretest; the SQL they run is in pressfleet.backup.sql.
"""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Optional

import zstandard
from fabric import Connection

from pressfleet.backup import catalog, sql
from pressfleet.backup.crypto import DecryptionError
from pressfleet.backup.binlogs import site_logs_archive
from pressfleet.backup.database import database_instance, restore_marks
from pressfleet.backup.dumpinfo import DumpInfo, parse_dump_report
from pressfleet.backup.index import Entry, carried, dump_index, nul_list, parse_inventory, plan_files
from pressfleet.backup.manifest import BackupManifest, ManifestPart
from pressfleet.backup.parts import BrokenPart, read_index, upload_part
from pressfleet.backup.remote import bytes_of, script
from pressfleet.backup.streams import COPY_CHUNK, TarDigest, remote_reader
from pressfleet.fleet.siteconfig import SiteConfig
from pressfleet.ssh.remote import run
from pressfleet.storage.base import ObjectStore, StorageError


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


@dataclass
class Increment:
    info: DumpInfo
    logs: list[tuple[str, int]]  # (name, bytes up to the snapshot) from the parent's log to the snapshot's


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
    tables = run(conn, sql.QUERY, stdin=sql.base_tables(db)).stdout.split()
    if not all(sql.TABLE_NAME.match(t) for t in tables):
        return "a table name needs quoting this check does not do: the database is dumped whole"
    out = run(conn, sql.QUERY, stdin=sql.consistent_snapshot(db, tables)).stdout
    info, logs, sizes = DumpInfo(), [], {}
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
            sizes[cells[0]] = int(cells[1]) if cells[1].isdigit() else -1
    if not info.binlog_file or info.binlog_position is None:
        return "the binary log is off: the database is dumped whole"
    if previous.binlog_file not in logs:
        return (f"binary log {previous.binlog_file} (the previous backup's position) is no longer on the host: "
                "the database is dumped whole")
    wanted = [name for name in logs if previous.binlog_file <= name <= info.binlog_file]
    # closed logs whole, the snapshot's own up to its position (a transaction boundary)
    return Increment(info, [(name, info.binlog_position if name == info.binlog_file else sizes[name])
                            for name in wanted])


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

    inventory = bytes_of(conn, ["sh", "-c", script("backup_inventory.sh"), "sh", site.web_root])
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
            with site_logs_archive(conn, increment.logs, site.db_name) as logs:  # the site's own events alone
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

