"""Backups that never lie (issue 9, items 9-11), the pure parts: which binary logs reach a point in time,
which files of the web root are backed up, what the archive carried, and how a restored tree is compared
with the backup's index; and when a backup must be full (after a restore, after a failed restore-test)."""

from __future__ import annotations

import io
import os
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from pressfleet.backup import binlogchain, binlogs, catalog, engine
from pressfleet.backup.index import (
    WEBROOT,
    Entry,
    backed_up,
    carried,
    compare_tree,
    dump_index,
    load_index,
    parse_inventory,
    parse_tree_listing,
    select,
    top_level,
)
from pressfleet.backup.manifest import BackupManifest, ManifestPart
from pressfleet.backup.streams import TarDigest
from pressfleet.storage.local import LocalStore

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 1, 2, 30, tzinfo=UTC)


# --- item 10: the chain of shipped binary logs -------------------------------------------------------------


def test_a_gap_in_the_shipped_logs_is_named():
    shipped = ["mariadb-bin.000004", "mariadb-bin.000005", "mariadb-bin.000007", "mariadb-bin.000008"]
    assert binlogchain.consecutive("mariadb-bin.000004", shipped) == (
        ["mariadb-bin.000004", "mariadb-bin.000005"], "mariadb-bin.000006")
    assert binlogchain.consecutive("mariadb-bin.000007", shipped) == (["mariadb-bin.000007", "mariadb-bin.000008"],
                                                                      None)
    with pytest.raises(binlogchain.ChainBroken, match="mariadb-bin.000006 .* has not been shipped"):
        binlogchain.consecutive("mariadb-bin.000006", shipped)


@given(st.sets(st.integers(1, 60), min_size=1), st.integers(1, 60))
def test_the_run_is_every_log_from_the_start_without_a_gap(numbers, start):
    names = [f"mariadb-bin.{n:06d}" for n in numbers]
    if start not in numbers:
        with pytest.raises(binlogchain.ChainBroken):
            binlogchain.consecutive(f"mariadb-bin.{start:06d}", names)
        return
    run, missing = binlogchain.consecutive(f"mariadb-bin.{start:06d}", names + ["other-bin.000001", "junk"])
    got = [binlogchain.sequence(n)[1] for n in run]
    assert got == list(range(start, start + len(got))) and all(n in numbers for n in got)
    after = start + len(got)
    assert after not in numbers
    assert missing == (f"mariadb-bin.{after:06d}" if any(n > after for n in numbers) else None)


def test_logs_stop_short_or_reach_the_time_asked_for():
    until = T0 + timedelta(hours=1)
    assert binlogchain.stop_after(until, until) and not binlogchain.stop_after(until - timedelta(seconds=1), until)
    assert binlogchain.refusal(until, "mariadb-bin.000005", until, None) is None
    short = binlogchain.refusal(until, "mariadb-bin.000005", until - timedelta(minutes=5), None)
    assert "reach only 2026-11-01T03:25:00+00:00 (mariadb-bin.000005)" in short and "ship-binlogs" in short
    gap = binlogchain.refusal(until, "mariadb-bin.000005", until - timedelta(minutes=5), "mariadb-bin.000006")
    assert gap.startswith("binary log mariadb-bin.000006 is missing from storage") and "nothing was changed" in gap
    assert "unknown time" in binlogchain.refusal(until, "mariadb-bin.000005", None, None)
    with pytest.raises(Exception, match="not a binary log name"):
        binlogchain.sequence("mariadb-bin.0001; rm -rf /")


def test_binlog_times_are_read_in_utc():
    assert binlogs._binlog_time("created 1\nlast 261201  9:05:01\n") == datetime(2026, 12, 1, 9, 5, 1, tzinfo=UTC)
    assert binlogs._binlog_time("created 1\n") is None


# --- item 11: the web root's own files, what the archive carried, the restored tree ---------------------------


def test_the_web_root_s_own_files_are_backed_up_and_core_is_not():
    for path in ("ads.txt", ".user.ini", "robots.txt", "google1234.html", ".well-known/security.txt", "wp-content",
                 "wp-content/uploads/a.jpg", "old-site/index.html"):
        assert backed_up(path), path
    for path in ("index.php", "wp-login.php", "xmlrpc.php", "wp-admin/index.php", "wp-includes/version.php",
                 "wp-content/object-cache.php.pressfleet-last-good",
                 "wp-config.php", "license.txt", "wp-content.pressfleet-old", "wp-content.pressfleet-old/x"):
        assert not backed_up(path), path
    listing = b"version 6.1.9\n" + b"".join(
        f"{t} 10 1.0 2.0 {p}\0".encode() for t, p in (("f", "ads.txt"), ("f", "index.php"), ("d", "wp-content"),
                                                      ("f", "wp-content/x"), ("d", ".well-known"),
                                                      ("f", ".well-known/a b\nc")))
    _, entries = parse_inventory(listing)
    assert [e.path for e in entries] == ["ads.txt", "wp-content", "wp-content/x", ".well-known", ".well-known/a b\nc"]
    assert [e.path for e in select(entries, (WEBROOT,))] == ["ads.txt", ".well-known", ".well-known/a b\nc"]
    assert top_level(select(entries, (WEBROOT,))) == [".well-known", "ads.txt"]
    assert [e.path for e in select(entries, ("wp-content",))] == ["wp-content", "wp-content/x"]


def test_the_index_holds_what_the_archive_carried():
    index = [Entry("a", "f", 5, "1.0", "1.0", "B2"), Entry("b", "f", 5, "1.0", "1.0", "B2"),
             Entry("c", "f", 5, "1.0", "1.0", "B1", "c" * 64), Entry("d", "d", 4096, "1.0", "1.0", "B2"),
             Entry("gone", "f", 5, "1.0", "1.0", "B2")]
    members = {"a": ("f", 5, "a" * 64), "b": ("f", 9, "b" * 64), "d": ("d", 0, "")}
    out = {e.path: e for e in carried(index, "B2", members)}
    assert set(out) == {"a", "b", "c", "d"}  # gone vanished while the backup ran: not in the archive, not indexed
    assert out["a"].sha256 == "a" * 64 and out["a"].mtime == "1.0"
    assert out["b"].size == 9 and out["b"].mtime == ""  # changed while read: the next backup reads it again
    assert out["c"].sha256 == "c" * 64 and out["d"].size == 4096
    assert load_index(dump_index(out.values())) == list(out.values())
    old = b'["wp-content/x","f",3,"1.0","2.0","B1"]\n'  # an index written before hashes were kept
    assert load_index(old) == [Entry("wp-content/x", "f", 3, "1.0", "2.0", "B1", "")]


def test_a_restored_tree_is_compared_entry_by_entry():
    wanted = [Entry("ads.txt", "f", 3, "", "", "B", "a" * 64), Entry("wp-content", "d", 4096, "", "", "B"),
              Entry("wp-content/l", "l", 4, "", "", "B"), Entry("wp-content/big", "f", 9, "", "", "B", "b" * 64),
              Entry("wp-content/old", "f", 1, "", "", "B")]
    ok = {"ads.txt": ("f", 3, "a" * 64), "wp-content": ("d", 4096, ""), "wp-content/l": ("l", 4, ""),
          "wp-content/big": ("f", 9, "b" * 64), "wp-content/old": ("f", 1, "f" * 64), "index.php": ("f", 1, "")}
    assert compare_tree(wanted, ok, extra_under=("wp-content",)) == []
    bad = {**ok, "wp-content/big": ("f", 9, "c" * 64), "wp-content/l": ("f", 4, ""), "wp-content/new": ("f", 1, "")}
    del bad["ads.txt"]
    assert compare_tree(wanted, bad, extra_under=("wp-content",)) == [
        "ads.txt is missing from the restored copy",
        "wp-content/big has sha256 cccccccccccccccc... in the restored copy, the index says bbbbbbbbbbbbbbbb...",
        "wp-content/l is a file in the restored copy, the index says symbolic link",
        "wp-content/new is in the restored copy but not in the backup's index"]
    assert compare_tree(wanted, {**ok, "ads.txt": ("f", 2, "")}) == [
        "ads.txt has 2 bytes in the restored copy, the index says 3"]


def test_tree_listing_parses_types_sizes_and_hashes():
    data = b"f 3 ads.txt\0d 4096 wp-content\0f 2 wp-content/a b\nc\0PRESSFLEET-HASHES\0" + \
        b"a" * 64 + b"  ads.txt\0" + b"b" * 64 + b"  wp-content/a b\nc\0"
    assert parse_tree_listing(data) == {"ads.txt": ("f", 3, "a" * 64), "wp-content": ("d", 4096, ""),
                                        "wp-content/a b\nc": ("f", 2, "b" * 64)}


def test_tar_digest_hashes_what_gnu_tar_archived(tmp_path):
    root = tmp_path / "site"
    (root / "wp-content" / "uploads").mkdir(parents=True)
    (root / "wp-content" / "uploads" / "photo.bin").write_bytes(os.urandom(3 << 20))
    (root / "ads.txt").write_text("google.com, pub-1, DIRECT\n")
    (root / "wp-content" / "odd\nname").write_text("x")
    os.link(root / "ads.txt", root / "wp-content" / "hard")
    os.symlink("/etc", root / "wp-content" / "link")
    names = ["ads.txt", "wp-content", "wp-content/uploads", "wp-content/uploads/photo.bin", "wp-content/odd\nname",
             "wp-content/hard", "wp-content/link"]
    stream = subprocess.run(["sh", "-c", "tar -C \"$1\" --no-recursion --verbatim-files-from --null -T - -cf - | "
                             "zstd -q -3 -T0 -c", "sh", str(root)], input=b"".join(n.encode() + b"\0" for n in names),
                            capture_output=True, check=True).stdout
    digest = TarDigest(io.BytesIO(stream))
    assert io.BufferedReader(digest, buffer_size=1 << 16).read() == stream  # passed through unchanged
    members = digest.result()
    import hashlib

    for name in ("ads.txt", "wp-content/uploads/photo.bin", "wp-content/odd\nname"):
        data = (root / name).read_bytes()
        assert members[name] == ("f", len(data), hashlib.sha256(data).hexdigest())
    assert members["wp-content/hard"] == members["ads.txt"]
    assert members["wp-content/link"] == ("l", 0, "") and members["wp-content/uploads"] == ("d", 0, "")
    broken = TarDigest(io.BytesIO(b"not zstd" * 10000))
    io.BufferedReader(broken).read()  # the upload side is never blocked by a parser that gave up
    with pytest.raises(ValueError, match="could not be read back"):
        broken.result()


# --- item 9: when the next backup is full ------------------------------------------------------------------------


def _manifest(backup_id: str, parent=None, when=T0, mark=None) -> BackupManifest:
    return BackupManifest(site="blog", backup_id=backup_id, kind="incremental" if parent else "full", parent_id=parent,
                          started_at=when, ended_at=when + timedelta(seconds=5), wordpress_version="6.1.9",
                          restore_mark=mark, parts=[ManifestPart(
                              name="database", key=catalog.part_key("blog", backup_id, "database", False),
                              sha256="a" * 64, size=1)])


def _store(tmp_path, *manifests):
    store = LocalStore(tmp_path)
    for m in manifests:
        catalog.write_manifest(store, m)
    return store


def test_a_restore_in_place_makes_the_next_backup_full(tmp_path):
    mark = "0b6a3c1e-1d2f-4e5a-9b8c-7d6e5f4a3b2c"
    full = _manifest("20261101T023000Z")
    inc = _manifest("20261102T023000Z", parent=full.backup_id, when=T0 + timedelta(days=1))
    inc = inc.model_copy(update={"parent_sha256": full.manifest_sha256()})
    store = _store(tmp_path, full, inc)
    now = T0 + timedelta(days=2)
    previous, why = engine._previous_for_incremental(store, "blog", now, 7)
    assert previous.backup_id == inc.backup_id and why == f"incremental on {inc.backup_id}"
    previous, why = engine._previous_for_incremental(store, "blog", now, 7, restore_mark=mark)
    assert previous is None and "restored in place since backup 20261102T023000Z" in why and mark in why


def test_a_failed_restore_test_makes_the_next_backup_full(tmp_path):
    full = _manifest("20261101T023000Z")
    inc = _manifest("20261102T023000Z", parent=full.backup_id, when=T0 + timedelta(days=1))
    inc = inc.model_copy(update={"parent_sha256": full.manifest_sha256()})
    store = _store(tmp_path, full, inc)
    catalog.mark_restore_test_failed(store, "blog", full.backup_id, T0, "part 'files' does not match")
    assert catalog.restore_test_failures(store, "blog") == {full.backup_id}
    previous, why = engine._previous_for_incremental(store, "blog", T0 + timedelta(days=2), 7)
    assert previous is None and why.startswith("the restore-test of backup 20261101T023000Z failed")


# --- the restore scripts never follow a link (run here with bash, tar and zstd, as on a host) ----------------

from pressfleet.paths import TEMPLATES  # noqa: E402

SCRIPTS = TEMPLATES / "scripts"


def _script(name: str, *args, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", (SCRIPTS / name).read_text(), "bash", *map(str, args)], input=stdin,
                          capture_output=True)


def test_extraction_takes_only_the_listed_members_and_refuses_a_link_the_index_lacks(tmp_path):
    src = tmp_path / "src"
    (src / "wp-content" / "up").mkdir(parents=True)
    (src / "wp-content" / "up" / "a").write_text("a")
    os.symlink("/etc", src / "wp-content" / "up" / "evil")
    archive = _script("backup_archive.sh", src, stdin=b"wp-content\0wp-content/up\0wp-content/up/a\0"
                      b"wp-content/up/evil\0").stdout
    stage = tmp_path / "stage"
    stage.mkdir(mode=0o700)
    (stage / "members").write_bytes(b"wp-content/up/a\0wp-content/up/evil\0")
    (stage / "links").write_bytes(b"wp-content/up/evil\0")
    done = subprocess.run(["bash", "-c", (SCRIPTS / "restore_extract.sh").read_text(), "bash", str(stage / "tree"),
                           str(stage / "members"), str(stage / "links")], input=archive, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert (stage / "tree" / "wp-content" / "up" / "a").read_text() == "a"
    (stage / "links").write_bytes(b"")  # the index says evil is no link: the archive's link is refused
    refused = subprocess.run(["bash", "-c", (SCRIPTS / "restore_extract.sh").read_text(), "bash",
                              str(stage / "tree2"), str(stage / "members"), str(stage / "links")], input=archive,
                             capture_output=True)
    assert refused.returncode == 4 and b"symbolic link the index does not list: wp-content/up/evil" in refused.stderr
    (stage / "members").write_bytes(b"--to-command=touch /tmp/pf-pwned\0")  # a name, never an option
    subprocess.run(["bash", "-c", (SCRIPTS / "restore_extract.sh").read_text(), "bash", str(stage / "tree3"),
                    str(stage / "members"), str(stage / "links")], input=archive, capture_output=True)
    assert not os.path.exists("/tmp/pf-pwned")


def test_the_swap_refuses_a_link_on_the_way_and_replaces_a_planted_side_link(tmp_path):
    canary = tmp_path / "elsewhere"
    canary.mkdir()
    (canary / "keep").write_text("keep")
    base, tree = tmp_path / "htdocs", tmp_path / "tree"
    (tree / "wp-content" / "uploads").mkdir(parents=True)
    (tree / "wp-content" / "uploads" / "new").write_text("new")
    (tree / "ads.txt").write_text("ads")
    base.mkdir()
    os.symlink(canary, base / "wp-content")  # the site's user swapped wp-content for a link
    refused = _script("restore_files_finish.sh", base, tree, "wp-content/uploads",
                      stdin=b"wp-content\0wp-content/uploads\0wp-content/uploads/new\0ads.txt\0")
    assert refused.returncode == 2 and b"is a symbolic link" in refused.stderr
    assert sorted(os.listdir(canary)) == ["keep"]
    os.unlink(base / "wp-content")
    (base / "wp-content" / "uploads").mkdir(parents=True)
    os.symlink(canary, base / "wp-content" / "uploads.pressfleet-old")  # a side name planted as a link
    os.symlink(canary / "keep", base / "ads.txt")
    done = _script("restore_files_finish.sh", base, tree, "wp-content/uploads", "ads.txt",
                   stdin=b"wp-content\0wp-content/uploads\0wp-content/uploads/new\0ads.txt\0")
    assert done.returncode == 0, done.stderr
    assert (base / "wp-content" / "uploads" / "new").read_text() == "new"
    assert (base / "ads.txt").read_text() == "ads" and not (base / "ads.txt").is_symlink()
    assert (canary / "keep").read_text() == "keep" and sorted(os.listdir(canary)) == ["keep"]
