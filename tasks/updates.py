"""Update steps on a site's host: what WordPress has installed, the checks before and after, installing a
verified core, plugin or theme release, and undoing an update.

Core goes through install_wordpress_release.sh (new core swapped in around wp-content under maintenance mode,
then WordPress's own wp_upgrade()); a plugin or theme through install_component.sh (the verified zip unpacked
out of the site user's reach and exchanged for the live folder in one rename). Neither writes through a path the
site's PHP could have changed.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from prefect import task
from prefect.cache_policies import NONE

from pressfleet.plan import wprelease
from pressfleet.render.configs import php_error_log_path
from pressfleet.ssh import converge
from pressfleet.ssh.converge import ManagedFile, StepResult
from pressfleet.ssh.pagecache import purge_site_pages
from pressfleet.ssh.remote import run
from pressfleet.updates.plan import Installed, PageCheck, Pending, SiteChecks
from tasks.common import connected, script, step, wordpress_file
from tasks.nginx import NGINX_USER
from tasks.wordpress import BOOTSTRAP, _release_script, bootstrap, end_maintenance  # noqa: F401 - flows use it here

_LOC = re.compile(r"<loc>\s*([^<\s]{1,2000})\s*</loc>")
_FATAL = "PHP Fatal error"


def ensure_bootstrap(conn) -> list[str]:
    """pressfleet's PHP bootstrap as this version ships it (a host provisioned by an older one has fewer actions)."""
    return converge.ensure_files(conn, [ManagedFile(BOOTSTRAP, wordpress_file("pressfleet-bootstrap.php"), 0o644)])


def inventory(conn, site) -> Installed:
    """Core, plugins and themes as WordPress itself lists them (get_plugins(), wp_get_themes())."""
    return Installed.from_bootstrap(bootstrap(conn, site, "inventory"))


def _fetch(conn, site, path: str) -> tuple[int, float, str]:
    """GET https://DOMAIN/PATH on the host itself (status, seconds, the body's first 256 KiB)."""
    out = run(conn, ["sh", "-c", 'curl -ksS --max-time 30 --resolve "$1:443:127.0.0.1" -o /tmp/.pf-body.$$ '
                     '-w "%{http_code} %{time_total}" "https://$1$2"; echo; head -c 262144 /tmp/.pf-body.$$; '
                     'rm -f /tmp/.pf-body.$$', "sh", site.domain, path], check=False).stdout
    first, _, body = out.partition("\n")
    parts = first.split()
    try:
        return int(parts[0]), float(parts[1]), body
    except (IndexError, ValueError):
        return 0, 0.0, ""


def _site_paths(site, body: str, limit: int) -> list[str]:
    """Paths of the site's own URLs in a sitemap (other hosts' URLs are left out)."""
    paths = []
    for loc in _LOC.findall(body):
        parts = urlsplit(loc.replace("&amp;", "&"))
        if parts.hostname == site.domain and parts.path.startswith("/") and re.fullmatch(r"[A-Za-z0-9/._~%-]*", parts.path):
            paths.append(parts.path + (f"?{parts.query}" if parts.query and re.fullmatch(r"[A-Za-z0-9=&._-]*", parts.query) else ""))
    return paths[:limit]


def sitemap_paths(conn, site, limit: int) -> list[str]:
    """Up to LIMIT page paths from WordPress's own sitemap (wp-sitemap.xml, then its first sub-sitemaps)."""
    if limit <= 0:
        return []
    status, _, body = _fetch(conn, site, "/wp-sitemap.xml")
    if status != 200:
        return []
    pages: list[str] = []
    for sub in _site_paths(site, body, 5):
        s, _, sub_body = _fetch(conn, site, sub)
        if s == 200:
            pages += [p for p in _site_paths(site, sub_body, limit) if p not in pages and p != "/"]
        if len(pages) >= limit:
            break
    return pages[:limit]


def error_log(conn, site) -> tuple[int, int]:
    """The site's PHP error log: its size and how many fatal errors it holds (read as the site's user)."""
    out = run(conn, ["runuser", "-u", site.user, "--", "sh", "-c",
                     'if [ -f "$1" ]; then wc -c < "$1"; grep -c "$2" "$1" || true; else echo 0; echo 0; fi',
                     "sh", php_error_log_path(site), _FATAL], check=False).stdout.split()
    try:
        return int(out[0]), int(out[1])
    except (IndexError, ValueError):
        return 0, 0


def check_site(conn, site, paths: list[str]) -> SiteChecks:
    """The home page and PATHS (status and time), and the PHP error log, as they are now (the page cache is
    emptied first, so the pages come from PHP)."""
    purge_site_pages(conn, list(site.server_names))
    pages = []
    for path in ["/", *paths]:
        status, seconds, _ = _fetch(conn, site, path)
        pages.append(PageCheck(path, status, round(seconds, 3)))
    size, fatals = error_log(conn, site)
    return SiteChecks(pages=tuple(pages), error_log_bytes=size, fatals=fatals)


def recorded_core(conn, site) -> wprelease.Recorded | None:
    """The core release pressfleet recorded on the host (its URL and sha256: what a rollback reinstalls)."""
    return wprelease.parse_inspect(_release_script(conn, "inspect", site, "http://unused.invalid/", "0" * 64)).recorded


def install_core_files(conn, site, url: str, sha256: str) -> str:
    """Core's files from the verified archive at URL (fetched into the host's cache unless it is there), under
    WordPress's maintenance mode, which stays on until `end_maintenance`. Returns `before -> after`."""
    _release_script(conn, "fetch", site, url, sha256, "", timeout=900)
    writable = "uploads" if site.uploads_only_writable else "all"
    out = _release_script(conn, "apply", site, url, sha256, writable, timeout=900).strip()
    converge.ensure_webread(conn, NGINX_USER, site.home, site.web_root)
    return out.removeprefix("updated ")


def install_core(conn, site, url: str, sha256: str) -> str:
    """Core from the verified archive, WordPress's wp_upgrade(), and maintenance mode ended whatever happens."""
    try:
        out = install_core_files(conn, site, url, sha256)
        bootstrap(conn, site, "upgrade")
    finally:
        end_maintenance(conn, site)
    return out


def install_component(conn, site, kind: str, slug: str, url: str, sha256: str) -> str:
    """A plugin or theme from its verified zip, in place of the live folder in one rename. Returns
    `replaced VERSION` or `added VERSION`."""
    folder = {"plugin": "plugins", "theme": "themes"}[kind]
    comp = script("install_component.sh")
    converge.sh(conn, comp, ["fetch", site.user, site.home, folder, slug, url, sha256], timeout=900)
    out = converge.sh(conn, comp, ["apply", site.user, site.home, folder, slug, sha256,
                                   "uploads" if site.uploads_only_writable else "all"],
                      stdin=converge.SAFE_FILES.encode(), timeout=600).stdout.strip()
    converge.ensure_webread(conn, NGINX_USER, site.home, site.web_root)
    return out


def apply_update(conn, site, pending: Pending) -> str:
    r = pending.release
    if pending.kind == "core":
        return f"WordPress {install_core(conn, site, r.url, r.sha256)}"
    how = install_component(conn, site, pending.kind, pending.slug, r.url, r.sha256)
    return f"{pending.kind} {pending.slug} {pending.installed} -> {how.split()[-1]}"


def keep_active(conn, site, before: Installed) -> list[str]:
    """Plugins active before the update that are not now (WordPress deactivates a plugin whose folder went
    missing for a moment): activated again. Returns their slugs."""
    if not before.active_plugins:
        return []
    return bootstrap(conn, site, "activate", {"plugins": list(before.active_plugins)}).get("activated", [])


def reload_php(conn, site) -> None:
    """PHP-FPM reloaded (gracefully: running requests finish), so OPcache drops the old code at once rather
    than within its revalidate interval, when old and new files would mix."""
    run(conn, ["systemctl", "reload", f"php{site.php_version}-fpm"])


CHROMIUM = "/usr/bin/chromium"


def screenshot(domain: str, address: str, *, timeout_s: float = 45.0) -> bytes | None:
    """A full-page screenshot of https://DOMAIN/ as served by ADDRESS (the site's own server, not DNS or a CDN),
    taken on the control side by headless Chromium; None when Chromium is not installed here."""
    import os

    if not os.path.exists(CHROMIUM):
        return None
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            f"--host-resolver-rules=MAP {domain} {address}"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)  # root: no sandbox
        try:
            # The page is the site's, i.e. untrusted: no JavaScript runs, and no request leaves for any host but
            # the site's own (never this machine's Prefect API on loopback, say).
            page = browser.new_page(ignore_https_errors=True, viewport={"width": 1280, "height": 900},
                                    java_script_enabled=False)
            page.route("**/*", lambda route: route.continue_() if urlsplit(route.request.url).hostname == domain
                       else route.abort())
            page.goto(f"https://{domain}/", wait_until="networkidle", timeout=timeout_s * 1000)
            return page.screenshot(full_page=True, animations="disabled", caret="hide")
        finally:
            browser.close()


@task(name="template", cache_policy=NONE)
def ensure_template_components(server, site, releases: list, activate: list[str],
                               admins: list[tuple[str, str]] = (), *, reassign: str = "admin") -> StepResult:
    """The plugins and themes of the site's template (RELEASES, from the catalogue) that the site lacks,
    installed; its plugins (ACTIVATE) active; its ADMINS (login, e-mail) administrators. What the site already
    has is left as it is (updates are update-site's job; removing an administrator is bulk admin-user's)."""
    with step("template") as result, connected(server) as conn:
        if converge.current_dry_run() is not None:
            result.notes.append("dry run: the template's plugins and themes were not checked")
            return result
        ensure_bootstrap(conn)
        have = inventory(conn, site)
        for r in releases:
            if r.slug not in (have.plugins if r.kind == "plugin" else have.themes):
                how = install_component(conn, site, r.kind, r.slug, r.url, r.sha256)
                result.changed.append(f"{r.kind} {r.slug} {how.split()[-1]} installed")
        todo = [slug for slug in activate if slug not in have.active_plugins]
        if todo:
            done = bootstrap(conn, site, "activate", {"plugins": todo}).get("activated", [])
            result.changed += [f"plugin {slug} activated" for slug in done]
        for login, email in admins:
            from tasks.bulk import admin_user

            done = admin_user(conn, site, "add", login, email, reassign)
            if not done.endswith("is already an administrator"):
                result.changed.append(done)
    return result


# --- an update under way, as the host remembers it ---------------------------------------------------------
# Written just before the first file changes and removed once the site is updated or rolled back, so a run cut
# half-way (a dropped connection, a killed worker) is found by the next update of the site, which rolls it back
# to the same proven backup before anything else. Root's own folder: no site's PHP can write or replace it.
UNDERWAY_DIR = "/var/lib/pressfleet/updates"


def _underway_path(site) -> str:
    return f"{UNDERWAY_DIR}/{site.name}.json"  # the site name is a validated identifier


def mark_underway(conn, site, record: dict) -> None:
    import json

    run(conn, ["sh", "-c", 'install -d -o root -g root -m 0700 "$1" && umask 077 && cat > "$2.new" && mv -f "$2.new" "$2"',
               "sh", UNDERWAY_DIR, _underway_path(site)], stdin=json.dumps(record))


def underway(conn, site) -> dict | None:
    """The record of an update of SITE that started and never finished (None: there is none)."""
    import json

    out = run(conn, ["sh", "-c", 'test ! -e "$1" || cat "$1"', "sh", _underway_path(site)]).stdout.strip()
    return json.loads(out) if out else None


def clear_underway(conn, site) -> None:
    run(conn, ["rm", "-f", _underway_path(site)])
