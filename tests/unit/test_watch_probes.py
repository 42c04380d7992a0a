"""The watcher's probes against real servers on loopback: HTTPS with SNI (status, TTFB, keyword, days left), an
SSH banner, and a closed port (down, retried once)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pressfleet.watch.probes import ServerTarget, SiteTarget, probe_all, probe_site_once

pytestmark = pytest.mark.unit


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def https_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "10", "-subj",
                    "/CN=blog.lab.test", "-keyout", str(d / "k.pem"), "-out", str(d / "c.pem")],
                   check=True, capture_output=True)
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers["Host"])
            code = 503 if self.path == "/broken" else 200
            body = b"<html>Hello pressfleet watcher</html>"
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    port = _port()
    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "c.pem", d / "k.pem")
    sni = []
    ctx.sni_callback = lambda sock, name, _ctx: sni.append(name)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield port, seen, sni
    httpd.shutdown()


def test_https_probe_reads_status_ttfb_keyword_and_days_left(https_server):
    port, seen, sni = https_server
    t = SiteTarget(name="blog", domain="blog.lab.test", address="127.0.0.1", server="web1", port=port,
                   keyword="pressfleet watcher")
    r = asyncio.run(probe_site_once(t))
    assert r.up and r.status == 200 and r.keyword_found is True
    assert 0 < r.ttfb < 5 and 9 < r.tls_days_left <= 10
    assert seen[-1] == "blog.lab.test" and sni[-1] == "blog.lab.test"
    missing = asyncio.run(probe_site_once(SiteTarget(name="blog", domain="blog.lab.test", address="127.0.0.1",
                                                     server="web1", port=port, keyword="not on the page")))
    assert missing.up and missing.keyword_found is False
    broken = asyncio.run(probe_site_once(SiteTarget(name="blog", domain="blog.lab.test", address="127.0.0.1",
                                                    server="web1", port=port, path="/broken")))
    assert not broken.up and broken.status == 503 and broken.error == "HTTP 503"


def test_ssh_banner_and_closed_ports_are_down_after_one_retry():
    async def main():
        async def banner(reader, writer):
            writer.write(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
            await writer.drain()
            writer.close()

        srv = await asyncio.start_server(banner, "127.0.0.1", 0)
        ssh_port = srv.sockets[0].getsockname()[1]
        closed = _port()
        sites, servers = await probe_all(
            [SiteTarget(name="gone", domain="gone.lab.test", address="127.0.0.1", server="web1", port=closed)],
            [ServerTarget("web1", "127.0.0.1", ssh_port), ServerTarget("web2", "127.0.0.1", closed)],
            retry_after=0.2)
        srv.close()
        return sites, servers

    sites, servers = asyncio.run(main())
    assert servers[0].up and servers[0].banner.startswith("SSH-2.0-OpenSSH")
    assert not servers[1].up and servers[1].retried and ("Connect" in servers[1].error or "refused" in servers[1].error)
    assert not sites[0].up and sites[0].retried and sites[0].status == 0 and sites[0].error
