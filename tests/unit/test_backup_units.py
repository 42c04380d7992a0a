"""Pure backup logic: encryption framing, the file index and incremental plan, dump reports, parts,
the catalogue on a local folder."""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pressfleet.backup import catalog
from pressfleet.backup.crypto import CHUNK, DecryptingReader, DecryptionError, EncryptingReader, new_key_text
from pressfleet.backup.dumpinfo import compare_rows, parse_counts, parse_dump_report
from pressfleet.backup.restore import parse_parts
from pressfleet.backup.index import Entry, dump_index, holders, load_index, parse_inventory, plan_files, select
from pressfleet.backup.manifest import BackupManifest, ManifestPart
from pressfleet.validate import InvalidInput

pytestmark = pytest.mark.unit
KEY = new_key_text()  # a random `pfk1:` key: the framing tests need no storage for scrypt settings


def _roundtrip(data: bytes, key: str = KEY, decrypt_key: str = KEY) -> bytes:
    sealed = EncryptingReader(io.BytesIO(data), key).read()
    return DecryptingReader(io.BytesIO(sealed), decrypt_key).read()


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK])
def test_encryption_round_trips_at_chunk_edges(size):
    data = os.urandom(size)
    assert _roundtrip(data) == data


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=5000), st.integers(min_value=0))
def test_any_single_byte_change_or_truncation_is_detected(data, where):
    sealed = bytearray(EncryptingReader(io.BytesIO(data), KEY).read())
    i = where % len(sealed)
    flipped = bytes(sealed[:i]) + bytes([sealed[i] ^ 1]) + bytes(sealed[i + 1:])
    with pytest.raises(DecryptionError):
        DecryptingReader(io.BytesIO(flipped), KEY).read()
    with pytest.raises(DecryptionError):
        DecryptingReader(io.BytesIO(bytes(sealed[:-1])), KEY).read()


def test_a_chunk_dropped_from_the_end_or_the_wrong_key_is_detected():
    data = os.urandom(2 * CHUNK + 10)
    sealed = EncryptingReader(io.BytesIO(data), KEY).read()
    cut = sealed[: 5 + 16 + (CHUNK + 16)]  # header + the first chunk only: it is not flagged last
    with pytest.raises(DecryptionError, match="altered or cut short"):
        DecryptingReader(io.BytesIO(cut), KEY).read()
    with pytest.raises(DecryptionError):
        _roundtrip(data, decrypt_key=new_key_text())
    with pytest.raises(InvalidInput, match="at least 32"):
        EncryptingReader(io.BytesIO(b"x"), "short")


def test_the_same_plaintext_encrypts_differently_each_time():
    a = EncryptingReader(io.BytesIO(b"same"), KEY).read()
    b = EncryptingReader(io.BytesIO(b"same"), KEY).read()
    assert a != b and b"same" not in a


def _inventory(*records: bytes) -> bytes:
    return b"version 6.1.9\n" + b"".join(r + b"\0" for r in records)


def test_inventory_parses_odd_paths_and_refuses_garbage():
    version, entries = parse_inventory(_inventory(b"d 4096 1.5 1.5 wp-content",
                                                  b"f 10 2.25 2.25 wp-content/a file\nwith newline.txt"))
    assert version == "6.1.9" and entries[1].path == "wp-content/a file\nwith newline.txt" and entries[1].size == 10
    for bad in (b"", b"no version\n", b"version 6.1\nf x 1 1 p\0", b"version 6.1\nf 1 1\0"):
        with pytest.raises(InvalidInput):
            parse_inventory(bad)


def test_incremental_reads_only_what_changed_and_keeps_holders():
    first = [Entry("wp-content/a", "f", 5, "1.0", "1.0"), Entry("wp-content/b", "f", 7, "1.0", "1.0")]
    full = plan_files(first, None, "B1")
    assert full.to_read == ["wp-content/a", "wp-content/b"] and {e.holder for e in full.index} == {"B1"}
    now = [Entry("wp-content/a", "f", 5, "1.0", "1.0"), Entry("wp-content/b", "f", 9, "2.0", "2.0"),
           Entry("wp-content/c", "f", 1, "2.0", "2.0")]
    inc = plan_files(now, full.index, "B2")
    assert inc.to_read == ["wp-content/b", "wp-content/c"] and inc.bytes_to_read == 10 and inc.deleted == 0
    assert {e.path: e.holder for e in inc.index} == {"wp-content/a": "B1", "wp-content/b": "B2", "wp-content/c": "B2"}
    gone = plan_files(now[:1], inc.index, "B3")
    assert gone.to_read == [] and gone.deleted == 2
    assert load_index(dump_index(inc.index)) == inc.index
    assert [e.path for e in select(inc.index, ("wp-content/b",))] == ["wp-content/b"]


_STATE = st.lists(st.tuples(st.text("abc/", min_size=1, max_size=6), st.integers(0, 3)), max_size=20,
                  unique_by=lambda t: t[0])


@settings(max_examples=60, deadline=None)
@given(st.lists(_STATE, min_size=1, max_size=4))
def test_a_chain_restores_exactly_the_newest_index(states):
    """Each backup of a chain holds exactly what is new or changed since its parent (everything else keeps
    its holder); extracting the holders' archives oldest first (as restore.extract_files does), then
    deleting what the index lacks, gives the newest state with every file from the backup its index names."""
    def entries(items):
        return [Entry("wp-content/" + p, "f", v, str(v), str(v)) for p, v in items]

    index, archives, chain = None, {}, []
    for number, items in enumerate(states, 1):
        backup = f"B{number}"
        plan = plan_files(entries(items), index, backup)
        before = {e.path: e for e in index or []}
        for e in plan.index:  # which backup holds each entry
            old = before.get(e.path)
            assert e.holder == (old.holder if old is not None and old.same_content(e) else backup), e
        assert plan.to_read == [e.path for e in plan.index if e.holder == backup]
        assert plan.deleted == len(set(before) - {e.path for e in plan.index})
        # this backup's archive: what it read, each file's content tagged with the backup that read it
        archives[backup] = {e.path: (backup, e.size) for e in plan.index if e.path in plan.to_read}
        index = plan.index
        chain.append(backup)
    assert holders(index) <= set(chain)
    restored: dict[str, tuple[str, int]] = {}
    for member in chain:
        if member in holders(index):
            restored.update(archives[member])
    wanted = {e.path for e in index}
    restored = {p: v for p, v in restored.items() if p in wanted}
    assert restored == {e.path: (e.holder, e.size) for e in index}


def test_dump_report_and_row_checks():
    info = parse_dump_report("warning: x\nPRESSFLEET rows `wp_posts` 12\nPRESSFLEET rows `odd``name` 0\n"
                             "PRESSFLEET binlog mariadb-bin.000004 1234\n")
    assert info.table_rows == {"wp_posts": 12, "odd`name": 0}
    assert (info.binlog_file, info.binlog_position) == ("mariadb-bin.000004", 1234)
    assert parse_counts("wp_posts 12\nwp_options 3\n") == {"wp_posts": 12, "wp_options": 3}
    problems = compare_rows({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 0}, "the copy")
    assert problems == ["table b has 3 rows in the copy, the manifest says 2", "table c in the copy is not in the manifest"]


def test_parts_are_checked_before_anything_runs():
    assert parse_parts(["database", "uploads", "table:wp_options"]) == (True, ["wp_options"], ["wp-content/uploads"])
    assert parse_parts(["files", "uploads"])[2] == ["wp-content", "."]  # wp-content and the web root's own files
    for bad in (["secrets"], [], ["table:"], ["table:a`b"], ["config"]):
        with pytest.raises(InvalidInput):
            parse_parts(bad)


def _manifest(backup_id: str, parent=None, when=None) -> BackupManifest:
    t = when or datetime(2026, 11, 1, tzinfo=UTC)
    return BackupManifest(site="blog", backup_id=backup_id, kind="incremental" if parent else "full", parent_id=parent,
                          started_at=t, ended_at=t + timedelta(seconds=5), wordpress_version="6.1.9",
                          parts=[ManifestPart(name="database", key=catalog.part_key("blog", backup_id, "database", False),
                                              sha256="a" * 64, size=1)])


def test_catalogue_lists_only_complete_backups_and_follows_chains(tmp_path):
    from pressfleet.storage import LocalStore

    store = LocalStore(tmp_path)
    full, inc = _manifest("20261101T000000Z"), _manifest("20261102T000000Z", "20261101T000000Z",
                                                         datetime(2026, 11, 2, tzinfo=UTC))
    for m in (full, inc):
        store.put_bytes(m.parts[0].key, b"x")
        store.put_bytes(catalog.manifest_key("blog", m.backup_id), m.to_json().encode())
    store.put_bytes(catalog.part_key("blog", "20261103T000000Z", "database", True), b"cut off")
    assert [e.manifest.backup_id for e in catalog.list_backups(store, "blog")] == [full.backup_id, inc.backup_id]
    assert catalog.incomplete_backups(store, "blog") == ["20261103T000000Z"]
    assert [m.backup_id for m in catalog.chain(store, "blog", inc)] == [full.backup_id, inc.backup_id]
    assert catalog.newest_verified(store, "blog") is None
    catalog.mark_verified(store, "blog", catalog.Verification(backup_id=full.backup_id, verified_at=datetime.now(UTC),
                                                              seconds=3.5, target="t"))
    assert catalog.newest_verified(store, "blog") == full.started_at
    with pytest.raises(catalog.UnknownBackup, match="newest are"):
        catalog.load_manifest(store, "blog", "20200101T000000Z")
    with pytest.raises(catalog.UnknownBackup, match="not a backup id"):
        catalog.load_manifest(store, "blog", "../x")
    catalog.delete_backup(store, "blog", full.backup_id)
    with pytest.raises(catalog.UnknownBackup, match="which is missing"):
        catalog.chain(store, "blog", inc)


def test_restore_test_config_is_loopback_only():
    from pressfleet.render.configs import render_restore_test_wp_config
    from pressfleet.fleet.siteconfig import SiteConfig, WpSalts

    site = SiteConfig(name="blog", domain="blog.lab.test", admin_email="a@lab.test")
    text = render_restore_test_wp_config(site, db_name="pf_rt_ab", db_user="pf_rt_ab", db_password="p" * 24,
                                         salts=WpSalts.generate(), home_url="http://127.0.0.1:20000", abspath="/x/htdocs")
    assert "'WP_REDIS_DISABLED', true" in text and "http://127.0.0.1:20000" in text and "'pf_rt_ab'" in text
    with pytest.raises(InvalidInput):
        render_restore_test_wp_config(site, db_name="pf_rt_ab", db_user="pf_rt_ab", db_password="p" * 24,
                                      salts=WpSalts.generate(), home_url="https://blog.example.com", abspath="/x")


def test_prune_removes_parts_of_runs_cut_off_a_day_ago_and_keeps_backups(tmp_path):
    from blocks.storage import LocalStorage
    from pressfleet.backup.retention import RetentionPolicy
    from tasks.backup import prune_one

    storage = LocalStorage(path=str(tmp_path), encryption="none")  # plaintext on purpose: no key in this test
    store = storage.store()
    kept = _manifest("20261101T000000Z")
    store.put_bytes(kept.parts[0].key, b"x")
    store.put_bytes(catalog.manifest_key("blog", kept.backup_id), kept.to_json().encode())
    store.put_bytes(catalog.part_key("blog", "20261102T000000Z", "files", False), b"cut off")
    day_after = datetime(2026, 11, 2, 12, tzinfo=UTC)
    dry = prune_one.fn("blog", storage, RetentionPolicy(keep_last=1), dry_run=True, now=day_after + timedelta(days=1))
    assert dry["incomplete_removed"] == [] and catalog.incomplete_backups(store, "blog") == ["20261102T000000Z"]
    early = prune_one.fn("blog", storage, RetentionPolicy(keep_last=1), now=day_after)
    assert early["incomplete_removed"] == []  # not a day old yet: it may be a run still going
    late = prune_one.fn("blog", storage, RetentionPolicy(keep_last=1), now=day_after + timedelta(days=1))
    assert late["incomplete_removed"] == ["20261102T000000Z"] and late["keep"] == [kept.backup_id]
    assert catalog.incomplete_backups(store, "blog") == [] and len(catalog.list_backups(store, "blog")) == 1


def test_shipped_binary_logs_are_grouped_by_database_server(tmp_path):
    from pressfleet.storage import LocalStore

    store = LocalStore(tmp_path)
    server = "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d"
    for key in [f"blog/binlogs/{server}/mysql-bin.000002.zst.pfenc", f"blog/binlogs/{server}/mysql-bin.000002.zst.json",
                "blog/binlogs/mysql-bin.000009.zst", "blog/binlogs/mysql-bin.000009.zst.json",
                "blog/binlogs/not-an-id/mysql-bin.000001.zst", "blog/backups/x"]:
        store.put_bytes(key, b"x")
    found = catalog.binlog_objects(store, "blog")
    assert found == {
        server: {"mysql-bin.000002": [f"blog/binlogs/{server}/mysql-bin.000002.zst.pfenc",
                                      f"blog/binlogs/{server}/mysql-bin.000002.zst.json"]},
        None: {"mysql-bin.000009": ["blog/binlogs/mysql-bin.000009.zst", "blog/binlogs/mysql-bin.000009.zst.json"]},
    }
    assert catalog.binlog_prefix("blog", server) == f"blog/binlogs/{server}/"
    with pytest.raises(InvalidInput, match="database server id"):
        catalog.binlog_prefix("blog", "../../etc")
