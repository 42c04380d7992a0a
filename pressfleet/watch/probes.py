"""The watcher's probes, from the control side: a site's home page over HTTPS, a server's SSH port.

A site is asked at its server's address with its own name for SNI and Host (as a visitor whose DNS points at
the server), so a site behind a front or on a moved server is probed where its block says it is. The
certificate's trust is not what is measured (lab sites are self-signed); its days left are. A failure is
retried once after `retry_after` seconds before it counts (one dropped packet is not an outage).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional

import httpx

MAX_BODY = 1 << 20  # read at most 1 MiB of the home page for the keyword
CONNECT_TIMEOUT = 3.0  # a gone host must not hold the round: with the retry, about 9 s at the most


@dataclass(frozen=True)
class SiteTarget:
    name: str  # the site's name (the alert resource)
    domain: str
    address: str  # the server's address
    server: str  # the server's name
    port: int = 443
    keyword: str = ""
    path: str = "/"
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServerTarget:
    name: str
    address: str
    port: int = 22
    tags: tuple[str, ...] = ()


@dataclass
class SiteResult:
    target: SiteTarget
    up: bool
    status: int = 0  # 0: no HTTP answer
    ttfb: Optional[float] = None
    keyword_found: Optional[bool] = None
    tls_days_left: Optional[float] = None
    error: str = ""
    retried: bool = False
    at: float = field(default_factory=time.time)


@dataclass
class ServerResult:
    target: ServerTarget
    up: bool
    banner: str = ""
    seconds: Optional[float] = None
    error: str = ""
    retried: bool = False
    at: float = field(default_factory=time.time)


def _context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # expiry is measured, trust is not (see the module's docstring)
    return ctx


_CTX = _context()


def _days_left(stream) -> Optional[float]:
    try:
        der = stream.get_extra_info("ssl_object").getpeercert(binary_form=True)
    except Exception:  # noqa: BLE001 - a plain connection or a closed stream: no certificate to read
        return None
    if not der:
        return None
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    return (cert.not_valid_after_utc - datetime.now(timezone.utc)).total_seconds() / 86400


async def probe_site_once(t: SiteTarget, timeout: float = 10.0) -> SiteResult:
    host = f"[{t.address}]" if ":" in t.address else t.address
    url = f"https://{host}:{t.port}{t.path}"
    started = time.monotonic()
    try:
        # a server that has not accepted the connection in 3 s is down for a visitor too; a slow page gets `timeout`
        limits = httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout))
        async with httpx.AsyncClient(verify=_CTX, timeout=limits, trust_env=False, follow_redirects=False) as client:
            req = client.build_request("GET", url, headers={"Host": t.domain, "User-Agent": "pressfleet-watch/1"},
                                       extensions={"sni_hostname": t.domain})
            resp = await client.send(req, stream=True)
            try:
                ttfb = time.monotonic() - started
                days = _days_left(resp.extensions.get("network_stream"))
                found = None
                if t.keyword and resp.status_code < 400:
                    body = b""
                    async for chunk in resp.aiter_bytes():
                        body += chunk
                        if t.keyword.encode() in body or len(body) >= MAX_BODY:
                            break
                    found = t.keyword.encode() in body
            finally:
                await resp.aclose()
    except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
        return SiteResult(t, up=False, error=f"{type(exc).__name__}: {exc}"[:300])
    up = resp.status_code < 500
    return SiteResult(t, up=up, status=resp.status_code, ttfb=ttfb, keyword_found=found, tls_days_left=days,
                      error="" if up else f"HTTP {resp.status_code}")


async def probe_server_once(t: ServerTarget, timeout: float = 5.0) -> ServerResult:
    started = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(t.address, t.port),
                                                min(CONNECT_TIMEOUT, timeout))
        try:
            banner = (await asyncio.wait_for(reader.readline(), timeout)).decode(errors="replace").strip()
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
    except (OSError, asyncio.TimeoutError) as exc:
        return ServerResult(t, up=False, error=f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__)
    if not banner.startswith("SSH-"):
        return ServerResult(t, up=False, banner=banner[:100], error="no SSH banner")
    return ServerResult(t, up=True, banner=banner[:100], seconds=time.monotonic() - started)


async def _with_retry(once, t, retry_after: float, timeout: float):
    """Probe once; on a failure, wait `retry_after` seconds and probe again (the second answer counts)."""
    first = await once(t, timeout)
    if first.up:
        return first
    await asyncio.sleep(retry_after)
    second = await once(t, timeout)
    second.retried = True
    if not second.up and not second.error:
        second.error = first.error
    return second


async def probe_site(t: SiteTarget, *, retry_after: float = 3.0, timeout: float = 10.0) -> SiteResult:
    return await _with_retry(probe_site_once, t, retry_after, timeout)


async def probe_server(t: ServerTarget, *, retry_after: float = 3.0, timeout: float = 5.0) -> ServerResult:
    return await _with_retry(probe_server_once, t, retry_after, timeout)


async def probe_all(sites: list[SiteTarget], servers: list[ServerTarget], *, concurrency: int = 64,
                    retry_after: float = 3.0) -> tuple[list[SiteResult], list[ServerResult]]:
    sem = asyncio.Semaphore(concurrency)

    async def bounded(coro):
        async with sem:
            return await coro

    site_tasks = [bounded(probe_site(t, retry_after=retry_after)) for t in sites]
    server_tasks = [bounded(probe_server(t, retry_after=retry_after)) for t in servers]
    results = await asyncio.gather(*site_tasks, *server_tasks)
    return list(results[:len(sites)]), list(results[len(sites):])
