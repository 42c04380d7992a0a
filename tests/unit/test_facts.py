"""Parsing the host facts script's output (no server needed)."""

from __future__ import annotations

import re
import subprocess

import pytest

from pressfleet.plan import facts
from pressfleet.plan.facts import FactsParseError, HostFacts, parse_host_facts

pytestmark = pytest.mark.unit

# Captured from a pristine lab host (Debian 12 in systemd-nspawn), /proc/meminfo shortened.
LAB_HOST_OUTPUT = """\

@@pressfleet-facts os-release@@
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"

@@pressfleet-facts hostname@@
hf1

@@pressfleet-facts kernel@@
6.18.44-fc-v857

@@pressfleet-facts cpus@@
2

@@pressfleet-facts meminfo@@
MemTotal:       24683652 kB
MemFree:        22846768 kB
MemAvailable:   23910784 kB
Buffers:           41040 kB
Cached:          1146400 kB
SwapCached:            0 kB
Active:           477120 kB
Inactive:        1054072 kB
Active(anon):       1600 kB
Inactive(anon):   351168 kB
Active(file):     475520 kB
Inactive(file):   702904 kB
Unevictable:       11768 kB
Mlocked:           10916 kB
SwapTotal:             0 kB
SwapFree:              0 kB

@@pressfleet-facts disks@@
overlay 270553174016 25509212160 83435081728 /

@@pressfleet-facts packages@@
openssh-server ii  1:9.2p1-2+deb12u10
systemd ii  252.39-1~deb12u2

@@pressfleet-facts services@@
dbus.service             loaded active running D-Bus System Message Bus
ssh.service              loaded active running OpenBSD Secure Shell server
systemd-journald.service loaded active running Journal Service
systemd-logind.service   loaded active running User Login Management
user@0.service           loaded active running User Manager for UID 0

@@pressfleet-facts virtualization@@
systemd-nspawn

@@pressfleet-facts end@@
"""


def test_parses_a_real_lab_host():
    f = parse_host_facts(LAB_HOST_OUTPUT)
    assert f.hostname == "hf1"
    assert (f.os_id, f.os_version) == ("debian", "12")
    assert f.os_pretty_name == "Debian GNU/Linux 12 (bookworm)"
    assert f.kernel == "6.18.44-fc-v857"
    assert f.cpus == 2
    assert f.mem_total_bytes == 24683652 * 1024
    assert f.mem_available_bytes == 23910784 * 1024
    assert f.swap_total_bytes == 0
    assert f.virtualization == "systemd-nspawn"
    root = f.root_disk()
    assert root is not None and root.fstype == "overlay" and root.size_bytes == 270553174016
    assert f.packages["openssh-server"] == "1:9.2p1-2+deb12u10"
    assert f.packages["systemd"] == "252.39-1~deb12u2"
    assert f.packages["nginx"] is None
    assert set(f.packages) == set(facts.KEY_PACKAGES)
    assert "ssh.service" in f.services and "user@0.service" in f.services
    assert f.is_running("ssh") and f.is_running("ssh.service") and not f.is_running("nginx")


def test_round_trips_through_json():
    f = parse_host_facts(LAB_HOST_OUTPUT)
    assert HostFacts.model_validate_json(f.model_dump_json()) == f


def test_package_states():
    lines = [
        "nginx ii  1.22.1-9+deb12u1",
        "fail2ban rc  1.0.2-2",  # removed, config files left: not installed
        "redis-server un  ",  # known to dpkg, never installed
        "mariadb-server iU  1:10.11.6-0+deb12u1",  # unpacked but not configured: not counted
        "nftables hi  1.0.6-2+deb12u2",  # on hold, installed
    ]
    got = facts.parse_packages(lines)
    assert got["nginx"] == "1.22.1-9+deb12u1"
    assert got["fail2ban"] is None
    assert got["redis-server"] is None
    assert got["nftables"] == "1.0.6-2+deb12u2"
    assert got["mariadb-server"] is None
    assert got["certbot"] is None


def test_optional_sections_may_be_missing():
    text = "\n".join(
        line for line in LAB_HOST_OUTPUT.splitlines()
        if not re.match(r"^(overlay |openssh-server |systemd |\S+\.service |systemd-nspawn$|@@pressfleet-facts (disks|packages|services|virtualization)@@)", line)
    )
    f = parse_host_facts(text)
    assert f.disks == [] and f.services == []
    assert f.virtualization == "unknown"
    assert all(v is None for v in f.packages.values())


def test_mount_points_with_spaces_and_several_disks():
    text = LAB_HOST_OUTPUT.replace(
        "overlay 270553174016 25509212160 83435081728 /",
        "ext4 1000 400 600 /\next4 2000 100 1900 /srv/my data",
    )
    disks = parse_host_facts(text).disks
    assert [d.mount for d in disks] == ["/", "/srv/my data"]
    assert disks[1].avail_bytes == 1900


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no host facts sections"),
        ("Permission denied (publickey).", "no host facts sections"),
        ("<html>502 Bad Gateway</html>\n" * 3, "no host facts sections"),
        ("@@pressfleet-facts os-release@@\nID=debian\n", "lacks the section"),
    ],
)
def test_garbage_is_refused_clearly(text, message):
    with pytest.raises(FactsParseError, match=message):
        parse_host_facts(text)


def test_cut_off_output_says_so():
    cut = LAB_HOST_OUTPUT.split("@@pressfleet-facts cpus@@")[0]
    with pytest.raises(FactsParseError, match="cut off"):
        parse_host_facts(cut)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("\n2\n", "\nlots\n", "cpus"),
        ("ID=debian\n", "", "no ID="),
        ("MemTotal:       24683652 kB\n", "", "MemTotal"),
        ("overlay 270553174016 25509212160 83435081728 /", "overlay big used free /", "disks"),
        ("\nhf1\n", "\nhf1\nhf2\n", "hostname"),
    ],
)
def test_bad_values_name_their_section(old, new, message):
    assert old in LAB_HOST_OUTPUT
    with pytest.raises(FactsParseError, match=message):
        parse_host_facts(LAB_HOST_OUTPUT.replace(old, new, 1))


def test_non_text_is_refused():
    with pytest.raises(FactsParseError):
        parse_host_facts(None)  # type: ignore[arg-type]


def test_script_runs_here_and_parses():
    """This machine is Debian 12 too: run the real script locally with sh -s."""
    proc = subprocess.run(
        facts.host_facts_command(), input=facts.script_text(), capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    f = parse_host_facts(proc.stdout)
    assert f.os_id == "debian"
    assert f.cpus >= 1 and f.mem_total_bytes > 0
    assert f.root_disk() is not None
    assert all(d.fstype not in {"tmpfs", "devtmpfs"} for d in f.disks)


def test_facts_table_rows():
    rows = facts.facts_table(parse_host_facts(LAB_HOST_OUTPUT))
    assert all(set(row) == {"fact", "value"} for row in rows)
    as_dict = {row["fact"]: row["value"] for row in rows}
    assert as_dict["os"] == "Debian GNU/Linux 12 (bookworm) (debian 12)"
    assert as_dict["package nginx"] == "not installed"
    assert as_dict["package systemd"] == "252.39-1~deb12u2"
    assert as_dict["disk /"].startswith("overlay: ")
    assert as_dict["memory"] == "23.5 GiB total, 22.8 GiB available"
    assert as_dict["swap"] == "none"


@pytest.mark.parametrize(
    ("address", "key"),
    [("10.200.0.21", "host-facts-10-200-0-21"), ("Web1.Example.com", "host-facts-web1-example-com"),
     ("2001:db8::1", "host-facts-2001-db8-1")],
)
def test_artifact_key(address, key):
    assert facts.artifact_key(address) == key
    assert re.fullmatch(r"[a-z0-9-]+", facts.artifact_key(address))
