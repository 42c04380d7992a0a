"""nginx's page cache on a host, one site at a time: every site shares one cache zone, so a site's pages are
found by their cache key (scheme, method, host, URI) and only they are removed (templates/scripts/purge_site_pages.sh)."""

from __future__ import annotations

from pressfleet.paths import TEMPLATES
from pressfleet.ssh.remote import run
from pressfleet.validate import domain

SCRIPT = (TEMPLATES / "scripts" / "purge_site_pages.sh").read_text()


def purge_site_pages(conn, server_names: list[str]) -> list[str]:
    """Remove the cached pages of the site served as SERVER_NAMES (its domain first, then its aliases); other
    sites' pages stay. Returns what it removed, one sentence (none when nothing was cached)."""
    names = [domain(n) for n in server_names]
    if not names:
        raise ValueError("a site's page cache purge needs its domain")
    result = run(conn, ["sh", "-c", SCRIPT, "sh", *names])
    return [ln for ln in result.stdout.splitlines() if ln.strip()]
