"""The database server on a host, as backups see it: its instance id, the in-place restores of a database,
and pressfleet's own staging databases (dropped and swapped only under their pf_* names)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Iterable

from fabric import Connection

from pressfleet.backup import catalog
from pressfleet.backup.remote import script
from pressfleet.backup.sql import BINLOG_DIR
from pressfleet.fleet import dbnames
from pressfleet.ssh.remote import run


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


def drop_database(conn: Connection, name: str) -> None:
    """Drop one of pressfleet's own staging databases; never a saved site's or one a site on the host uses."""
    dbnames.check_droppable(name, dbnames.protected_databases())
    run(conn, ["bash", "-c", script("db_drop.sh"), "bash", name], check=False)


def swap_tables(conn: Connection, live: str, staging: str, tables: Iterable[str], *, all_tables: bool) -> str:
    _, old = dbnames.staging_names(live)  # pf_old_LIVE: never a valid site name
    protected = dbnames.protected_databases()
    for name in (staging, old):  # db_swap.sh drops both
        dbnames.check_droppable(name, protected)
    names = "\n".join(tables) + "\n"
    return run(conn, ["bash", "-c", script("db_swap.sh"), "bash", live, staging, old,
                      "ALL" if all_tables else "SOME"], stdin=names).stdout.strip()

