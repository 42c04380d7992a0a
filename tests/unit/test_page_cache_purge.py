"""A site's page purge removes its cached pages only (the script run here on a cache folder laid out as nginx's)."""

from __future__ import annotations

import os
import subprocess

import pytest

from pressfleet.ssh.pagecache import SCRIPT

pytestmark = pytest.mark.unit


def cached(folder, name: str, key: str) -> None:
    path = folder / name[-1] / name[-3:-1] / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x05\x00binary header\nKEY: " + key.encode() + b"\n\r\nStatus: 200\r\n\r\n<html>")


def purge(cache, *names: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", SCRIPT, "sh", *names], capture_output=True, text=True,
                          env={**os.environ, "PRESSFLEET_PAGE_CACHE": str(cache)})


def test_only_the_sites_pages_go(tmp_path):
    cache = tmp_path / "cache"
    cached(cache, "a" * 31 + "1", "httpsGETone.test/")
    cached(cache, "b" * 31 + "2", "httpsGETone.test/?p=1")
    cached(cache, "c" * 31 + "3", "httpsHEADwww.one.test/feed/")
    cached(cache, "d" * 31 + "4", "httpsGETone.test.evil.test/")  # another site whose name starts like one's
    cached(cache, "e" * 31 + "5", "httpsGETtwo.test/one.test/")
    done = purge(cache, "one.test", "www.one.test")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "removed 3 cached pages of one.test\n"
    left = sorted(p.name[-1] for p in cache.rglob("*") if p.is_file())
    assert left == ["4", "5"]
    assert purge(cache, "one.test").stdout == ""  # nothing left to remove


def test_bad_names_and_a_linked_cache_are_refused(tmp_path):
    assert purge(tmp_path, "one.test; rm -rf /").returncode == 3
    assert purge(tmp_path, "../etc").returncode == 3
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    refused = purge(tmp_path / "link", "one.test")
    assert refused.returncode == 3 and "is a link" in refused.stderr
