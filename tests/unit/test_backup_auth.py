"""Backups that cannot be forged or fail open (issue 9, items 7, 8 and 12), against a real local folder store.

7: no key is refused unless the storage block says `encryption: none`; a passphrase goes through scrypt with
   the storage's salt, a `pfk1:` random key through HKDF; `make demo`'s key block.
8: manifests, restore-test markers and binary-log records are MAC'd and bound to their object names; a part is
   bound to its name as associated data; a swapped part, a forged marker and a rolled-back manifest are refused.
12: one unreadable manifest never hides the others; manifests carry a format; a newer one is refused by name.
"""

from __future__ import annotations

import base64
import io
import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from pressfleet.backup import binlogs, catalog, crypto, parts as stored
from pressfleet.backup.manifest import BackupManifest, NewerFormat
from pressfleet.backup.report import catalog_markdown
from pressfleet.backup.retention import RetentionPolicy, plan_prune
from pressfleet.storage import LocalStore
from pressfleet.validate import InvalidInput

pytestmark = pytest.mark.unit

SITE = "blog"
T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path)


def _backup(store, backup_id: str, secret, *, parent: BackupManifest | None = None, rows: int = 10,
            when: datetime = T0) -> BackupManifest:
    """A backup as take_backup stores it (parts through stored.upload_part, manifest last), without a host."""
    encrypted = bool(secret)
    parts = []
    for name, body in (("database", b"dump of " + backup_id.encode()), ("files", os.urandom(3000))):
        key = catalog.part_key(SITE, backup_id, name, encrypted)
        parts.append(stored.upload_part(store, key, name, io.BytesIO(body), secret, {"site": SITE}))
    manifest = BackupManifest(
        site=SITE, backup_id=backup_id, kind="incremental" if parent else "full",
        parent_id=parent.backup_id if parent else None, started_at=when, ended_at=when + timedelta(seconds=5),
        wordpress_version="6.1.9", parts=parts, table_rows={"wp_posts": rows},
        parent_sha256=parent.manifest_sha256() if parent else None)
    return catalog.write_manifest(store, manifest, secret)


def _ids(entries) -> list[str]:
    return [e.manifest.backup_id for e in entries]


# --- item 7: no key, no backup (unless plaintext on purpose) ---------------------------------------------------


def test_no_key_is_refused_unless_the_storage_says_encryption_none(prefect_harness, tmp_path):
    from prefect.blocks.system import Secret

    from blocks.storage import LocalStorage
    from pressfleet.backup.targets import DEFAULT_KEY_BLOCK, encryption_secret
    from tasks.backup import backup_one

    required = LocalStorage(path=str(tmp_path))
    assert required.encryption == "required"  # the default
    with pytest.raises(InvalidInput, match=f"create the Secret block '{DEFAULT_KEY_BLOCK}'.*encryption: none"):
        encryption_secret(None, required)
    # the backup task refuses before it connects anywhere (no site, no server needed) and stores nothing
    with pytest.raises(InvalidInput, match="No backup encryption key"):
        backup_one.fn(None, required)
    assert list(tmp_path.iterdir()) == []
    plaintext = LocalStorage(path=str(tmp_path), encryption="none")
    assert encryption_secret(None, plaintext) is None
    key = crypto.new_key_text()
    assert encryption_secret(Secret(value=key), plaintext) == key  # a run's own key still encrypts
    with pytest.raises(ValueError):
        LocalStorage(path=str(tmp_path), encryption="maybe")


def test_the_demo_key_block_is_random_32_bytes_and_made_once(prefect_harness):
    from prefect.blocks.system import Secret

    from pressfleet.backup.targets import DEFAULT_KEY_BLOCK, ensure_key_block

    try:
        Secret.delete(DEFAULT_KEY_BLOCK)  # a block left by another test
    except ValueError:
        pass
    try:
        said = ensure_key_block()
        value = Secret.load(DEFAULT_KEY_BLOCK).get()
        assert "created Secret block 'pressfleet-backup-key'" in said and value not in said
        assert value.startswith("pfk1:") and len(base64.b64decode(value[5:], validate=True)) == 32
        assert "already there" in ensure_key_block() and Secret.load(DEFAULT_KEY_BLOCK).get() == value
    finally:
        Secret.delete(DEFAULT_KEY_BLOCK)


def test_a_passphrase_goes_through_scrypt_with_the_storages_salt(tmp_path):
    passphrase = "correct horse battery staple 0123456789"
    one, two = LocalStore(tmp_path / "one"), LocalStore(tmp_path / "two")
    (tmp_path / "one").mkdir(), (tmp_path / "two").mkdir()
    sealed = crypto.EncryptingReader(io.BytesIO(b"wp-config"), passphrase, aad="k", store=one).read()
    conf = json.loads(one.get_bytes(crypto.REPOSITORY_KEY))
    assert conf["kdf"] == "scrypt" and conf["n"] >= 1 << 15 and len(base64.b64decode(conf["salt"])) == 16
    # derived the same way each time from the stored settings...
    assert crypto.DecryptingReader(io.BytesIO(sealed), passphrase, aad="k", store=one).read() == b"wp-config"
    # ...and not from the passphrase alone: another storage has another salt
    with pytest.raises(crypto.DecryptionError):
        crypto.DecryptingReader(io.BytesIO(sealed), passphrase, aad="k", store=two).read()
    assert json.loads(two.get_bytes(crypto.REPOSITORY_KEY))["salt"] != conf["salt"]
    one.put_bytes(crypto.REPOSITORY_KEY, json.dumps({**conf, "n": 2}).encode())  # a planted weak setting
    with pytest.raises(InvalidInput, match="key-derivation settings"):
        crypto.keyring(passphrase, one)


def test_a_random_key_needs_no_storage_settings_and_a_bad_one_is_refused(store):
    key = crypto.new_key_text()
    sealed = crypto.EncryptingReader(io.BytesIO(b"x" * 100), key, aad="a", store=store).read()
    assert crypto.DecryptingReader(io.BytesIO(sealed), key, aad="a").read() == b"x" * 100
    assert not store.exists(crypto.REPOSITORY_KEY)
    for bad in ("pfk1:" + base64.b64encode(b"short").decode(), "pfk1:not base64!", "too short passphrase"):
        with pytest.raises(InvalidInput):
            crypto.keyring(bad)


# --- item 8: authenticated manifests, markers, records; parts bound to their names -------------------------------


def test_a_part_moved_to_another_name_does_not_decrypt(store):
    key = crypto.new_key_text()
    sealed = crypto.EncryptingReader(io.BytesIO(b"rows"), key, aad="blog/backups/A/database.sql.zst.pfenc").read()
    with pytest.raises(crypto.DecryptionError, match="moved from another name"):
        crypto.DecryptingReader(io.BytesIO(sealed), key, aad="blog/backups/B/database.sql.zst.pfenc").read()


def test_a_swapped_part_is_refused(store):
    key = crypto.new_key_text()
    a = _backup(store, "20261101T020000Z", key)
    b = _backup(store, "20261102T020000Z", key, parent=a, when=T0 + timedelta(days=1))
    store.put_bytes(b.part("files").key, store.get_bytes(a.part("files").key))  # A's archive under B's name
    with pytest.raises(stored.BrokenPart, match="part 'files' of backup '20261102T020000Z'"):
        with stored.open_part(store, b, "files", key) as plain:
            plain.read()
    with stored.open_part(store, a, "files", key) as plain:  # the original still reads
        assert len(plain.read()) == 3000


def test_an_altered_forged_or_moved_manifest_is_refused_and_the_rest_listed(store):
    key = crypto.new_key_text()
    a = _backup(store, "20261101T020000Z", key)
    b = _backup(store, "20261102T020000Z", key, when=T0 + timedelta(days=1))
    assert a.format == 2 and a.mac and _ids(catalog.list_backups(store, SITE, key)) == [a.backup_id, b.backup_id]
    raw = json.loads(store.get_bytes(catalog.manifest_key(SITE, b.backup_id)))
    raw["table_rows"] = {"wp_posts": 11}  # edited by someone without the key
    store.put_bytes(catalog.manifest_key(SITE, b.backup_id), json.dumps(raw).encode())
    with pytest.raises(catalog.Unauthentic, match="does not authenticate"):
        catalog.load_manifest(store, SITE, b.backup_id, key)
    listed = catalog.list_backups(store, SITE, key)
    assert _ids(listed) == [a.backup_id] and "20261102T020000Z" in listed.problems[0]
    # a valid manifest copied under another backup's name
    store.put_bytes(catalog.manifest_key(SITE, "20261103T020000Z"), store.get_bytes(catalog.manifest_key(SITE, a.backup_id)))
    with pytest.raises(catalog.Unauthentic, match="copied or moved"):
        catalog.load_manifest(store, SITE, "20261103T020000Z", key)
    # a manifest stripped of its MAC (a downgrade) and one MAC'd with another key
    for forged in (a.model_copy(update={"mac": None}),
                   a.model_copy(update={"mac": crypto.keyring(crypto.new_key_text()).mac(
                       "manifest", catalog.manifest_key(SITE, a.backup_id), a.canonical_json().encode())})):
        store.put_bytes(catalog.manifest_key(SITE, a.backup_id), forged.to_json().encode())
        with pytest.raises(catalog.Unauthentic, match="does not authenticate"):
            catalog.load_manifest(store, SITE, a.backup_id, key)


def test_a_forged_verified_marker_is_refused_and_retention_does_not_protect_its_backup(store):
    key = crypto.new_key_text()
    old = _backup(store, "20261101T020000Z", key)
    new = _backup(store, "20261102T020000Z", key, when=T0 + timedelta(days=1))
    policy = RetentionPolicy(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0, keep_yearly=0)
    forged = catalog.Verification(backup_id=old.backup_id, verified_at=T0 + timedelta(hours=1), seconds=1,
                                  target="nowhere", manifest_sha256=old.manifest_sha256())
    store.put_bytes(catalog.verified_key(SITE, old.backup_id), forged.model_dump_json().encode())  # no MAC
    listed = catalog.list_backups(store, SITE, key)
    assert [e.verified for e in listed] == [False, False]
    assert any("restore-test marker" in p and "does not authenticate" in p for p in listed.problems)
    records = [e.manifest.as_record(verified=e.verified) for e in listed]
    assert plan_prune(records, policy, now=T0 + timedelta(days=2)).delete == [old.backup_id]
    # a genuine proof (MAC'd, naming the manifest it proved) is what protects a backup
    catalog.mark_verified(store, SITE, forged, secret=key, manifest=old)
    listed = catalog.list_backups(store, SITE, key)
    assert [e.verified for e in listed] == [True, False] and listed.problems == []
    assert plan_prune([e.manifest.as_record(verified=e.verified) for e in listed], policy,
                      now=T0 + timedelta(days=2)).delete == []
    assert catalog.newest_verified(store, SITE, key) == old.started_at
    assert new.backup_id not in plan_prune(records, policy, now=T0 + timedelta(days=2)).delete


def test_a_rolled_back_manifest_is_refused(store):
    key = crypto.new_key_text()
    older = _backup(store, "20261101T020000Z", key, rows=10)  # an earlier, validly MAC'd version of the full
    saved = store.get_bytes(catalog.manifest_key(SITE, older.backup_id))
    full = _backup(store, "20261101T020000Z", key, rows=12)  # the version the incremental was taken on
    inc = _backup(store, "20261102T020000Z", key, parent=full, when=T0 + timedelta(days=1))
    catalog.mark_verified(store, SITE, catalog.Verification(
        backup_id=full.backup_id, verified_at=T0, seconds=1, target="t"), secret=key, manifest=full)
    assert [m.backup_id for m in catalog.chain(store, SITE, inc, secret=key)] == [full.backup_id, inc.backup_id]
    store.put_bytes(catalog.manifest_key(SITE, full.backup_id), saved)  # rolled back: it still authenticates
    assert catalog.load_manifest(store, SITE, full.backup_id, key).table_rows == {"wp_posts": 10}
    with pytest.raises(catalog.Unauthentic, match="not the one it was taken on"):
        catalog.chain(store, SITE, inc, secret=key)
    listed = catalog.list_backups(store, SITE, key)
    assert _ids(listed) == [full.backup_id] and not listed[0].verified  # the proof was of the other version
    assert any("rolled back" in p for p in listed.problems) and any("another version" in p for p in listed.problems)


def test_binlog_records_are_authenticated_and_bound_to_their_log(store):
    key = crypto.new_key_text()
    instance = "0b5e4c1a-2d3f-4e5a-8b9c-0d1e2f3a4b5c"
    for name in ("mariadb-bin.000001", "mariadb-bin.000002"):
        obj = binlogs.binlog_key(SITE, instance, name, True)
        part = stored.upload_part(store, obj, name, io.BytesIO(b"events of " + name.encode()), key)
        catalog.write_binlog_record(store, part, key)
    assert set(binlogs.shipped_binlogs(store, SITE, instance, key)) == {"mariadb-bin.000001", "mariadb-bin.000002"}
    one = binlogs.binlog_key(SITE, instance, "mariadb-bin.000001", True) + ".json"
    two = binlogs.binlog_key(SITE, instance, "mariadb-bin.000002", True) + ".json"
    record = json.loads(store.get_bytes(one))
    store.put_bytes(one, json.dumps({**record, "part": {**record["part"], "sha256": "0" * 64}}).encode())
    with pytest.raises(catalog.Unauthentic, match="does not authenticate"):
        binlogs.shipped_binlogs(store, SITE, instance, key)
    store.put_bytes(one, store.get_bytes(two))  # log 2's valid record in log 1's place
    with pytest.raises(catalog.Unauthentic, match="copied or moved"):
        catalog.read_binlog_record(store, one, key)
    store.put_bytes(one, json.dumps(record["part"]).encode())  # the old, unauthenticated form
    with pytest.raises(catalog.Unauthentic, match="without authentication"):
        catalog.read_binlog_record(store, one, key)
    assert catalog.read_binlog_record(store, one, None).name == "mariadb-bin.000001"  # read as before without a key


def test_without_a_key_names_and_digests_are_still_checked(store):
    a = _backup(store, "20261101T020000Z", None)
    b = _backup(store, "20261102T020000Z", None, parent=a, when=T0 + timedelta(days=1))
    assert a.mac is None and not any(p.encrypted for p in a.parts)
    assert _ids(catalog.list_backups(store, SITE)) == [a.backup_id, b.backup_id]
    store.put_bytes(catalog.manifest_key(SITE, "20261103T020000Z"), store.get_bytes(catalog.manifest_key(SITE, a.backup_id)))
    listed = catalog.list_backups(store, SITE)
    assert _ids(listed) == [a.backup_id, b.backup_id] and "copied or moved" in listed.problems[0]
    edited = a.model_copy(update={"table_rows": {"wp_posts": 99}})
    store.put_bytes(catalog.manifest_key(SITE, a.backup_id), edited.to_json().encode())
    with pytest.raises(catalog.Unauthentic, match="not the one it was taken on"):
        catalog.chain(store, SITE, b)


# --- item 12: one bad manifest never hides the rest; format versions ---------------------------------------------


def test_one_unreadable_manifest_is_named_and_the_rest_listed(store):
    a = _backup(store, "20261101T020000Z", None)
    c = _backup(store, "20261103T020000Z", None, when=T0 + timedelta(days=2))
    bad = catalog.manifest_key(SITE, "20261102T020000Z")
    store.put_bytes(bad, b"{not json")
    listed = catalog.list_backups(store, SITE)
    assert _ids(listed) == [a.backup_id, c.backup_id]
    assert len(listed.problems) == 1 and bad in listed.problems[0]
    assert catalog.newest(store, SITE).manifest.backup_id == c.backup_id
    text = catalog_markdown(SITE, listed, T0 + timedelta(days=3), listed.problems)
    assert "Left out" in text and bad in text


def test_an_incremental_on_a_left_out_backup_is_left_out_too(store):
    key = crypto.new_key_text()
    a = _backup(store, "20261101T020000Z", key)
    b = _backup(store, "20261102T020000Z", key, parent=a, when=T0 + timedelta(days=1))
    _backup(store, "20261103T020000Z", key, parent=b, when=T0 + timedelta(days=2))
    store.put_bytes(catalog.manifest_key(SITE, b.backup_id), b"garbage")
    listed = catalog.list_backups(store, SITE, key)
    assert _ids(listed) == [a.backup_id]
    assert any("20261103T020000Z" in p and "left out" in p for p in listed.problems)


def test_a_newer_format_is_refused_by_name_and_an_older_one_read(store):
    a = _backup(store, "20261101T020000Z", None)
    newer = {**json.loads(a.to_json()), "format": 3, "backup_id": "20261102T020000Z", "something_new": True}
    store.put_bytes(catalog.manifest_key(SITE, "20261102T020000Z"), json.dumps(newer).encode())
    message = "backup '20261102T020000Z' was written by a newer pressfleet (format 3); this one reads up to 2"
    with pytest.raises(NewerFormat, match=message.replace("(", r"\(").replace(")", r"\)")):
        catalog.load_manifest(store, SITE, "20261102T020000Z")
    listed = catalog.list_backups(store, SITE)
    assert _ids(listed) == [a.backup_id] and listed.problems == [message]
    # format 1: what pressfleet wrote before manifests had a format (and a MAC)
    old = {k: v for k, v in json.loads(a.to_json()).items() if k not in ("format", "mac", "parent_sha256")}
    old["backup_id"] = "20261103T020000Z"
    old["started_at"] = old["ended_at"] = (T0 + timedelta(days=2)).isoformat()
    store.put_bytes(catalog.manifest_key(SITE, "20261103T020000Z"), json.dumps(old).encode())
    got = catalog.load_manifest(store, SITE, "20261103T020000Z")
    assert got.format == 1 and got.mac is None
    # with a key, an old unauthenticated backup is not trusted, and says so
    with pytest.raises(catalog.Unauthentic, match=r"older pressfleet \(format 1\) without authentication"):
        catalog.load_manifest(store, SITE, "20261103T020000Z", crypto.new_key_text())


def test_shipping_counts_a_record_that_does_not_authenticate_as_not_shipped(store):
    key = crypto.new_key_text()
    instance = "0b5e4c1a-2d3f-4e5a-8b9c-0d1e2f3a4b5c"
    obj = binlogs.binlog_key(SITE, instance, "mariadb-bin.000001", True)
    part = stored.upload_part(store, obj, "mariadb-bin.000001", io.BytesIO(b"events"), key)
    store.put_bytes(obj + ".json", part.model_dump_json().encode())  # as pressfleet wrote it before records had MACs
    assert binlogs.shipped_binlogs(store, SITE, instance, key, strict=False) == {}  # ship-binlogs ships it again
    with pytest.raises(catalog.Unauthentic):
        binlogs.shipped_binlogs(store, SITE, instance, key)  # a restore never trusts it
