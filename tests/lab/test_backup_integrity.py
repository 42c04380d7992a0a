"""Backups that never lie (issue 9, items 9-11), on the session's provisioned lab host (the `provisioned`
site `blog`): an incremental after an in-place restore, a failed restore-test, a point-in-time recovery
with a shipped log missing, and the web root's own files (ads.txt, .user.ini, robots.txt) backed up,
checked file by file by the restore-test and restored."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime

import pytest

from pressfleet.backup import catalog, parts as stored, remote, restore
from pressfleet.ssh.remote import run
from tests.conftest import connect_lab
from tests.lab.test_backup import corrupt_files_part, local_storage, on_host, site, sql  # noqa: F401 - shared

pytestmark = pytest.mark.lab

ROOT = "/var/www/blog/htdocs"
UPLOADS = f"{ROOT}/wp-content/uploads"


def test_an_incremental_after_an_in_place_restore_restores_the_right_rows(provisioned, prefect_harness, site,
                                                                           local_storage):
    from flows.backup_site import backup_site
    from flows.restore_site import restore_site
    from flows.restore_test import restore_test

    sql(provisioned, "CREATE TABLE IF NOT EXISTS pf_i9 (id INT PRIMARY KEY, note TEXT); DELETE FROM pf_i9;"
                     "INSERT INTO pf_i9 VALUES (1, 'in the full backup');")
    [full] = backup_site(site=site, storage=local_storage, full=True)
    # changes the restore undoes: they are in the binary log of database blog...
    sql(provisioned, "INSERT INTO pf_i9 VALUES (2, 'undone by the restore'); "
                     "UPDATE pf_i9 SET note='edited, then undone' WHERE id=1;")
    restore_site(site=site, storage=local_storage, backup_id=full["backup"], parts=["database"])
    assert sql(provisioned, "SELECT id, note FROM pf_i9 ORDER BY id") == "1\tin the full backup"
    # ...while the restore's load and swap are not: an incremental replaying that log would bring them back
    sql(provisioned, "INSERT INTO pf_i9 VALUES (3, 'after the restore');")
    live = sql(provisioned, "SELECT id, note FROM pf_i9 ORDER BY id")
    time.sleep(1.1)  # backup ids are per second
    [after] = backup_site(site=site, storage=local_storage)
    assert after["kind"] == "full", after
    assert any("restored in place" in n for n in after["notes"]), after["notes"]

    [proof] = restore_test(site=site, storage=local_storage, scratch=provisioned.server)
    assert proof["verified"] and proof["backup"] == after["backup"]
    sql(provisioned, "DELETE FROM pf_i9 WHERE id=3; INSERT INTO pf_i9 VALUES (4, 'later');")
    restore_site(site=site, storage=local_storage, backup_id=after["backup"], parts=["database"])
    assert sql(provisioned, "SELECT id, note FROM pf_i9 ORDER BY id") == live == \
        "1\tin the full backup\n3\tafter the restore"
    sql(provisioned, "DROP TABLE pf_i9;")


def test_a_failed_restore_test_makes_the_next_backup_full(provisioned, prefect_harness, site, local_storage):
    from flows.backup_site import backup_site
    from flows.restore_test import restore_test

    [summary] = backup_site(site=site, storage=local_storage, full=True)
    store = corrupt_files_part(local_storage, summary["backup"])
    with pytest.raises(Exception, match=r"part 'files'"):
        restore_test(site=site, storage=local_storage, scratch=provisioned.server)
    time.sleep(1.1)
    [after] = backup_site(site=site, storage=local_storage)
    assert after["kind"] == "full" and after["parent"] is None
    assert catalog.restore_test_failures(store, "blog") == {summary["backup"]}
    assert any(f"restore-test of backup {summary['backup']} failed" in n for n in after["notes"]), after["notes"]


def test_point_in_time_recovery_refuses_a_gap_in_the_shipped_logs(provisioned, prefect_harness, site,
                                                                  local_storage):
    from flows.backup_site import backup_site
    from flows.restore_site import restore_site
    from flows.ship_binlogs import ship_binlogs

    sql(provisioned, "CREATE TABLE IF NOT EXISTS pf_gap (id INT PRIMARY KEY); DELETE FROM pf_gap;")
    [full] = backup_site(site=site, storage=local_storage, full=True)
    store = local_storage.store()
    manifest = catalog.load_manifest(store, "blog", full["backup"])
    for i in (1, 2, 3):
        sql(provisioned, f"INSERT INTO pf_gap VALUES ({i}); FLUSH BINARY LOGS;")
    time.sleep(1.1)
    chosen = datetime.now(UTC)
    time.sleep(1.1)
    sql(provisioned, "INSERT INTO pf_gap VALUES (4);")
    [shipped] = ship_binlogs(site=site, storage=local_storage)
    base, number = manifest.binlog_file.rsplit(".", 1)
    lost = f"{base}.{int(number) + 1:0{len(number)}d}"
    after = f"{base}.{int(number) + 2:0{len(number)}d}"
    assert {manifest.binlog_file, lost, after} <= set(shipped["shipped"]), shipped
    # the log is lost from storage and has expired from the host: nothing can ship it again
    [log] = [o.key for o in store.list("blog/binlogs/") if o.key.rsplit("/", 1)[-1].startswith(lost + ".zst")
             and not o.key.endswith(".json")]
    store.delete(log)
    sql(provisioned, f"PURGE BINARY LOGS TO '{after}';")
    live = sql(provisioned, "SELECT GROUP_CONCAT(id ORDER BY id) FROM pf_gap")
    marks = on_host(provisioned, "sh", "-c", "cat /var/lib/mysql/pressfleet-restores-blog 2>/dev/null; true")
    with pytest.raises(Exception, match=rf"binary log {lost} is missing from storage") as refused:
        restore_site(site=site, storage=local_storage, backup_id=full["backup"], parts=["database"],
                     point_in_time=chosen)
    assert "nothing was changed" in str(refused.value)
    assert sql(provisioned, "SELECT GROUP_CONCAT(id ORDER BY id) FROM pf_gap") == live == "1,2,3,4"
    assert "pf_stage_blog" not in sql(provisioned, "SHOW DATABASES")
    assert on_host(provisioned, "sh", "-c", "cat /var/lib/mysql/pressfleet-restores-blog 2>/dev/null; true") == marks
    assert on_host(provisioned, "sh", "-c", "ls -A /var/lib/pressfleet 2>/dev/null; true").strip() == ""
    # from a newer backup (no gap after it), a time the logs cannot reach yet is refused, saying how far they reach
    [newer] = backup_site(site=site, storage=local_storage, full=True)
    with pytest.raises(Exception, match="the shipped binary logs reach only"):
        restore_site(site=site, storage=local_storage, backup_id=newer["backup"], parts=["database"],
                     point_in_time=datetime.now(UTC).replace(year=datetime.now(UTC).year + 1))
    assert sql(provisioned, "SELECT GROUP_CONCAT(id ORDER BY id) FROM pf_gap") == "1,2,3,4"
    sql(provisioned, "DROP TABLE pf_gap;")


PLANTED = {"ads.txt": "google.com, pub-0000000000000000, DIRECT, f08c47fec0942fa0\n",
           ".user.ini": "upload_max_filesize = 64M\n", "robots.txt": "User-agent: *\nDisallow: /private/\n",
           ".well-known/security.txt": "Contact: mailto:security@lab.test\n"}


@pytest.fixture
def planted(provisioned):
    """The web root's own files, placed by root as an operator would (the host's umask), removed afterwards."""
    script = "set -e; mkdir -p \"$1/.well-known\" \"$2/2026/12\"; " + "; ".join(
        f"printf %s '{text}' > \"$1/{name}\"" for name, text in PLANTED.items()) + \
        "; head -c 200000 /dev/urandom > \"$2/2026/12/scan.bin\"; chown -R blog:blog \"$2/2026\""
    on_host(provisioned, "sh", "-c", script, "sh", ROOT, UPLOADS)
    yield PLANTED
    on_host(provisioned, "sh", "-c", "rm -rf \"$1/ads.txt\" \"$1/.user.ini\" \"$1/robots.txt\" \"$1/.well-known\"",
            "sh", ROOT)


def test_web_root_files_are_backed_up_proved_file_by_file_and_restored(provisioned, prefect_harness, site,
                                                                         local_storage, planted):
    from flows.backup_site import backup_site
    from flows.restore_site import restore_site
    from flows.restore_test import restore_test

    [full] = backup_site(site=site, storage=local_storage, full=True)
    store = local_storage.store()
    manifest = catalog.load_manifest(store, "blog", full["backup"])
    index = {e.path: e for e in stored.read_index(store, manifest, None)}
    for name, text in PLANTED.items():
        assert index[name].sha256 == hashlib.sha256(text.encode()).hexdigest(), name
    assert "index.php" not in index and "wp-includes/version.php" not in index  # core comes from the release
    upload = index["wp-content/uploads/2026/12/scan.bin"]
    assert upload.size == 200000 and len(upload.sha256) == 64

    [proof] = restore_test(site=site, storage=local_storage, scratch=provisioned.server)
    assert proof["verified"] and any("files with their sha256" in c for c in proof["checks"]), proof["checks"]

    # the restore-test's comparison, on a real tree restored from this backup: a missing and a changed file
    chain = catalog.chain(store, "blog", manifest)
    wanted = list(index.values())
    with connect_lab(provisioned.host) as conn:
        stage = remote.make_staging(conn, "/root", "pftest")
        try:
            restore.extract_files(conn, store, chain, wanted, None, stage)
            assert restore.check_staged(conn, f"{stage}/tree", wanted, manifest.backup_id, hashes=True) >= 5
            run(conn, ["sh", "-c", "rm \"$1/ads.txt\" && head -c 200000 /dev/zero > \"$1/$2\"", "sh",
                       f"{stage}/tree", "wp-content/uploads/2026/12/scan.bin"])
            with pytest.raises(stored.BrokenPart) as broken:
                restore.check_staged(conn, f"{stage}/tree", wanted, manifest.backup_id, hashes=True)
            assert "ads.txt is missing from the restored copy" in str(broken.value)
            assert "wp-content/uploads/2026/12/scan.bin has sha256" in str(broken.value)
        finally:
            run(conn, ["rm", "-rf", "--", stage], check=False)

    # a whole restore brings the web root's own files back; the webroot part alone does too
    on_host(provisioned, "sh", "-c", "rm -f \"$1/ads.txt\" && echo vandalised > \"$1/robots.txt\"", "sh", ROOT)
    result = restore_site(site=site, storage=local_storage, backup_id=full["backup"])
    assert "webroot" in result["restored"] and "wp-content" in result["restored"]
    for name, text in PLANTED.items():
        assert on_host(provisioned, "cat", f"{ROOT}/{name}") == text, name
    assert on_host(provisioned, "test", "-f", f"{ROOT}/wp-login.php") == ""  # core untouched
    on_host(provisioned, "rm", "-f", f"{ROOT}/.user.ini")
    assert restore_site(site=site, storage=local_storage, backup_id=full["backup"], parts=["webroot"])["restored"] \
        == ["webroot"]
    assert on_host(provisioned, "cat", f"{ROOT}/.user.ini") == PLANTED[".user.ini"]
    modes = on_host(provisioned, "stat", "-c", "%U:%G %a", f"{ROOT}/ads.txt", f"{ROOT}/.well-known/security.txt")
    assert modes.split("\n")[0] == modes.split("\n")[1]  # owners and modes came back as they were


def test_a_files_restore_never_moves_anything_through_a_link_the_site_placed(provisioned, prefect_harness, site,
                                                                             local_storage):
    """With PHP allowed to write everywhere the site's user owns the web root: it swaps wp-content for a link
    to a folder of root's. Restoring uploads must refuse, and nothing lands in root's folder."""
    from flows.backup_site import backup_site
    from flows.restore_site import restore_site

    [full] = backup_site(site=site, storage=local_storage, full=True)
    canary = "/root/pf-canary"
    on_host(provisioned, "sh", "-c", "set -e; mkdir -p \"$2\"; echo keep > \"$2/keep\"; "
            "mv \"$1/wp-content\" \"$1/wp-content.real\"; ln -s \"$2\" \"$1/wp-content\"", "sh", ROOT, canary)
    try:
        with pytest.raises(Exception, match="is a symbolic link"):
            restore_site(site=site, storage=local_storage, backup_id=full["backup"], parts=["uploads"])
        assert on_host(provisioned, "ls", "-A", canary).split() == ["keep"]
        assert on_host(provisioned, "sh", "-c", "ls -A \"$1\" | grep -c pfrestore; true", "sh", "/var/www/blog") \
            .strip() == "0"  # the staging folder is gone
    finally:
        on_host(provisioned, "sh", "-c", "rm -f \"$1/wp-content\"; mv \"$1/wp-content.real\" \"$1/wp-content\"; "
                "rm -rf \"$2\"", "sh", ROOT, canary)
