"""One site's events of a MariaDB binary log, the others blanked in place (pure: bytes in, bytes out).

A server's binary log holds every database's changes; what pressfleet stores for site A must hold A's alone.
`mariadb-binlog --database` filters only its SQL text output, which loses the log's positions and times that
point-in-time recovery and incremental backups cut on, so pressfleet filters the log itself: every event that
carries another database's data (its table maps and row events, its statements and their variables, every
row-annotation, which repeats a statement's text) is overwritten by an ignorable event of the same size
(type 28 with LOG_EVENT_IGNORABLE_F, zero body, its checksum recomputed), which mariadb-binlog and the server
skip; a transaction's COMMIT stays (no data; mariadb-binlog needs it), another database's name in it masked.
Positions, sizes, event times and the chain of logs are the server's own, so the filtered log is staged
and replayed exactly as a raw one (`binlog_replay.sh`: --start-position, --stop-datetime, --database).

Hand-written because no maintained Python library rewrites binary-log files (python-mysql-replication reads a
replication stream from a live server). The event layout is MariaDB's, as documented in its Knowledge Base
("Binary log event header", "Query_event", "Table_map_event", "Rows events").
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Iterable, Iterator

MAGIC = b"\xfebin"
HEADER = 19  # timestamp 4, type 1, server_id 4, event size 4, next position 4, flags 2
IGNORABLE_FLAG = 0x80  # LOG_EVENT_IGNORABLE_F
IGNORABLE = 28  # IGNORABLE_LOG_EVENT

QUERY, STOP, ROTATE, INTVAR, APPEND_BLOCK, DELETE_FILE, RAND, USER_VAR, FORMAT_DESCRIPTION, XID = (
    2, 3, 4, 5, 9, 11, 13, 14, 15, 16)
BEGIN_LOAD_QUERY, EXECUTE_LOAD_QUERY, TABLE_MAP, INCIDENT, HEARTBEAT, ROWS_QUERY = 17, 18, 19, 26, 27, 29
ANNOTATE_ROWS, BINLOG_CHECKPOINT, GTID, GTID_LIST, START_ENCRYPTION, QUERY_COMPRESSED = 160, 161, 162, 163, 164, 165
ROWS = {23, 24, 25, 30, 31, 32, 166, 167, 168, 169, 170, 171}  # write/update/delete, v1, v2, compressed
KEEP = {STOP, ROTATE, FORMAT_DESCRIPTION, XID, INCIDENT, HEARTBEAT, IGNORABLE, BINLOG_CHECKPOINT, GTID, GTID_LIST}
BLANK = {ANNOTATE_ROWS, ROWS_QUERY}  # a statement's text beside its row events: never needed to replay
STATEMENTS = {QUERY, EXECUTE_LOAD_QUERY, QUERY_COMPRESSED}  # carry their default database
BEFORE_STATEMENT = {INTVAR, RAND, USER_VAR, BEGIN_LOAD_QUERY, APPEND_BLOCK, DELETE_FILE}  # belong to the next one
TRANSACTION_CONTROL = {b"BEGIN", b"COMMIT", b"ROLLBACK"}
DUMMY_TABLE = 0xFFFFFF  # the table id of an empty row event that only ends a statement


class FilterError(Exception):
    """The log holds something this filter cannot judge (one sentence saying what); nothing is shipped."""


@dataclass
class _State:
    database: bytes
    checksum: bool = False
    post_header: bytes = b""  # post-header length per event type (index type - 1), from the format description
    ours: set[int] = field(default_factory=set)  # table ids mapped to the site's database
    pending: list[bytearray] = field(default_factory=list)  # events that belong to the next statement
    kept: int = 0
    blanked: int = 0


def _post_header_len(st: _State, kind: int, default: int) -> int:
    return st.post_header[kind - 1] if 0 < kind <= len(st.post_header) else default


def blank(event: bytearray, checksum: bool) -> bytearray:
    """The same event, same size, position and time, as an ignorable event with a zero body."""
    size = len(event)
    out = bytearray(event[:HEADER]) + bytearray(size - HEADER)
    out[4] = IGNORABLE
    out[17] |= IGNORABLE_FLAG
    return _checksummed(out, checksum and size >= HEADER + 4)


def _checksummed(event: bytearray, checksum: bool) -> bytearray:
    if checksum:
        event[-4:] = zlib.crc32(bytes(event[:-4])).to_bytes(4, "little")
    return event


def _statement_database(st: _State, event: bytearray, kind: int) -> tuple[bytes, bytes, int]:
    """(default database, statement text, where the database's name starts) of a Query-like event."""
    post = _post_header_len(st, kind, 13 if kind != EXECUTE_LOAD_QUERY else 26)
    body = HEADER
    db_len = event[body + 8]
    status_len = int.from_bytes(event[body + 11:body + 13], "little")
    db_at = body + post + status_len
    end = len(event) - (4 if st.checksum else 0)
    if db_at + db_len + 1 > end:
        raise FilterError(f"a statement event of {len(event)} bytes is shorter than its own fields")
    return bytes(event[db_at:db_at + db_len]), bytes(event[db_at + db_len + 1:end]), db_at


def _table_id(st: _State, event: bytearray, kind: int) -> int:
    width = 4 if _post_header_len(st, kind, 8) == 6 else 6
    return int.from_bytes(event[HEADER:HEADER + width], "little")


def _format_description(st: _State, event: bytearray) -> None:
    # binlog version 2, server version 50, create time 4, header length 1, post-header lengths, checksum alg 1, CRC 4
    body = event[HEADER:]
    if len(body) < 57 + 5:
        raise FilterError("the log's format description is too short to read")
    alg = body[-5]
    if alg not in (0, 1):
        raise FilterError(f"the log's checksum algorithm {alg} is not one pressfleet knows (off or CRC32)")
    st.checksum = alg == 1
    st.post_header = bytes(body[57:-5])


def _judge(st: _State, event: bytearray, position: int) -> list[bytearray]:
    kind = event[4]
    if kind == FORMAT_DESCRIPTION:
        _format_description(st, event)
        return [event]
    if kind == START_ENCRYPTION:
        raise FilterError("the binary log is encrypted on the server (encrypt_binlog): pressfleet cannot filter it")
    if kind in BEFORE_STATEMENT:
        st.pending.append(event)
        return []
    pending, st.pending = st.pending, []
    if kind in KEEP:
        return [blank(e, st.checksum) for e in pending] + [event]
    if kind in BLANK:
        return [blank(e, st.checksum) for e in pending] + [blank(event, st.checksum)]
    if kind in STATEMENTS:
        db, text, db_at = _statement_database(st, event, kind)
        if db == st.database:
            return pending + [event]
        if kind == QUERY and text.strip().upper() in TRANSACTION_CONTROL:
            # A group's COMMIT carries no data, and mariadb-binlog needs it to end the transaction its GTID event
            # began (whatever --database says): kept, another database's name masked (same length).
            event[db_at:db_at + len(db)] = b"_" * len(db)
            return [blank(e, st.checksum) for e in pending] + [_checksummed(event, st.checksum)]
        return [blank(e, st.checksum) for e in pending + [event]]
    if kind == TABLE_MAP:
        table = _table_id(st, event, kind)
        at = HEADER + _post_header_len(st, kind, 8)
        db = bytes(event[at + 1:at + 1 + event[at]])
        if db == st.database:
            st.ours.add(table)
            return [blank(e, st.checksum) for e in pending] + [event]
        st.ours.discard(table)
        return [blank(e, st.checksum) for e in pending + [event]]
    if kind in ROWS:
        table = _table_id(st, event, kind)
        keep = table in st.ours or table == DUMMY_TABLE
        return [blank(e, st.checksum) for e in pending] + [event if keep else blank(event, st.checksum)]
    raise FilterError(f"binary log event type {kind} (at position {position}) is not one pressfleet can filter "
                      "by database: the log is not shipped")


def site_events(chunks: Iterable[bytes], database: str) -> Iterator[bytes]:
    """The binary log read from CHUNKS (any sizes) with every event not of DATABASE blanked; the output has
    exactly the input's length. A log cut off inside an event (a still open log read up to its size) ends
    with that partial event blanked whole, never copied. Raises FilterError for a log it cannot judge."""
    st = _State(database=database.encode())
    buf = bytearray()
    position = 0
    started = False
    for chunk in chunks:
        buf += chunk
        if not started:
            if len(buf) < 4:
                continue
            if bytes(buf[:4]) != MAGIC:
                raise FilterError("not a binary log (no magic number)")
            yield bytes(buf[:4])
            del buf[:4]
            position, started = 4, True
        out, at = bytearray(), 0
        while len(buf) - at >= HEADER:
            size = int.from_bytes(buf[at + 9:at + 13], "little")
            if size < HEADER:
                raise FilterError(f"a binary log event at position {position} claims {size} bytes")
            if len(buf) - at < size:
                break
            event = bytearray(buf[at:at + size])
            at += size
            for e in _judge(st, event, position):
                out += e
            position += size
        del buf[:at]  # once per chunk: the buffer is never shifted event by event
        if out:
            yield bytes(out)
    if not started:
        if buf:
            raise FilterError("not a binary log (no magic number)")
        return
    tail = bytearray()
    for e in st.pending:  # a statement's variables whose statement is not in this log
        tail += blank(e, st.checksum)
    if buf:
        tail += bytearray(len(buf))  # an event cut off by the read: zeros, none of its bytes
    if tail:
        yield bytes(tail)
