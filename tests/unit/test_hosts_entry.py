"""The /etc/hosts entry of one site never takes another site's line (the script run on a copy of a hosts file)."""

from __future__ import annotations

import subprocess

import pytest

from tasks.wordpress import _HOSTS_SCRIPT

pytestmark = pytest.mark.unit


def run_on(hosts, site: str, *names: str) -> str:
    script = _HOSTS_SCRIPT.replace("/etc/hosts", str(hosts))
    return subprocess.run(["sh", "-c", script, "sh", site, *names], check=True, capture_output=True, text=True).stdout


def test_re_entering_site_one_keeps_site_one_two_line(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    run_on(hosts, "one_two", "onetwo.test")
    run_on(hosts, "one", "one.test")
    assert run_on(hosts, "one", "one.test", "www.one.test") == "changed\n"  # a new alias rewrites one's line only
    lines = hosts.read_text().splitlines()
    assert lines == ["127.0.0.1 localhost", "127.0.0.1 onetwo.test # pressfleet:one_two",
                     "127.0.0.1 one.test www.one.test # pressfleet:one"]
    assert run_on(hosts, "one", "one.test", "www.one.test") == ""  # nothing to change
