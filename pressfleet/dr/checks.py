"""Health of a site's server as seen from here and from other servers (I/O; small and time-bounded)."""

from __future__ import annotations

import socket
import ssl
from typing import Optional

from pressfleet.dr.haproxy import HEALTH_PATH
from pressfleet.ssh.remote import run


def site_answers(domain: str, address: str, *, timeout: float = 3.0, path: str = HEALTH_PATH) -> Optional[int]:
    """The HTTP status the site DOMAIN gives at ADDRESS over HTTPS with SNI (None: no answer within TIMEOUT).

    The certificate is not verified: the question is whether WordPress and its database answer there. Written
    on a socket rather than with httpx because httpx cannot send SNI for one name to another address."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((address, 443), timeout=timeout) as raw:
            raw.settimeout(timeout)
            with ctx.wrap_socket(raw, server_hostname=domain) as tls:
                tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {domain}\r\nUser-Agent: pressfleet-failover\r\n"
                            "Connection: close\r\n\r\n".encode())
                head = tls.recv(64)
    except (OSError, ssl.SSLError):
        return None
    parts = head.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def site_answers_from(conn, domain: str, address: str, *, timeout: float = 3.0) -> Optional[int]:
    """The same question asked on another server (the standby, the front) with curl."""
    out = run(conn, ["curl", "-ks", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", str(timeout),
                     "--resolve", f"{domain}:443:{address}", f"https://{domain}{HEALTH_PATH}"],
              check=False, timeout=timeout + 10).stdout.strip()
    return int(out) if out.isdigit() and out != "000" else None
