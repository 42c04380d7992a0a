"""How visitors reach a site's primary, behind one interface: HAProxy on a front, or Route 53 records.

`traffic_for(pair)` gives the pair's Traffic. `apply(pair)` makes the traffic side say what the pair says
(primary in traffic, standby checked but out of it, a fenced server withdrawn); `view(pair)` is the traffic
side's own health view of each server (None: this kind of traffic cannot look).
"""

from __future__ import annotations

import time
from typing import Optional, Protocol

from pressfleet.dr import haproxy
from pressfleet.ssh.remote import run

_STAT_SCRIPT = f"""
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(3)
s.connect({haproxy.ADMIN_SOCKET!r})
s.sendall(b"show stat\\n")
out = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    out += chunk
sys.stdout.write(out.decode())
"""


class Traffic(Protocol):
    def apply(self, pair) -> list[str]: ...
    def view(self, pair) -> dict[str, Optional[bool]]: ...
    def describe(self) -> str: ...


def roles(pair) -> list[haproxy.FrontServer]:
    standby_role = "standby" if pair.standby_state == "replica" else "fenced"
    return [haproxy.FrontServer(pair.primary.address, "primary"),
            haproxy.FrontServer(pair.standby.address, standby_role)]


class FrontTraffic:
    """HAProxy on the Front block's server: one file for every pair on that front, checked before a reload."""

    def __init__(self, front) -> None:
        self.front = front

    def describe(self) -> str:
        return f"front {self.front.server.address}"

    def _sites(self, pair) -> list[haproxy.FrontSite]:
        from blocks.site import WordPressSite
        from pressfleet.dr.pairs import saved_pairs
        from pressfleet.fleet.sites import site_block_name

        sites = {}
        for other in [*saved_pairs(), pair]:
            if other.traffic != "front" or other.front is None or other.front.server.address != self.front.server.address:
                continue
            domain = WordPressSite.load(site_block_name(other.site)).domain
            sites[other.site] = haproxy.FrontSite(other.site, domain, tuple(roles(other)))
        return list(sites.values())

    def apply(self, pair) -> list[str]:
        from pressfleet.ssh import converge
        from pressfleet.ssh.converge import ManagedFile

        text = haproxy.render(self._sites(pair))
        conn = self.front.server.connect()
        try:
            changed = converge.ensure_files(
                conn, [ManagedFile(haproxy.CONFIG_PATH, text.encode(), 0o644)],
                check=["haproxy", "-c", "-q", "-f", haproxy.CONFIG_PATH], on_change=["systemctl", "reload", "haproxy"])
            changed += converge.ensure_service(conn, "haproxy")
        finally:
            conn.close()
        return changed

    def view(self, pair) -> dict[str, Optional[bool]]:
        """Each of the pair's servers as the front's health checks see it (UP or DOWN), None if unknown."""
        try:
            conn = self.front.server.connect()
        except Exception:  # noqa: BLE001 - the front cannot be asked: that is an answer (None)
            return {pair.primary.address: None, pair.standby.address: None}
        try:
            out = run(conn, ["python3", "-"], stdin=_STAT_SCRIPT, check=False, timeout=10)
        finally:
            conn.close()
        stat = haproxy.parse_stat(out.stdout) if out.ok else {}
        result: dict[str, Optional[bool]] = {}
        for srv in roles(pair):
            status = stat.get((f"tls_{pair.site}", srv.name), "")
            result[srv.address] = None if not status or status.startswith("MAINT") else status.startswith("UP")
        return result


class DnsTraffic:
    """A Route 53 A record per site, UPSERTed to the primary's address (TTL from the block)."""

    def __init__(self, dns) -> None:
        self.dns = dns

    def describe(self) -> str:
        return f"Route 53 zone {self.dns.hosted_zone_id}"

    def apply(self, pair) -> list[str]:
        from blocks.site import WordPressSite
        from pressfleet.fleet.sites import site_block_name

        return self.point(WordPressSite.load(site_block_name(pair.site)).domain, pair.primary.address,
                          f"pressfleet: {pair.site} primary is {pair.primary.address}")

    def point(self, domain: str, address: str, comment: str = "pressfleet") -> list[str]:
        """DOMAIN's A record made to say ADDRESS with the block's TTL (nothing sent when it already does)."""
        from pressfleet import validate

        domain, address = validate.domain(domain), validate.hostname(address)
        client = self.dns.client()
        name = domain.rstrip(".") + "."
        current = client.list_resource_record_sets(HostedZoneId=self.dns.hosted_zone_id, StartRecordName=name,
                                                   StartRecordType="A", MaxItems="1")["ResourceRecordSets"]
        want = [{"Value": address}]
        if current and current[0]["Name"] == name and current[0]["Type"] == "A" \
                and current[0].get("ResourceRecords") == want and int(current[0].get("TTL", 0)) == self.dns.ttl:
            return []
        client.change_resource_record_sets(HostedZoneId=self.dns.hosted_zone_id, ChangeBatch={
            "Comment": comment,
            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
                "Name": name, "Type": "A", "TTL": self.dns.ttl, "ResourceRecords": want}}]})
        return [f"{name} A {address} (TTL {self.dns.ttl} s)"]

    def view(self, pair) -> dict[str, Optional[bool]]:
        return {pair.primary.address: None, pair.standby.address: None}

    def record(self, domain: str) -> Optional[str]:
        name = domain.rstrip(".") + "."
        sets = self.dns.client().list_resource_record_sets(HostedZoneId=self.dns.hosted_zone_id, StartRecordName=name,
                                                           StartRecordType="A", MaxItems="1")["ResourceRecordSets"]
        if sets and sets[0]["Name"] == name and sets[0]["Type"] == "A":
            return sets[0]["ResourceRecords"][0]["Value"]
        return None


class NoTraffic:
    def describe(self) -> str:
        return "no traffic switch (the site's DNS is managed elsewhere)"

    def apply(self, pair) -> list[str]:
        return []

    def view(self, pair) -> dict[str, Optional[bool]]:
        return {pair.primary.address: None, pair.standby.address: None}


def install_front(front) -> list[str]:
    """HAProxy from Debian on the front's server, with the sites of every pair on it (none yet: an empty front)."""
    from pressfleet.dr.pairs import saved_pairs
    from pressfleet.ssh import converge
    from pressfleet.ssh.converge import ManagedFile

    conn = front.server.connect()
    try:
        changed = []
        if not run(conn, ["test", "-x", "/usr/sbin/haproxy"], check=False).ok:
            run(conn, ["sh", "-c", "DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq && "
                       "DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq "
                       "--no-install-recommends haproxy python3 curl"], timeout=900)
            changed.append("installed haproxy")
        pairs = [p for p in saved_pairs() if p.traffic == "front" and p.front is not None
                 and p.front.server.address == front.server.address]
        sites = FrontTraffic(front)._sites(pairs[0]) if pairs else []
        changed += converge.ensure_files(conn, [ManagedFile(haproxy.CONFIG_PATH, haproxy.render(sites).encode(), 0o644)],
                                         check=["haproxy", "-c", "-q", "-f", haproxy.CONFIG_PATH],
                                         on_change=["systemctl", "reload-or-restart", "haproxy"])
        changed += converge.ensure_service(conn, "haproxy")
    finally:
        conn.close()
    return changed


def traffic_for(pair) -> Traffic:
    if pair.traffic == "front":
        return FrontTraffic(pair.front)
    if pair.traffic == "dns":
        return DnsTraffic(pair.dns)
    return NoTraffic()


def wait_until(check, timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False
