"""Owner-only state (issue 9, item 15), the parts that need no server: local storage and the metrics store
create their files 0600 and folders 0700 whatever the umask, start-up takes group/other bits off what is
there without following links, and the lab's file trees stay readable by a host's other users."""

from __future__ import annotations

import os
import stat

import pytest

from pressfleet.paths import private_dirs, secure_tree, world_readable

pytestmark = pytest.mark.unit


@pytest.fixture
def open_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_local_storage_objects_and_folders_are_the_owners_alone(tmp_path, open_umask):
    from pressfleet.storage.local import LocalStore

    store = LocalStore(tmp_path)
    store.put_bytes("blog/backups/1/config.tar.zst", b"wp-config.php")
    assert store.put_if_absent("blog/verified/1.json", b"{}") is not None
    for dirpath, dirnames, filenames in os.walk(tmp_path):
        for d in dirnames:
            assert mode(os.path.join(dirpath, d)) == 0o700, d
        for f in filenames:
            assert mode(os.path.join(dirpath, f)) == 0o600, f
    assert store.get_bytes("blog/backups/1/config.tar.zst") == b"wp-config.php"


def test_the_metrics_database_and_its_wal_are_the_owners_alone(tmp_path, open_umask):
    from pressfleet.metrics.store import MetricsStore, Point

    s = MetricsStore(f"sqlite:///{tmp_path / 'metrics' / 'm.db'}")
    try:
        s.write_points([Point(0, "h", "load1", 1.0)])
        files = sorted(p.name for p in (tmp_path / "metrics").iterdir())
        assert "m.db" in files and "m.db-wal" in files
        assert {p: mode(tmp_path / "metrics" / p) for p in files} == {p: 0o600 for p in files}
        assert mode(tmp_path / "metrics") == 0o700
    finally:
        s.close()


def test_secure_tree_closes_what_is_there_and_never_follows_a_link(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours to change")
    os.chmod(outside, 0o644)
    state = tmp_path / "state"
    (state / "a" / "b").mkdir(parents=True)
    os.chmod(state / "a", 0o755)
    (state / "a" / "b" / "f").write_text("x")
    os.chmod(state / "a" / "b" / "f", 0o664)
    (state / "tool").write_text("#!/bin/sh\n")
    os.chmod(state / "tool", 0o755)
    os.symlink(outside, state / "link")
    changed = secure_tree(state)
    assert mode(state / "a") == 0o700 and mode(state / "a" / "b" / "f") == 0o600
    assert mode(state / "tool") == 0o700  # executables keep their owner's x
    assert mode(outside) == 0o644 and str(state / "link") not in changed
    assert secure_tree(state) == []  # nothing left to change


def test_private_dirs_makes_every_new_level_0700_and_leaves_the_stop_alone(tmp_path, open_umask):
    os.chmod(tmp_path, 0o755)
    private_dirs(tmp_path / "x" / "y" / "z", stop=tmp_path)
    assert [mode(tmp_path / p) for p in ("x", "x/y", "x/y/z")] == [0o700] * 3
    assert mode(tmp_path) == 0o755


def test_the_lab_builds_readable_trees_under_a_private_umask(tmp_path):
    old = os.umask(0o077)
    try:
        @world_readable
        def build():
            (tmp_path / "root" / "etc").mkdir(parents=True)
            (tmp_path / "root" / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
            return os.umask(0o022)

        assert build() == 0o022
        assert mode(tmp_path / "root") == 0o755 and mode(tmp_path / "root" / "etc" / "hosts") == 0o644
        assert os.umask(0o077) == 0o077  # the caller's umask is back
    finally:
        os.umask(old)
