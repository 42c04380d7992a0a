"""Encrypted, authenticated backups end to end on a real lab host (issue 9, items 7 and 8).

The storage block keeps its default (`encryption: required`): without the `pressfleet-backup-key` block a
backup is refused before anything is stored; with the block `make demo` creates, a full and an incremental
backup are encrypted, MAC'd and restore-tested; a forged marker does not count and a part swapped between
the two backups is refused by name.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from pressfleet.backup import catalog
from pressfleet.ssh.remote import run
from tests.conftest import connect_lab, make_site

pytestmark = pytest.mark.lab

UPLOADS = "/var/www/blog/htdocs/wp-content/uploads"


def _drop_key_block() -> None:
    from prefect.blocks.system import Secret

    from pressfleet.backup.targets import DEFAULT_KEY_BLOCK

    try:
        Secret.delete(DEFAULT_KEY_BLOCK)
    except ValueError:
        pass


def test_backups_need_a_key_and_what_they_store_is_authenticated(provisioned, prefect_harness, tmp_path):
    from prefect.blocks.system import Secret

    from blocks.storage import LocalStorage
    from flows.backup_site import backup_site
    from flows.restore_test import restore_test
    from pressfleet.backup.targets import DEFAULT_KEY_BLOCK, ensure_key_block

    folder = tmp_path / "backups"
    folder.mkdir()
    storage = LocalStorage(path=str(folder))  # encryption: required, the default
    site = make_site(server=provisioned.server)
    _drop_key_block()
    with pytest.raises(Exception, match="No backup encryption key: create the Secret block 'pressfleet-backup-key'"):
        backup_site(site=site, storage=storage)
    assert list(folder.iterdir()) == []  # refused before anything was stored
    try:
        assert "created Secret block" in ensure_key_block()
        key = Secret.load(DEFAULT_KEY_BLOCK).get()
        store = storage.store()

        [full] = backup_site(site=site, storage=storage, full=True)
        first = catalog.load_manifest(store, "blog", full["backup"], key)
        assert first.format == 2 and first.mac and {p.name for p in first.parts} >= {"database", "files", "config"}
        for part in first.parts:  # every part, wp-config.php's config part too, is sealed
            assert part.encrypted and store.get_bytes(part.key)[:5] == b"PFBK\x02"

        with connect_lab(provisioned.host) as conn:
            run(conn, ["sh", "-c", 'echo "$2" > "$1/crypto-test.txt" && chmod 644 "$1/crypto-test.txt" && '
                       'chown --reference="$1" "$1/crypto-test.txt"', "sh", UPLOADS, datetime.now(UTC).isoformat()])
        time.sleep(1.1)  # backup ids are per second
        [inc] = backup_site(site=site, storage=storage)
        second = catalog.load_manifest(store, "blog", inc["backup"], key)
        assert inc["kind"] == "incremental" and second.parent_sha256 == first.manifest_sha256()

        [proof] = restore_test(site=site, storage=storage, scratch=provisioned.server)
        assert proof["verified"] and proof["backup"] == inc["backup"]
        listed = catalog.list_backups(store, "blog", key)
        assert [e.verified for e in listed] == [False, True] and listed.problems == []
        marker = catalog.Verification.model_validate_json(store.get_bytes(catalog.verified_key("blog", inc["backup"])))
        assert marker.mac and marker.manifest_sha256 == second.manifest_sha256()

        # a "verified" marker forged without the key does not count (retention would not protect the backup)
        forged = catalog.Verification(backup_id=full["backup"], verified_at=datetime.now(UTC), seconds=1.0,
                                      target="forged", manifest_sha256=first.manifest_sha256())
        store.put_bytes(catalog.verified_key("blog", full["backup"]), forged.model_dump_json().encode())
        listed = catalog.list_backups(store, "blog", key)
        assert [e.verified for e in listed] == [False, True]
        assert any("does not authenticate" in p for p in listed.problems)

        # the full backup's file archive put in the place of the incremental's: refused, naming the part
        store.put_bytes(second.part("files").key, store.get_bytes(first.part("files").key))
        with pytest.raises(Exception, match=r"part 'files' of backup '%s'.*does not decrypt" % inc["backup"]):
            restore_test(site=site, storage=storage, scratch=provisioned.server)
    finally:
        _drop_key_block()
