"""Issue 9 item 13: the restore-test's default scratch target (a fresh lab host) works on a machine with IP
forwarding on (most machines that run Docker), and the lab's hosts still cannot reach out.

This machine keeps forwarding off, so the test makes such a machine: a network namespace of its own with
net.ipv4.ip_forward=1 and an "outside" network routed from it, and runs the restore-test's target selection
(`flows.restore_test.scratch_server`) inside it, in a lab namespace of its own (bridge, proxy, hosts folder)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pressfleet.paths import ROOT, lab_dir
from tests.conftest import TEST_PREFIX

pytestmark = pytest.mark.lab

NETNS = f"{TEST_PREFIX}fwd"              # the "machine" with forwarding on
OUTSIDE_NETNS = f"{TEST_PREFIX}fwdo"     # a network beyond it: what a lab host must never reach
LAB_NAMESPACE = ("f" + re.sub(r"[^a-z0-9]", "", TEST_PREFIX))[:6]
LAB_NETWORK = "10.202.0.0/24"
OUTSIDE = "10.250.0.2"

# Runs inside NETNS: the restore-test's default scratch target, then a lab host trying to route out.
SCRIPT = r"""
import json, subprocess, sys
from pressfleet.lab import hosts as lab
from pressfleet.ssh.remote import run
from flows.restore_test import scratch_server

def reach(conn):
    r = run(conn, ["sh", "-c", "ip route replace default via \"$1\" && curl -sS -m 3 -o /dev/null -w '%{http_code}' "
                   "\"http://$2:8000/\"", "sh", str(lab.namespace().bridge_address), sys.argv[1]], check=False)
    return r.stdout.strip() or r.stderr.strip()

out = {}
with scratch_server("fwd", None) as (server, where):
    out["where"] = where
    ns = lab.namespace()
    with server.connect() as conn:
        out["hostname"] = run(conn, ["hostname"]).stdout.strip()
        out["bridge_forwarding"] = open(f"/proc/sys/net/ipv4/conf/{ns.bridge}/forwarding").read().strip()
        out["guarded"] = reach(conn)
        # What the guard prevents: without it, this "machine" routes the host out.
        subprocess.run(["nft", "delete", "table", "inet", ns.nft_table], check=True)
        open(f"/proc/sys/net/ipv4/conf/{ns.bridge}/forwarding", "w").write("1\n")
        out["unguarded"] = reach(conn)
        out["restored"] = lab.guard_forwarding()  # what every `lab up` checks
        out["guarded_again"] = reach(conn)
print(json.dumps(out))
"""


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=120)


# `ip netns exec` mounts a sysfs without the cgroup tree systemd-nspawn needs: enter NETNS in a private mount
# namespace instead, with a sysfs of NETNS and this machine's cgroup tree bound back in place.
ENTER = r"""
set -e
netns=$1 cg=$2; shift 2
mount --rbind /sys/fs/cgroup "$cg"
exec nsenter --net="/run/netns/$netns" sh -ec 'cg=$1; shift; mount -t sysfs sysfs /sys; mount --rbind "$cg" /sys/fs/cgroup; exec "$@"' sh "$cg" "$@"
"""


@pytest.fixture
def forwarding_machine(tmp_path):
    """NETNS with ip_forward=1, routing to OUTSIDE_NETNS where a web server answers on OUTSIDE:8000.
    Yields the command prefix that runs a command "on" that machine."""
    for ns in (NETNS, OUTSIDE_NETNS):
        _sh("ip", "netns", "del", ns, check=False)
        _sh("ip", "netns", "add", ns)
    server = None
    try:
        in_ns = ["ip", "netns", "exec", NETNS]
        in_out = ["ip", "netns", "exec", OUTSIDE_NETNS]
        _sh(*in_ns, "ip", "link", "set", "lo", "up")
        _sh(*in_ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        _sh(*in_ns, "ip", "link", "add", "out0", "type", "veth", "peer", "name", "in0", "netns", OUTSIDE_NETNS)
        _sh(*in_ns, "ip", "addr", "add", "10.250.0.1/24", "dev", "out0")
        _sh(*in_ns, "ip", "link", "set", "out0", "up")
        _sh(*in_out, "ip", "link", "set", "lo", "up")
        _sh(*in_out, "ip", "addr", "add", f"{OUTSIDE}/24", "dev", "in0")
        _sh(*in_out, "ip", "link", "set", "in0", "up")
        _sh(*in_out, "ip", "route", "add", "default", "via", "10.250.0.1")
        server = subprocess.Popen([*in_out, sys.executable, "-m", "http.server", "--bind", OUTSIDE, "8000"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/tmp")
        assert _sh(*in_ns, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
        assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "0"  # this machine's stays off
        (tmp_path / "cgroup").mkdir()
        yield ["unshare", "-m", "--propagation", "private", "sh", "-c", ENTER, "sh", NETNS, str(tmp_path / "cgroup")]
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        env = {**os.environ, "PRESSFLEET_LAB_NAMESPACE": LAB_NAMESPACE, "PRESSFLEET_LAB_NETWORK": LAB_NETWORK}
        enter = ["unshare", "-m", "--propagation", "private", "sh", "-c", ENTER, "sh", NETNS, str(tmp_path / "cgroup")]
        subprocess.run([*enter, sys.executable, "-c", "from pressfleet import lab; lab.down_all()"],
                       env=env, cwd=ROOT, capture_output=True, timeout=120)
        for ns in (NETNS, OUTSIDE_NETNS):
            _sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(lab_dir() / "ns" / LAB_NAMESPACE, ignore_errors=True)  # its proxy's empty cache, its folders


def test_restore_test_default_scratch_works_with_global_forwarding_on(forwarding_machine):
    env = {**os.environ, "PRESSFLEET_LAB_NAMESPACE": LAB_NAMESPACE, "PRESSFLEET_LAB_NETWORK": LAB_NETWORK}
    proc = subprocess.run([*forwarding_machine, sys.executable, "-c", SCRIPT, OUTSIDE], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["hostname"] == "rt-fwd" and out["where"].startswith("fresh lab host rt-fwd (10.202.0.")
    assert out["bridge_forwarding"] == "0"
    assert out["unguarded"] == "200", out  # the outside network is reachable from this "machine" ...
    assert out["guarded"] != "200" and out["guarded_again"] != "200", out  # ... but never from a lab host
    assert f"net.ipv4.conf.pf{LAB_NAMESPACE}br.forwarding=0" in out["restored"]
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "0"


REFUSAL = r"""
from pressfleet.lab import hosts as lab
from pressfleet.validate import InvalidInput
from flows.restore_test import scratch_server
try:
    with scratch_server("fwd", None):
        print("BOOTED")
except InvalidInput as exc:
    print(exc)
print("bridge:", lab._bridge_exists(), "host:", (lab.hosts_dir() / "rt-fwd").exists())
"""


def test_without_nft_the_restore_test_says_which_scratch_setting_to_use_and_changes_nothing(forwarding_machine):
    """Where the guard cannot be installed (no nft), forwarding on: one sentence naming the setting, nothing booted."""
    env = {**os.environ, "PRESSFLEET_LAB_NAMESPACE": LAB_NAMESPACE, "PRESSFLEET_LAB_NETWORK": LAB_NETWORK}
    no_nft = ["sh", "-c", 'mount --bind /dev/null /usr/sbin/nft && exec "$@"', "sh"]  # in the private mount namespace
    proc = subprocess.run([*forwarding_machine, *no_nft, sys.executable, "-c", REFUSAL], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    message, state = proc.stdout.strip().splitlines()[-2:]
    assert "BOOTED" not in proc.stdout
    assert message.startswith("no scratch server was given") and "IP forwarding is on" in message
    assert "nftables" in message and "`scratch` parameter to a Server block" in message
    assert message.count(". ") == 0 and message.count("\n") == 0  # one sentence
    assert state == "bridge: False host: False"
    assert Path("/usr/sbin/nft").stat().st_size > 0  # the machine's own nft was never touched
