"""A short load test of a site (what a pipeline's `load` step runs) and its comparison with the previous
release's: pure percentiles and verdict, and the HTTP client (httpx; `resolve` connects to a given address
with the site's name for SNI and Host, as curl --resolve does)."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

PHP_ERRORS = ("There has been a critical error on this website", "Fatal error</b>:", "Parse error</b>:")


@dataclass(frozen=True)
class LoadResult:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p95_ms: float

    @property
    def rps(self) -> float:
        return round(self.requests / self.seconds, 1) if self.seconds else 0.0


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile Q (0-100) of VALUES."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def verdict(p95_ms: float, baseline_ms: float | None, max_regression: float) -> tuple[bool, str]:
    """Whether a p95 passes against the last passing one (none yet: it passes and becomes the baseline)."""
    if baseline_ms is None:
        return True, f"p95 {p95_ms:.1f} ms (no baseline yet: this one becomes it)"
    limit = baseline_ms * (1 + max_regression)
    change = (p95_ms / baseline_ms - 1) * 100 if baseline_ms else 0.0
    ok = p95_ms <= limit
    return ok, (f"p95 {p95_ms:.1f} ms against {baseline_ms:.1f} ms before ({change:+.0f}%; "
                f"the limit is +{max_regression * 100:.0f}%, {limit:.1f} ms)")


def _client(url: str, resolve: str | None, insecure: bool) -> tuple[httpx.Client, str, dict, dict]:
    """A client, the URL to request, headers and extensions (SNI and Host of the site when RESOLVE gives an address)."""
    parts = urlsplit(url)
    headers, ext, target = {}, {}, url
    if resolve:
        target = parts._replace(netloc=f"{resolve}:{parts.port or 443}").geturl()
        headers["Host"] = parts.hostname
        ext["sni_hostname"] = parts.hostname
    return httpx.Client(verify=not insecure, timeout=20.0, follow_redirects=False), target, headers, ext


def fetch(url: str, *, resolve: str | None = None, insecure: bool = False) -> httpx.Response:
    client, target, headers, ext = _client(url, resolve, insecure)
    with client:
        return client.get(target, headers=headers, extensions=ext)


def run(url: str, *, seconds: float, concurrency: int, resolve: str | None = None, insecure: bool = False) -> LoadResult:
    """CONCURRENCY clients GET URL back to back for SECONDS; a status other than 200 or a failed request is an error."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        client, target, headers, ext = _client(url, resolve, insecure)
        with client:
            while time.monotonic() < deadline:
                t0 = time.monotonic()
                try:
                    ok = client.get(target, headers=headers, extensions=ext).status_code == 200
                except httpx.HTTPError:
                    ok = False
                took = (time.monotonic() - t0) * 1000
                with lock:
                    latencies.append(took)
                    errors[0] += 0 if ok else 1

    started = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    took = time.monotonic() - started
    return LoadResult(len(latencies), errors[0], round(took, 2), round(percentile(latencies, 50), 1),
                      round(percentile(latencies, 95), 1))
