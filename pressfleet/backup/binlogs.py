"""MariaDB binary logs in backups: shipping closed logs to storage, staging them back on a host and replaying
one site's changes (point-in-time recovery, incremental backups' database parts).

What is stored for a site holds that site's database events alone (binlogfilter: every other database's
events are blanked in place, so positions and times still match the server's log)."""

from __future__ import annotations

import contextlib
import io
import re
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Iterator, Optional

import zstandard
from fabric import Connection

from pressfleet.backup import binlogchain, binlogfilter, catalog, sql
from pressfleet.backup.database import database_instance, restore_marks
from pressfleet.backup.manifest import BackupManifest, ManifestPart
from pressfleet.backup.parts import CheckedObject, open_part, upload_part
from pressfleet.backup.remote import binlog_staging, script
from pressfleet.backup.streams import COPY_CHUNK, ChunkReader, pipe_to_remote, remote_reader
from pressfleet.fleet.siteconfig import SiteConfig
from pressfleet.ssh.remote import run
from pressfleet.storage.base import ObjectStore
from pressfleet.validate import InvalidInput


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




LOG_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}\.[0-9]{6,}$")  # mariadb-bin.000042
# The first SIZE bytes of one of the server's logs, zstd over SSH (a log still open is read up to a position
# its writer has passed: a transaction boundary).
READ_LOG = 'head -c "$2" -- "$0/$1" | zstd -q -1 -c'


def site_events(conn: Connection, name: str, size: int, database: str) -> Iterator[bytes]:
    """The first SIZE bytes of the host's binary log NAME, other databases' events blanked
    (binlogfilter), as they are read; raises when the host has fewer."""
    if not LOG_NAME.match(name):
        raise InvalidInput(f"{name!r} is not a binary log name")
    if size < len(binlogfilter.MAGIC):
        raise RuntimeError(f"binary log {name}: no usable size ({size}) to read")
    with remote_reader(conn, ["sh", "-c", READ_LOG, sql.BINLOG_DIR, name, str(int(size))]) as raw:
        plain = zstandard.ZstdDecompressor().stream_reader(raw, read_size=COPY_CHUNK)
        seen = 0
        for chunk in binlogfilter.site_events(iter(lambda: plain.read(COPY_CHUNK), b""), database):
            seen += len(chunk)
            yield chunk
    if seen != size:
        raise RuntimeError(f"binary log {name} has {seen} bytes on the host, {size} were listed")


def site_log(conn: Connection, name: str, size: int, database: str) -> IO[bytes]:
    """One log as ship-binlogs stores it: the site's events (site_events), zstd with its size in the frame."""
    return zstandard.ZstdCompressor(level=3).stream_reader(ChunkReader(site_events(conn, name, size, database)),
                                                           size=size, read_size=COPY_CHUNK)


def site_logs_archive(conn: Connection, logs: list[tuple[str, int]], database: str) -> IO[bytes]:
    """An incremental backup's database part: a zstd tar of the (name, size) logs, each the site's events
    alone (what backup_archive.sh made of the raw logs before, so restore_extract.sh reads either)."""
    def tar() -> Iterator[bytes]:
        for name, size in logs:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = size, 0o640, int(datetime.now(UTC).timestamp())
            yield info.tobuf(format=tarfile.GNU_FORMAT)
            yield from site_events(conn, name, size, database)
            yield b"\0" * (-size % tarfile.BLOCKSIZE)
        yield b"\0" * (2 * tarfile.BLOCKSIZE)
    return zstandard.ZstdCompressor(level=3).stream_reader(ChunkReader(tar()), read_size=COPY_CHUNK)


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
    """Close the current binary log and copy every closed one storage lacks (zstd, encrypted if set), each with
    the site's database's events alone: every other database's are blanked in place (binlogfilter)."""
    on = run(conn, sql.QUERY, stdin=sql.LOG_BIN).stdout.strip()
    if on != "1":
        raise InvalidInput("the binary log is off on this host: re-run provisioning (mariadb) to switch it on")
    listing = run(conn, sql.QUERY, stdin=sql.FLUSH_AND_LIST_LOGS).stdout.split("\n")
    rows = [line.split("\t") for line in listing if line.strip()]
    sizes = {cells[0]: int(cells[1]) for cells in rows if len(cells) >= 2 and cells[1].isdigit()}
    closed = [cells[0] for cells in rows][:-1]
    instance = database_instance(conn)
    have = shipped_binlogs(store, site.name, instance, secret, strict=False)  # a bad record: shipped again
    shipped, total = [], 0
    for name in closed:
        if name in have:
            continue
        key = binlog_key(site.name, instance, name, bool(secret))
        if name not in sizes:
            raise RuntimeError(f"SHOW BINARY LOGS gave no size for {name}")
        with site_log(conn, name, sizes[name], site.db_name) as src:  # the site's own events alone
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
            with io.BufferedReader(CheckedObject(store, logs[name], f"binary log {name}", secret),
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


def replay_staged(conn: Connection, site: SiteConfig, manifest: BackupManifest, logs: StagedLogs, into: str,
                  until: datetime) -> None:
    """Replay the staged logs' events of the site's database, from the backup's position up to `until`,
    into database `into`."""
    run(conn, ["bash", "-c", script(sql.SCRIPTS["replay"]), "bash", site.db_name, into,
               str(manifest.binlog_position), until.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
               logs.folder, *logs.names])


def apply_binlogs(conn: Connection, store: ObjectStore, site: SiteConfig, manifest: BackupManifest,
                  secret: Optional[str], into: str, until: datetime) -> int:
    """Replay the site's database changes from the backup's snapshot up to `until` into database `into`
    (stage_binlogs, then binlog_replay.sh); returns how many logs were read."""
    logs = stage_binlogs(conn, store, site, manifest, secret, until)
    try:
        replay_staged(conn, site, manifest, logs, into, until)
        return len(logs.names)
    finally:
        run(conn, ["rm", "-rf", "--", logs.folder], check=False)

