"""Backups that are proven, on real lab hosts: backup, incremental, restore-test, restore (whole, partial,
to another host, to a point in time), prune, encryption, and the faults the issue names.

The site is the session's provisioned WordPress host (pt-w); storage is a local folder here, and the
S3 / GCS / Azure emulators in test_backup_storage.py.
"""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest

from pressfleet.backup import catalog
from pressfleet.ssh.remote import run
from tests.conftest import connect_lab, in_background, make_site, save_copy

pytestmark = pytest.mark.lab


@pytest.fixture
def local_storage(tmp_path):
    from blocks.storage import LocalStorage

    folder = tmp_path / "backups"
    folder.mkdir()
    return LocalStorage(path=str(folder), encryption="none")  # plaintext unless a test gives a key


@pytest.fixture
def site(provisioned):
    return make_site(server=provisioned.server)


def sql(provisioned, statement: str) -> str:
    with connect_lab(provisioned.host) as conn:
        return run(conn, ["mariadb", "--batch", "--skip-column-names", "blog"], stdin=statement).stdout.strip()


def on_host(provisioned, *argv: str, stdin=None) -> str:
    with connect_lab(provisioned.host) as conn:
        return run(conn, list(argv), stdin=stdin).stdout


UPLOADS = "/var/www/blog/htdocs/wp-content/uploads"


def corrupt_files_part(local_storage, backup_id: str):
    """Flip one byte in the middle of a stored backup's `files` part; returns the store."""
    store = local_storage.store()
    path = store.root / catalog.load_manifest(store, "blog", backup_id).part("files").key
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return store


def test_full_then_incremental_then_restore_test_on_a_fresh_lab_host(provisioned, prefect_harness, site,
                                                                    local_storage):
    from flows.backup_site import backup_site
    from flows.restore_test import restore_test

    on_host(provisioned, "sh", "-c", f"mkdir -p {UPLOADS}/2026/11 && head -c 3000000 /dev/urandom > "
            f"{UPLOADS}/2026/11/photo.bin && for i in $(seq 1 99); do echo $i > {UPLOADS}/2026/11/f$i.txt; done")
    [full] = backup_site(site=site, storage=local_storage)
    assert full["kind"] == "full" and full["files_changed"] == full["files_total"] > 100
    store = local_storage.store()
    manifest = catalog.load_manifest(store, "blog", full["backup"])
    assert {p.name for p in manifest.parts} == {"database", "files", "config", "index"}
    assert manifest.table_rows["wp_options"] > 50 and manifest.wordpress_version.startswith("6.1")
    assert manifest.binlog_file and manifest.binlog_position > 0

    on_host(provisioned, "sh", "-c", f"echo changed > {UPLOADS}/2026/11/f7.txt")
    sql(provisioned, "INSERT INTO wp_options (option_name, option_value, autoload) VALUES ('pf_after_full', 'x', 'no');"
                     "UPDATE wp_posts SET post_title='Changed after the full backup' WHERE ID=1;")
    time.sleep(1.1)  # backup ids are per second
    [inc] = backup_site(site=site, storage=local_storage)
    assert inc["kind"] == "incremental" and inc["parent"] == full["backup"]
    increment = catalog.load_manifest(store, "blog", inc["backup"])
    # the database part of an incremental is the binary log since the full backup's snapshot
    assert increment.database_from == "binlog" and increment.binlog_start_file == manifest.binlog_file
    assert increment.table_rows["wp_options"] == manifest.table_rows["wp_options"] + 1
    assert inc["files_changed"] <= 3, inc  # the file and the folders whose times it touched
    assert inc["bytes_read"] < 100 and inc["bytes"] < full["bytes"] / 5

    [proof] = restore_test(site=site, storage=local_storage)  # scratch left empty: a fresh lab host
    assert proof["backup"] == inc["backup"] and proof["verified"]
    assert "fresh lab host" in proof["target"]
    assert any("home page 200" in c for c in proof["checks"])
    assert any("2 archive(s)" in c for c in proof["checks"]), proof["checks"]  # the chain, full then incremental
    entries = catalog.list_backups(store, "blog")
    assert [e.verified for e in entries] == [False, True]
    assert catalog.newest_verified(store, "blog") == entries[-1].manifest.started_at


def test_encrypted_backup_restores_only_with_its_key(provisioned, prefect_harness, site, local_storage):
    from prefect.blocks.system import Secret

    from flows.backup_site import backup_site
    from flows.restore_test import restore_test

    key = Secret(value="k" * 12 + "pressfleet-test-key-0123456789")
    [summary] = backup_site(site=site, storage=local_storage, encryption_key=key, full=True)
    store = local_storage.store()
    manifest = catalog.load_manifest(store, "blog", summary["backup"])
    assert all(p.encrypted and p.key.endswith(".pfenc") for p in manifest.parts)
    raw = store.get_bytes(manifest.part("database").key)
    assert raw[:5] == b"PFBK\x02" and b"\x28\xb5\x2f\xfd" not in raw[:64]  # no zstd frame in the clear
    [proof] = restore_test(site=site, storage=local_storage, scratch=provisioned.server, encryption_key=key)
    assert proof["verified"]
    with pytest.raises(Exception, match="encrypted: configure its encryption key"):
        restore_test(site=site, storage=local_storage, scratch=provisioned.server)
    wrong = Secret(value="w" * 40)
    with pytest.raises(Exception, match="does not authenticate"):  # the manifest's MAC, before any part is read
        restore_test(site=site, storage=local_storage, scratch=provisioned.server, encryption_key=wrong)
    # the key never reached the host: no file holds it, no process had it in its arguments
    found = on_host(provisioned, "sh", "-c", "grep -rlF -f - /etc /var/www /root /tmp /run 2>/dev/null; true",
                    stdin=key.get() + "\n")  # the pattern travels on stdin, not in grep's arguments
    assert found.strip() == ""


def test_a_corrupted_object_is_named_and_not_verified(provisioned, prefect_harness, site, local_storage):
    from flows.backup_site import backup_site
    from flows.restore_test import restore_test

    [summary] = backup_site(site=site, storage=local_storage, full=True)
    store = corrupt_files_part(local_storage, summary["backup"])
    with pytest.raises(Exception, match=r"part 'files'"):
        restore_test(site=site, storage=local_storage, scratch=provisioned.server)
    assert not catalog.list_backups(store, "blog")[-1].verified
    leftovers = on_host(provisioned, "sh", "-c", "ls /srv/pressfleet-restore-test; mariadb --batch -e 'SHOW DATABASES'")
    assert "pf_rt_" not in leftovers and "blog-" not in leftovers  # the scratch copy was cleaned up


def test_selective_restores_and_bad_requests_change_nothing(provisioned, prefect_harness, site, local_storage):
    from flows.backup_site import backup_site
    from flows.restore_site import restore_site

    on_host(provisioned, "sh", "-c", f"mkdir -p {UPLOADS}/2026/11 && echo jpeg > {UPLOADS}/2026/11/photo.bin "
            f"&& chown -R blog:blog {UPLOADS}/2026")
    [summary] = backup_site(site=site, storage=local_storage, full=True)
    title = sql(provisioned, "SELECT option_value FROM wp_options WHERE option_name='blogname'")
    sql(provisioned, "UPDATE wp_options SET option_value='vandalised' WHERE option_name='blogname'; "
                     "UPDATE wp_posts SET post_title='post edited after the backup' WHERE ID=1;")
    on_host(provisioned, "sh", "-c", f"rm -rf {UPLOADS}/2026 && echo new > {UPLOADS}/new-after-backup.txt")

    # bad requests: refused before anything changes
    for kwargs, message in (({"backup_id": "20200101T000000Z"}, "no complete backup"),
                            ({"backup_id": "../../etc"}, "not a backup id"),
                            ({"parts": ["database", "secrets"]}, "unknown part")):
        with pytest.raises(Exception, match=message):
            restore_site(site=site, storage=local_storage, **kwargs)
    assert sql(provisioned, "SELECT option_value FROM wp_options WHERE option_name='blogname'") == "vandalised"

    result = restore_site(site=site, storage=local_storage, parts=["table:wp_options"])
    assert result["restored"] == ["table:wp_options"] and not result["provisioned"]
    assert sql(provisioned, "SELECT option_value FROM wp_options WHERE option_name='blogname'") == title
    assert sql(provisioned, "SELECT post_title FROM wp_posts WHERE ID=1") == "post edited after the backup"

    restore_site(site=site, storage=local_storage, parts=["uploads"])
    listing = on_host(provisioned, "find", UPLOADS)
    assert "photo.bin" in listing and "new-after-backup.txt" not in listing
    owner = on_host(provisioned, "stat", "-c", "%U", f"{UPLOADS}/2026/11/photo.bin").strip()
    assert owner == "blog"

    restore_site(site=site, storage=local_storage, backup_id=summary["backup"], parts=["database"])
    assert sql(provisioned, "SELECT post_title FROM wp_posts WHERE ID=1") != "post edited after the backup"
    assert "pf_stage_blog" not in sql(provisioned, "SHOW DATABASES")
    assert provisioned.curl("/").stdout.count("<html") >= 1


def test_prune_keeps_the_newest_verified_and_parents_and_refuses_keeping_nothing(
        provisioned, prefect_harness, site, local_storage):
    from blocks.backup import BackupRetention
    from flows.backup_site import backup_site
    from flows.prune_backups import prune_backups
    from flows.restore_test import restore_test

    ids = []
    for i in range(4):
        [s] = backup_site(site=site, storage=local_storage, full=(i == 0))
        ids.append(s["backup"])
        if i == 1:
            restore_test(site=site, storage=local_storage, scratch=provisioned.server)
        time.sleep(1.05)
    store = local_storage.store()
    with pytest.raises(Exception, match="keeps nothing"):
        BackupRetention(keep_last=0, keep_daily=0, keep_weekly=0, keep_monthly=0, keep_yearly=0)
    policy = BackupRetention(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0, keep_yearly=0)
    [dry] = prune_backups(site=site, storage=local_storage, policy=policy, dry_run=True)
    assert len(catalog.list_backups(store, "blog")) == 4  # a dry run deletes nothing
    # kept: the newest (ids[3]), the newest verified (ids[1]) and the chain they need (ids[0..2])
    assert set(dry["keep"]) == set(ids) and dry["delete"] == []
    [s] = backup_site(site=site, storage=local_storage, full=True)
    [real] = prune_backups(site=site, storage=local_storage, policy=policy)
    assert set(real["deleted"]) == {ids[2], ids[3]} and set(real["keep"]) == {ids[0], ids[1], s["backup"]}
    assert {e.manifest.backup_id for e in catalog.list_backups(store, "blog")} == {ids[0], ids[1], s["backup"]}


def test_point_in_time_recovery_between_two_backups(provisioned, prefect_harness, site, local_storage):
    from flows.backup_site import backup_site
    from flows.restore_site import restore_site
    from flows.ship_binlogs import ship_binlogs

    sql(provisioned, "CREATE TABLE IF NOT EXISTS pf_pitr (id INT PRIMARY KEY, note TEXT); DELETE FROM pf_pitr;")
    backup_site(site=site, storage=local_storage, full=True)
    sql(provisioned, "INSERT INTO pf_pitr VALUES (1, 'before'), (2, 'before');")
    time.sleep(1.5)
    chosen = datetime.now(UTC)
    time.sleep(1.5)
    sql(provisioned, "INSERT INTO pf_pitr VALUES (3, 'after'); UPDATE pf_pitr SET note='after' WHERE id=1;")
    [shipped] = ship_binlogs(site=site, storage=local_storage)
    assert shipped["shipped"]
    [again] = ship_binlogs(site=site, storage=local_storage)
    assert again["already"] >= len(shipped["shipped"]) and not set(again["shipped"]) & set(shipped["shipped"])
    # the shipped logs never carry the site's database password (user statements are kept out of them)
    import zstandard

    from pressfleet.fleet.secrets import site_secrets

    store = local_storage.store()
    password = site_secrets("blog").db_password.encode()
    logs = [zstandard.ZstdDecompressor().decompressobj().decompress(store.get_bytes(o.key))
            for o in store.list("blog/binlogs/") if o.key.endswith(".zst")]  # beside each: its record (.json)
    assert logs and not any(password in data for data in logs)
    result = restore_site(site=site, storage=local_storage, parts=["database"], point_in_time=chosen)
    assert result["until"]
    assert sql(provisioned, "SELECT id, note FROM pf_pitr ORDER BY id").splitlines() == ["1\tbefore", "2\tbefore"]
    sql(provisioned, "DROP TABLE pf_pitr;")


def test_ssh_dropped_during_the_dump_marks_nothing_complete(provisioned, prefect_harness, site, local_storage):
    from flows.backup_site import backup_site

    sql(provisioned, "CREATE TABLE IF NOT EXISTS pf_bulk (id INT AUTO_INCREMENT PRIMARY KEY, v TEXT);"
                     "INSERT INTO pf_bulk (v) SELECT REPEAT(MD5(RAND()), 30) FROM seq_1_to_100000;")
    worker, outcome = in_background(lambda: backup_site(site=site, storage=local_storage, full=True))
    killed = False
    with connect_lab(provisioned.host) as watcher:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and worker.is_alive() and not killed:
            # the sshd serving the dump: mariadb-dump <- bash (backup_dump.sh) <- bash -c <- sshd
            tree = run(watcher, ["sh", "-c", "p=$(pgrep -o -x mariadb-dump) || exit 0; "
                                 "while [ \"$p\" -gt 1 ]; do c=$(cat /proc/$p/comm); "
                                 "[ \"$c\" = sshd ] && { echo $p; exit 0; }; p=$(ps -o ppid= -p $p | tr -d ' '); done"],
                       check=False).stdout.strip()
            if tree.isdigit():
                run(watcher, ["kill", "-9", tree], check=False)
                killed = True
            time.sleep(0.05)
    worker.join(300)
    assert killed, "never saw mariadb-dump running"
    assert "error" in outcome and "dropped" in str(outcome["error"]), outcome
    store = local_storage.store()
    assert catalog.list_backups(store, "blog") == []  # nothing looks complete
    [again] = backup_site(site=site, storage=local_storage, full=True)
    assert again["kind"] == "full" and catalog.list_backups(store, "blog")[-1].manifest.table_rows["pf_bulk"] == 100000
    sql(provisioned, "DROP TABLE pf_bulk;")


def test_a_full_backup_disk_fails_clearly_and_a_rerun_completes(provisioned, prefect_harness, site, tmp_path):
    from blocks.storage import LocalStorage
    from flows.backup_site import backup_site

    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        storage = LocalStorage(path=str(mount), encryption="none")
        with pytest.raises(Exception, match="(?i)no space|space left|full"):
            backup_site(site=site, storage=storage, full=True)
        assert catalog.list_backups(storage.store(), "blog") == []
        subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)
        [done] = backup_site(site=site, storage=storage, full=True)
        assert [e.manifest.backup_id for e in catalog.list_backups(storage.store(), "blog")] == [done["backup"]]
        # parts the cut-off run did store (which, if any, depends on which stream hit the full disk first)
        # are not a backup; prune removes them once they are a day old
        cut = catalog.incomplete_backups(storage.store(), "blog")
        from pressfleet.backup.retention import RetentionPolicy
        from tasks.backup import prune_one

        soon = prune_one.fn("blog", storage, RetentionPolicy(keep_last=3))
        assert soon["incomplete_removed"] == [] and catalog.incomplete_backups(storage.store(), "blog") == cut
        later = prune_one.fn("blog", storage, RetentionPolicy(keep_last=3), now=datetime.now(UTC) + timedelta(days=2))
        assert later["incomplete_removed"] == cut and catalog.incomplete_backups(storage.store(), "blog") == []
        assert [e.manifest.backup_id for e in catalog.list_backups(storage.store(), "blog")] == [done["backup"]]
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_disaster_recovery_to_another_lab_host(provisioned, prefect_harness, site, local_storage, lab_pool):
    from blocks.backup import BackupRetention
    from flows.backup_site import backup_site
    from flows.prune_backups import prune_backups
    from flows.restore_site import restore_site
    from flows.restore_test import restore_test
    from flows.ship_binlogs import ship_binlogs
    from pressfleet.lab.blocks import server_for

    sql(provisioned, "UPDATE wp_posts SET post_title='Disaster recovery works' WHERE ID=1;")
    ship_binlogs(site=site, storage=local_storage)
    [before] = backup_site(site=site, storage=local_storage, full=True)
    other = lab_pool.fresh("dr", stack=True)  # the recovery, not the install, is the point: packages already there
    started = time.monotonic()
    result = restore_site(site=site, storage=local_storage, target=server_for(other))
    rto = time.monotonic() - started
    assert result["provisioned"] and "database" in result["restored"] and "wp-content" in result["restored"]
    page = subprocess.run(["curl", "-ksSL", "--max-time", "20", "--resolve", f"blog.lab.test:443:{other.address}",
                           "https://blog.lab.test/"], capture_output=True, text=True, timeout=60).stdout
    assert "Disaster recovery works" in page
    assert rto < 600

    # The site now lives on the recovered host. Its database server numbers its binary logs from 1 again:
    # the next backup must not roll the old server's snapshot forward with them (it is full: a restore happened), and
    # its shipped logs go under its own server id, never mistaken for the old server's logs of the same name.
    store = local_storage.store()
    moved = make_site(server=server_for(other))
    old_server = catalog.load_manifest(store, "blog", before["backup"]).database_instance
    time.sleep(1.05)
    [after] = backup_site(site=moved, storage=local_storage)
    manifest = catalog.load_manifest(store, "blog", after["backup"])
    assert after["kind"] == "full" and manifest.database_from == "dump"  # a restore happened there: full
    assert manifest.database_instance and old_server and manifest.database_instance != old_server
    [proof] = restore_test(site=moved, storage=local_storage, scratch=server_for(other))
    assert proof["verified"] and proof["backup"] == after["backup"]
    [shipped] = ship_binlogs(site=moved, storage=local_storage)
    assert shipped["server"] == manifest.database_instance and shipped["shipped"]
    assert set(catalog.binlog_objects(store, "blog")) == {old_server, manifest.database_instance}

    # Prune: kept are a new full backup, the verified one and its parent; the old server's shipped logs all
    # predate that parent's snapshot and go, the new server's logs from the verified backup's snapshot stay.
    time.sleep(1.05)
    backup_site(site=moved, storage=local_storage, full=True)
    policy = BackupRetention(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0, keep_yearly=0)
    [pruned] = prune_backups(site=moved, storage=local_storage, policy=policy)
    left = catalog.binlog_objects(store, "blog")
    assert pruned["binlogs_removed"] and set(left) == {manifest.database_instance}
    assert left[manifest.database_instance] and min(left[manifest.database_instance]) == manifest.binlog_file
    lab_pool.stop("dr")


def test_cli_backup_commands_run_the_flows_and_fail_non_zero(provisioned, prefect_harness, site, local_storage):
    import json
    import os
    import sys

    from prefect.settings import PREFECT_API_URL

    save_copy(site, "site-blog")
    local_storage.save("pt-backups", overwrite=True)
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pressfleet.cli.main", *args], env=env, capture_output=True,
                              text=True, timeout=300)

    ok = cli("backup", "blog", "--storage", "pt-backups", "--full")
    assert ok.returncode == 0 and "full backup" in ok.stdout, ok.stderr[-2000:]
    listed = cli("backups", "blog", "--storage", "pt-backups", "--json")
    [entry] = json.loads(listed.stdout)
    assert entry["kind"] == "full" and entry["verified"] is False
    save_copy(provisioned.server, "lab-pt-w")
    tested = cli("restore-test", "blog", "--storage", "pt-backups", "--scratch", "lab-pt-w")
    assert tested.returncode == 0 and "verified" in tested.stdout, tested.stderr[-2000:]
    assert json.loads(cli("backups", "blog", "--storage", "pt-backups", "--json").stdout)[0]["verified"] is True
    dry = cli("prune", "blog", "--storage", "pt-backups", "--dry-run")
    assert dry.returncode == 0 and "would delete 0 backups" in dry.stdout
    for args, message in ((("restore", "blog", "20200101T000000Z", "--storage", "pt-backups"), "no complete backup"),
                          (("restore", "blog", "--parts", "everything", "--storage", "pt-backups"), "unknown part"),
                          (("backup", "nosuchsite", "--storage", "pt-backups"), "no saved WordPress site"),
                          (("backup", "blog", "--storage", "nosuchstorage"), "no storage block")):
        bad = cli(*args)
        last = bad.stderr.strip().splitlines()[-1]  # the flow's own log may hold its traceback; the verdict is last
        assert bad.returncode == 1 and last.startswith("pressfleet: ") and message in last, (args, bad.stderr[-1500:])
    assert len(json.loads(cli("backups", "blog", "--storage", "pt-backups", "--json").stdout)) == 1
