"""The front's HAProxy configuration (pure): TLS passed through by SNI to each site's current primary.

Every site has a backend with one server line per server of its pair, all health-checked every second over
HTTPS with the site's name (`/?pressfleet_health=1`: the query skips the page cache, so WordPress and its
database answer, not a cached copy). Only the primary carries traffic: the standby has weight 0 (checked, so
the front's view of it is known, but never sent a visitor), a fenced server is `disabled`. HAProxy never moves
traffic by itself: a standby that took writes before it was promoted would split the site in two; pressfleet
switches the weights after fencing (pressfleet.dr.traffic).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from pressfleet import validate
from pressfleet.validate import InvalidInput

CONFIG_PATH = "/etc/haproxy/haproxy.cfg"
ADMIN_SOCKET = "/run/haproxy/admin.sock"
HEALTH_PATH = "/?pressfleet_health=1"
Role = Literal["primary", "standby", "fenced"]


@dataclass(frozen=True)
class FrontServer:
    address: str
    role: Role

    def __post_init__(self) -> None:
        validate.hostname(self.address)
        if self.role not in ("primary", "standby", "fenced"):
            raise InvalidInput(f"{self.role!r} is not a role (primary, standby or fenced)")

    @property
    def name(self) -> str:
        """HAProxy's name for the server line: its address with dots and colons as underscores."""
        return "s_" + self.address.replace(".", "_").replace(":", "_")


@dataclass(frozen=True)
class FrontSite:
    site: str
    domain: str
    servers: tuple[FrontServer, ...]

    def __post_init__(self) -> None:
        validate.site_name(self.site)
        validate.domain(self.domain)
        if sum(s.role == "primary" for s in self.servers) > 1:
            raise InvalidInput(f"{self.site}: more than one primary on the front")
        if len({s.address for s in self.servers}) != len(self.servers):
            raise InvalidInput(f"{self.site}: a server is named twice")


def _addr(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
        return f"[{ip}]" if ip.version == 6 else str(ip)
    except ValueError:
        return address


def render(sites: list[FrontSite]) -> str:
    """/etc/haproxy/haproxy.cfg for these sites (sorted, so the same sites always give the same file)."""
    sites = sorted(sites, key=lambda s: s.site)
    if len({s.site for s in sites}) != len(sites) or len({s.domain for s in sites}) != len(sites):
        raise InvalidInput("a site or domain is on the front twice")
    out = [
        "# pressfleet: the front (pressfleet front add). Managed file: `haproxy -c` checks it before a reload.",
        "global",
        "    log /dev/log local0",
        "    chroot /var/lib/haproxy",
        f"    stats socket {ADMIN_SOCKET} mode 600 level admin",
        "    user haproxy",
        "    group haproxy",
        "    daemon",
        "",
        "defaults",
        "    log global",
        "    timeout connect 3s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout check 2s",
        "    default-server inter 1s fastinter 500ms downinter 1s fall 2 rise 2",
        "",
        "frontend https_in",
        "    mode tcp",
        "    bind :443",
        "    tcp-request inspect-delay 5s",
        "    tcp-request content accept if { req_ssl_hello_type 1 }",
    ]
    for s in sites:
        out.append(f"    use_backend tls_{s.site} if {{ req_ssl_sni -i {s.domain} }}")
    out += ["", "frontend http_in", "    mode http", "    bind :80", "    option forwardfor"]
    for s in sites:
        out.append(f"    use_backend http_{s.site} if {{ hdr(host),field(1,:) -i {s.domain} }}")
    for s in sites:
        for kind, port, mode in (("tls", 443, "tcp"), ("http", 80, "http")):
            out += ["", f"backend {kind}_{s.site}", f"    mode {mode}", "    balance first", "    option httpchk",
                    f"    http-check send meth GET uri {HEALTH_PATH} ver HTTP/1.1 hdr Host {s.domain}",
                    "    http-check expect status 200"]
            for srv in s.servers:
                # The health check's TLS is not verified: it asks only whether the site answers; the visitor's
                # TLS goes end to end to the server, whose certificate the visitor checks.
                line = (f"    server {srv.name} {_addr(srv.address)}:{port} check port 443 check-ssl verify none "
                        f"check-sni {s.domain}")
                line += {"primary": " weight 100", "standby": " weight 0", "fenced": " weight 0 disabled"}[srv.role]
                out.append(line)
    return "\n".join(out) + "\n"


def parse_stat(csv_text: str) -> dict[tuple[str, str], str]:
    """`show stat` CSV -> {(backend, server): status} (UP, DOWN, MAINT, NOLB...)."""
    out: dict[tuple[str, str], str] = {}
    lines = [ln for ln in csv_text.splitlines() if ln.strip()]
    if not lines:
        return out
    header = lines[0].lstrip("# ").split(",")
    try:
        px, sv, st = header.index("pxname"), header.index("svname"), header.index("status")
    except ValueError:
        return out
    for ln in lines[1:]:
        cols = ln.split(",")
        if len(cols) > st and cols[sv] not in ("FRONTEND", "BACKEND"):
            out[(cols[px], cols[sv])] = cols[st]
    return out
