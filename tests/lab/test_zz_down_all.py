"""Last of the lab tests (by file name): five hosts at once, then the lab tier's teardown, `lab down --all`
in the tests' own lab namespace, leaves nothing of the session behind and nothing of anyone else's gone:
a host brought up "outside" the suite (the operator's namespace, as `make demo` boots web1) still answers.
It stops every host of this session's prefix, so it runs after the tests that share hosts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pressfleet.lab import hosts as lab
from tests.conftest import TEST_PREFIX
from tests.lab.test_lab import ssh

pytestmark = pytest.mark.lab

CLI = [sys.executable, "-m", "pressfleet.cli.main"]


def _cli(*args: str, env: dict) -> dict:
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_five_hosts_then_down_all_leaves_nothing_of_the_suite_and_spares_a_host_outside_it(lab_pool, prefect_harness):
    from prefect.settings import PREFECT_API_URL

    from blocks.server import Server

    ns = lab.namespace()
    assert not ns.is_default, "the suite runs in its own lab namespace (tests/conftest.py)"
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    operator_env = {k: v for k, v in env.items() if k != lab.NAMESPACE_ENV}  # the operator's own lab
    operator_lab_was_up = Path(f"/sys/class/net/{lab.BRIDGE}").exists()
    outside = f"{TEST_PREFIX}out"
    try:
        info = _cli("lab", "up", outside, env=operator_env)
        assert info["address"].startswith("10.200.0.") and info["block"] == f"lab-{outside}"
        outside_host = lab.LabHost(**{k: v for k, v in info.items() if k != "block"})

        names = ["d1", "d2", "d3", "d4", "d5"]
        with ThreadPoolExecutor(5) as ex:
            hosts = list(ex.map(lab_pool.fresh, names))
        assert len({h.address for h in hosts}) == 5
        with ThreadPoolExecutor(5) as ex:
            outs = list(ex.map(lambda h: ssh(h, "hostname").stdout.strip(), hosts))
        assert outs == [f"{TEST_PREFIX}{n}" for n in names]
        listed = {h["name"] for h in lab.list_hosts() if h["running"]}
        assert {h.name for h in hosts} <= listed
        assert outside not in listed  # another namespace's host is not this lab's

        stopped = _cli("lab", "down", "--all", "--prefix", TEST_PREFIX, env=env)["stopped"]
        assert set(stopped) >= {h.name for h in hosts} and outside not in stopped
        for h in hosts:
            assert not lab._pid_alive(h.pid, "systemd-nspawn")
        netns = [p.name for p in Path("/run/netns").iterdir()] if Path("/run/netns").exists() else []
        assert not [n for n in netns if n.startswith(ns.netns_prefix + TEST_PREFIX)]
        assert str(lab.hosts_dir() / TEST_PREFIX) not in Path("/proc/self/mounts").read_text()
        if not lab.list_hosts():  # no other session shares the namespace: its services are gone too
            assert not Path(f"/sys/class/net/{ns.bridge}").exists()
            assert not [n for n in netns if n.startswith(ns.netns_prefix)]
            assert not [link for link in Path("/sys/class/net").iterdir() if link.name.startswith(ns.veth_prefix)]
            assert not lab._pid_alive(lab._proxy_pid(), "apt-cacher-ng")
            assert not lab._pid_alive(lab._mirror_pid(), "http.server")
            assert subprocess.run(["nft", "list", "table", "inet", ns.nft_table], capture_output=True).returncode != 0
        lab_pool.hosts.clear()

        # The host outside the suite, its bridge and its block are untouched.
        assert Path(f"/sys/class/net/{lab.BRIDGE}").exists()
        assert ssh(outside_host, "hostname").stdout.strip() == outside
        assert Server.load(f"lab-{outside}").host_key == outside_host.host_key
    finally:
        removed = subprocess.run([*CLI, "lab", "down", outside], capture_output=True, text=True, timeout=300,
                                 env=operator_env)
        if not operator_lab_was_up:  # the suite brought the operator's lab up (a fresh machine): take it down
            subprocess.run([*CLI, "lab", "down", "--all", "--prefix", TEST_PREFIX], capture_output=True,
                           timeout=300, env=operator_env)
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout) == {"stopped": [outside], "blocks_removed": [f"lab-{outside}"]}
