"""Building and saving WordPressSite blocks from what a person types (CLI, demo)."""

from __future__ import annotations

import re

from pressfleet import validate


def site_name_for(domain: str) -> str:
    """A site name from a domain's first label: `blog.example.com` -> `blog` (validated)."""
    first = validate.domain(domain).split(".")[0]
    name = re.sub(r"[^a-z0-9_]", "_", first.lower())
    if not name[:1].isalpha():
        name = "site_" + name
    return validate.site_name(name[:31])


def site_block_name(site_name: str) -> str:
    return f"site-{site_name.replace('_', '-')}"


def lab_release_for(server_block_name: str) -> dict | None:
    """Lab hosts cannot reach wordpress.org: for a `lab-*` server, the lab mirror's release (url, sha256)."""
    if not server_block_name.startswith("lab-"):
        return None
    from pressfleet import lab

    return lab.ensure_mirror()
