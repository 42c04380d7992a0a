"""Encrypted, authenticated backups on every storage backend (issue 9, items 7, 8, 12): a local folder, and S3,
GCS and Azure through their emulators (moto, gcp-storage-emulator, Azurite).

A passphrase's scrypt settings are written once to the store (put-if-absent) and read back the same; parts are
sealed under their own names; manifests are MAC'd; a bad manifest is named while the others are listed.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from pressfleet.backup import catalog, crypto, parts as stored
from pressfleet.backup.manifest import BackupManifest

PASSPHRASE = "a passphrase long enough for pressfleet 0123"
T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


def test_a_passphrase_backup_on_each_backend_reads_back_and_refuses_what_was_tampered_with(store):
    first = crypto.repository_kdf(store)
    assert crypto.repository_kdf(store) == first  # written once, then read: the key is derived the same each time
    ids = ["20261101T020000Z", "20261102T020000Z"]
    manifests = []
    for n, backup_id in enumerate(ids):
        key = catalog.part_key("blog", backup_id, "files", True)
        part = stored.upload_part(store, key, "files", io.BytesIO(b"archive %d" % n * 1000), PASSPHRASE)
        manifests.append(catalog.write_manifest(store, BackupManifest(
            site="blog", backup_id=backup_id, started_at=T0 + timedelta(days=n), ended_at=T0 + timedelta(days=n),
            wordpress_version="6.1.9", parts=[part]), PASSPHRASE))
    listed = catalog.list_backups(store, "blog", PASSPHRASE)
    assert [e.manifest.backup_id for e in listed] == ids and listed.problems == []
    with stored.open_part(store, listed[1].manifest, "files", PASSPHRASE) as plain:
        assert plain.read() == b"archive 1" * 1000
    # the first backup's archive stored under the second's name does not decrypt
    store.put_bytes(manifests[1].parts[0].key, store.get_bytes(manifests[0].parts[0].key))
    with pytest.raises(stored.BrokenPart, match="does not decrypt"):
        with stored.open_part(store, manifests[1], "files", PASSPHRASE) as plain:
            plain.read()
    # an edited manifest is named, the other still listed
    raw = json.loads(store.get_bytes(catalog.manifest_key("blog", ids[0])))
    raw["wordpress_version"] = "6.9"
    store.put_bytes(catalog.manifest_key("blog", ids[0]), json.dumps(raw).encode())
    listed = catalog.list_backups(store, "blog", PASSPHRASE)
    assert [e.manifest.backup_id for e in listed] == [ids[1]]
    assert len(listed.problems) == 1 and "does not authenticate" in listed.problems[0]
