"""Site code steps on a site's host: what releases a plugin or theme has there, receiving a built release,
switching the live one (one rename of a root-owned link), and deleting old ones.

Releases live in the site's root-owned folder (DIR/releases/KIND-SLUG/ID, root's files with the site's group):
PHP reads them and cannot change them, and nothing root does to them goes through a path PHP controls.
wp-content/KIND/SLUG links to DIR/releases/KIND-SLUG/current, which links to the live release.
"""

from __future__ import annotations

from pressfleet.deploy.releases import KINDS, OnHost, parse_listing
from pressfleet.ssh import converge
from pressfleet.fleet.siteconfig import SiteConfig
from tasks.common import script
from tasks.nginx import NGINX_USER


def _script(conn, action: str, site: SiteConfig, kind: str, slug: str, *args: str, stdin: bytes | None = None,
            reads: bool = False) -> str:
    return converge.sh(conn, script("site_code_release.sh"), [action, site.user, site.home, KINDS[kind], slug, *args],
                       stdin=stdin, timeout=600, reads=reads).stdout


def base(site: SiteConfig, kind: str, slug: str) -> str:
    return f"{site.home}/releases/{KINDS[kind]}-{slug}"


def wp_link(site: SiteConfig, kind: str, slug: str) -> str:
    return f"{site.web_root}/wp-content/{KINDS[kind]}/{slug}"


def on_host(conn, site: SiteConfig, kind: str, slug: str) -> OnHost:
    """The component's releases on the host, its current one and what wp-content holds in its place."""
    return parse_listing(kind, slug, _script(conn, "list", site, kind, slug, reads=True))


def deployed_components(conn, site: SiteConfig) -> list[tuple[str, str]]:
    """(kind, slug) of every plugin and theme of the site deployed from a repository."""
    out = _script(conn, "components", site, "plugin", "x", reads=True)
    found = []
    for line in out.split():
        folder, _, slug = line.partition("-")
        kind = {v: k for k, v in KINDS.items()}.get(folder)
        if kind and slug:
            found.append((kind, slug))
    return found


def receive(conn, site: SiteConfig, kind: str, slug: str, rid: str, tar: bytes) -> int:
    """The built release's tar unpacked on the host as release RID; returns how many files it holds.
    nginx may read it (static files of a theme or plugin), as it reads the web root."""
    out = _script(conn, "receive", site, kind, slug, rid, stdin=tar).split()
    converge.ensure_webread(conn, NGINX_USER, site.home, f"{site.home}/releases")
    return int(out[-1]) if out and out[0] == "received" else 0


def switch(conn, site: SiteConfig, kind: str, slug: str, rid: str) -> list[str]:
    """Release RID becomes the live one: `current` replaced in one rename, and wp-content's entry made the
    link to it if it is not yet (refused, nothing changed, when a plain folder of that name is there)."""
    where = base(site, kind, slug)
    changed = converge.ensure_links(conn, {f"{where}/current": f"{where}/{rid}"})
    changed += converge.ensure_links(conn, {wp_link(site, kind, slug): f"{where}/current"})
    return changed


def unlink(conn, site: SiteConfig, kind: str, slug: str) -> list[str]:
    """The component taken out of wp-content and `current` (its first release failed its checks)."""
    return converge.ensure_absent(conn, [wp_link(site, kind, slug), f"{base(site, kind, slug)}/current"])


def remove(conn, site: SiteConfig, kind: str, slug: str, rids: list[str]) -> list[str]:
    """These releases deleted (never the current one)."""
    if not rids:
        return []
    return [ln.split()[1] for ln in _script(conn, "remove", site, kind, slug, *rids).splitlines() if ln.startswith("removed ")]
