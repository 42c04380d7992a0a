"""One site's binary-log events: what ship-binlogs and incremental backups store for site A holds A's alone.

The log in tests/unit/data/binlog_two_databases.bin was written by MariaDB 10.11.19 (Debian 12, binlog_format ROW,
CRC32 checksums) on a lab host: databases `sa` and `sb`, InnoDB and Aria tables, B's rows carrying the marker
`BMARKER`, an insert into sa.t made from a session whose default database was sb, a user variable of B's."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from pressfleet.backup import binlogfilter, sql
from pressfleet.backup.binlogfilter import FilterError, site_events
from pressfleet.paths import TEMPLATES

pytestmark = pytest.mark.unit

LOG = (Path(__file__).parent / "data" / "binlog_two_databases.bin").read_bytes()


def events(data: bytes) -> list[bytes]:
    out, at = [], 4
    while at < len(data):
        size = int.from_bytes(data[at + 9:at + 13], "little")
        out.append(data[at:at + size])
        at += size
    return out


def filtered(database: str, data: bytes = LOG, step: int = 1 << 16) -> bytes:
    return b"".join(site_events([data[i:i + step] for i in range(0, len(data), step)], database))


def test_the_raw_log_holds_both_sites_and_the_filtered_one_only_its_own():
    assert LOG.count(b"BMARKER") >= 4 and b"alpha-two" in LOG  # the fixture is what the test says
    a = filtered("sa")
    assert b"BMARKER" not in a and b"sb" not in a.replace(b"from-sb-session", b"")  # B's rows, names, variables
    assert b"alpha-one" in a and b"alpha-two-b" in a and b"alpha-three-from-sb-session" in a  # A's, whatever session
    b = filtered("sb")
    assert b"alpha" not in b and b"BMARKER-xyzzy" in b and b"BMARKER-aria" in b


def test_positions_times_and_checksums_are_the_servers_own():
    for database in ("sa", "sb", "nobody"):
        out = filtered(database)
        assert len(out) == len(LOG) and out[:4] == LOG[:4]
        before, after = events(LOG), events(out)
        assert [len(e) for e in before] == [len(e) for e in after]
        for raw, kept in zip(before, after):
            assert kept[:4] == raw[:4] and kept[5:17] == raw[5:17]  # time, server id, size, next position
            assert int.from_bytes(kept[-4:], "little") == zlib.crc32(kept[:-4])  # mariadb-binlog verifies these
            assert kept == raw or kept[4] == binlogfilter.IGNORABLE and kept[17] & binlogfilter.IGNORABLE_FLAG \
                or raw[4] == binlogfilter.QUERY  # a COMMIT with another database's name masked


def test_a_site_keeps_every_event_of_its_own_and_the_structure_of_every_transaction():
    kinds = [e[4] for e in events(filtered("sa"))]
    raw = [e[4] for e in events(LOG)]
    for keep in (binlogfilter.GTID, binlogfilter.XID, binlogfilter.FORMAT_DESCRIPTION, binlogfilter.ROTATE):
        assert kinds.count(keep) == raw.count(keep)
    assert binlogfilter.ANNOTATE_ROWS not in kinds  # statement texts never stored
    assert kinds.count(binlogfilter.TABLE_MAP) == 5  # A's five row statements (3 inserts, an update, a delete)
    assert binlogfilter.TABLE_MAP in raw and raw.count(binlogfilter.TABLE_MAP) > 4


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(LOG)), max_size=12))
def test_the_output_does_not_depend_on_how_the_log_is_read(cuts):
    points = sorted(set(cuts))
    pieces = [LOG[a:b] for a, b in zip([0, *points], [*points, len(LOG)])]
    assert b"".join(site_events(pieces, "sa")) == filtered("sa")


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=4, max_value=len(LOG)))
def test_a_log_cut_anywhere_keeps_its_length_and_never_a_byte_of_the_cut_event(cut):
    out = filtered("sa", LOG[:cut])
    assert len(out) == cut and b"BMARKER" not in out


def test_what_the_filter_cannot_judge_is_refused():
    with pytest.raises(FilterError, match="not a binary log"):
        filtered("sa", b"not a log at all")
    fde = events(LOG)[0]
    odd = bytearray(fde)
    odd[4] = 200  # an event type pressfleet does not know
    with pytest.raises(FilterError, match="event type 200"):
        filtered("sa", LOG[:4] + fde + bytes(odd))
    enc = bytearray(fde)
    enc[4] = binlogfilter.START_ENCRYPTION
    with pytest.raises(FilterError, match="encrypted"):
        filtered("sa", LOG[:4] + fde + bytes(enc))


def test_every_script_the_sql_module_names_exists_and_every_backup_script_running_sql_is_named():
    scripts = TEMPLATES / "scripts"
    assert all((scripts / name).is_file() for name in sql.SCRIPTS.values())
    backup = [p for p in scripts.glob("*.sh") if p.name.startswith(("backup_", "binlog_", "db_", "restore_"))]
    using = {p.name for p in backup if "mariadb" in p.read_text().replace("mariadb-bin", "")}
    assert "backup_dump.sh" in using
    assert using - set(sql.SCRIPTS.values()) == set()
