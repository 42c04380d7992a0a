"""Last of the lab tests (by file name): five hosts at once, then `lab down --all` leaves nothing behind.
It stops every lab host, so it runs after the tests that share hosts."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pressfleet import lab
from tests.lab.test_lab import ssh

pytestmark = pytest.mark.lab


def test_five_hosts_at_once_then_down_all_leaves_nothing(lab_pool):
    names = ["d1", "d2", "d3", "d4", "d5"]
    with ThreadPoolExecutor(5) as ex:
        hosts = list(ex.map(lab_pool.fresh, names))
    assert len({h.address for h in hosts}) == 5
    with ThreadPoolExecutor(5) as ex:
        outs = list(ex.map(lambda h: ssh(h, "hostname").stdout.strip(), hosts))
    assert outs == [f"pt-{n}" for n in names]
    listed = {h["name"] for h in lab.list_hosts() if h["running"]}
    assert {h.name for h in hosts} <= listed

    proc = subprocess.run([sys.executable, "-m", "pressfleet.cli", "lab", "down", "--all"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout)["stopped"]) >= {h.name for h in hosts}
    for h in hosts:
        assert not lab._pid_alive(h.pid, "systemd-nspawn")
    assert not Path(f"/sys/class/net/{lab.BRIDGE}").exists()
    assert not [p for p in Path("/run/netns").iterdir() if p.name.startswith("pf-")] if Path("/run/netns").exists() else True
    mounts = Path("/proc/self/mounts").read_text()
    assert str(lab.hosts_dir()) not in mounts
    assert not [l for l in Path("/sys/class/net").iterdir() if l.name.startswith("pfv")]
    assert not lab._pid_alive(lab._proxy_pid(), "apt-cacher-ng")
    assert not lab._pid_alive(lab._mirror_pid(), "http.server")
    lab_pool.hosts.clear()
