"""The lab boots real, pristine Debian 12 hosts: systemd as PID 1, key-only sshd, own host keys,
apt only through the proxy on the bridge, no route out; five at once; `down --all` leaves nothing."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pressfleet.lab import hosts as lab

pytestmark = pytest.mark.lab


def ssh(host: lab.LabHost, command: str, *, key: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    known = Path(host.private_key_path).parent / f"known-{host.name}"
    known.write_text(f"{host.address} {host.host_key}\n")
    proc = subprocess.run(
        ["ssh", "-i", key or host.private_key_path, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
         "-o", f"UserKnownHostsFile={known}", "-o", "GlobalKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes",
         "-p", str(host.port), f"{host.user}@{host.address}", command],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_host_is_pristine_debian12_with_systemd(lab_host):
    out = ssh(lab_host, "cat /etc/debian_version; readlink /proc/1/exe; systemctl is-system-running --wait; "
                        "dpkg-query -W -f='${Package}\\n' nginx mariadb-server php8.2-fpm 2>/dev/null | wc -l").stdout.split()
    assert out[0].startswith("12.")
    assert out[1].endswith("/systemd")
    assert out[2] == "running"
    assert out[3] == "0"  # nothing of the stack is there yet


def test_host_key_is_pinned_and_unique(lab_pool, lab_host):
    other = lab_pool.get("b")
    assert other.host_key != lab_host.host_key
    assert other.address != lab_host.address
    assert lab_host.fingerprint.startswith("SHA256:")
    # The key ssh sees is the one `up` reported (StrictHostKeyChecking=yes against it alone).
    ssh(other, "true")
    wrong = subprocess.run(
        ["ssh-keyscan", "-t", "ed25519", other.address], capture_output=True, text=True, timeout=20
    ).stdout.split()
    assert f"{wrong[1]} {wrong[2]}" == other.host_key


def test_sshd_is_key_only(lab_host, tmp_path):
    cfg = ssh(lab_host, "sshd -T").stdout.lower()
    assert "passwordauthentication no" in cfg
    assert "kbdinteractiveauthentication no" in cfg
    assert "permitrootlogin without-password" in cfg
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    refused = ssh(lab_host, "true", key=str(stranger), check=False)
    assert refused.returncode == 255
    assert "Permission denied" in refused.stderr


def test_apt_only_through_the_proxy_and_no_route_out(lab_host):
    out = ssh(lab_host, "ip -4 route; apt-config dump Acquire::http::Proxy; apt-get update -q 2>&1 | tail -1").stdout
    assert "default" not in out  # no route anywhere but the lab subnet
    assert f'"http://{lab.namespace().bridge_address}:{lab.PROXY_PORT}"' in out  # the session's namespace
    assert "Reading package lists" in out or "Fetched" in out
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "0"


def test_boot_to_ssh_is_quick(lab_pool):
    started = time.monotonic()
    host = lab_pool.fresh("c")
    elapsed = time.monotonic() - started
    ssh(host, "true")
    lab_pool.stop("c")
    # Not a speed goal (that lives in benchmarks): a sanity bound that catches a broken boot wait.
    assert elapsed < 30, elapsed


def test_mirror_serves_a_verified_wordpress_release(lab_host):
    release = lab.ensure_mirror()
    assert release["version"].startswith("6.1.")
    out = ssh(lab_host, f"curl -fsS {release['url']} | sha256sum; curl -fsS {release['url']} | tar tz | grep -c '^wordpress/wp-includes/version.php$'").stdout.split()
    assert out[0] == release["sha256"]
    assert out[-1] == "1"


def test_lab_up_cli_prints_json_and_saves_a_server_block_that_lab_down_deletes(prefect_harness):
    """`pressfleet lab up` prints how to reach the host and saves `lab-NAME`, usable by flows at once;
    `pressfleet lab down` deletes that block with the host."""
    import os

    from prefect.settings import PREFECT_API_URL

    from blocks.server import Server
    from tests.conftest import TEST_PREFIX

    name = f"{TEST_PREFIX}cli"
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    try:
        proc = subprocess.run([sys.executable, "-m", "pressfleet.cli.main", "lab", "up", name],
                              capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr
        info = json.loads(proc.stdout)
        assert {"address", "port", "user", "private_key_path", "fingerprint", "host_key"} <= set(info)
        assert info["block"] == f"lab-{name}"
        assert ipaddress.ip_address(info["address"]) in lab.namespace().network
        server = Server.load(f"lab-{name}")
        assert server.address == info["address"] and server.host_key == info["host_key"]
        assert server.fingerprint() == info["fingerprint"]
        with server.connect() as conn:
            from pressfleet.ssh.remote import run

            assert run(conn, ["hostname"]).stdout.strip() == name
        down = subprocess.run([sys.executable, "-m", "pressfleet.cli.main", "lab", "down", name],
                              capture_output=True, text=True, timeout=300, env=env)
        assert down.returncode == 0, down.stderr
        assert json.loads(down.stdout) == {"stopped": [name], "blocks_removed": [f"lab-{name}"]}
        with pytest.raises(ValueError):
            Server.load(f"lab-{name}")
    finally:
        lab.down(name)


def test_lab_down_keeps_a_lab_block_that_points_elsewhere(prefect_harness, lab_host):
    """A `lab-NAME` block a person pointed at another server is not `lab down`'s to delete."""
    import os

    from prefect.settings import PREFECT_API_URL

    from blocks.server import Server
    from pressfleet.lab.blocks import delete_lab_server_block, server_for
    from tests.conftest import TEST_PREFIX

    other = server_for(lab_host)
    other.save(f"lab-{lab_host.name}", overwrite=True)
    moved = lab.LabHost(**{**vars(lab_host), "address": str(lab.namespace().network.network_address + 251)})
    assert delete_lab_server_block(moved) is None  # same name, another address: kept
    assert Server.load(f"lab-{lab_host.name}").address == lab_host.address
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    ghost = f"{TEST_PREFIX}ghost"
    other.save(f"lab-{ghost}", overwrite=True)  # a block named like a lab host that does not exist here
    proc = subprocess.run([sys.executable, "-m", "pressfleet.cli.main", "lab", "down", ghost],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"stopped": [], "blocks_removed": []}
    assert Server.load(f"lab-{ghost}").address == lab_host.address
    assert delete_lab_server_block(lab_host) == f"lab-{lab_host.name}"
