"""After provisioning: prove the site works and is hardened, from the host itself (no DNS needed)."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import task
from prefect.cache_policies import NONE

from pressfleet.ssh import redisacl
from pressfleet.ssh.remote import run
from pressfleet.fleet.siteconfig import SiteConfig
from tasks.common import connected
from tasks.wordpress import bootstrap

REQUIRED_HEADERS = ["strict-transport-security", "content-security-policy", "x-frame-options",
                    "x-content-type-options", "referrer-policy", "permissions-policy"]


@dataclass
class Check:
    name: str
    passed: bool
    detail: str = ""


def _curl(conn, site: SiteConfig, url_path: str, *, scheme: str = "https", method: str = "GET") -> tuple[int, dict[str, str]]:
    port = "443" if scheme == "https" else "80"
    out = run(conn, ["curl", "-ksS", "-o", "/dev/null", "-D", "-", "-X", method, "--max-time", "20",
                     "--resolve", f"{site.domain}:{port}:127.0.0.1", f"{scheme}://{site.domain}{url_path}"]).stdout
    lines = out.replace("\r", "").split("\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return status, headers


def site_checks(conn, site: SiteConfig, *, admin_user: str, admin_password: str) -> list[Check]:
    checks: list[Check] = []
    status, headers = _curl(conn, site, "/")
    checks.append(Check("home page answers 200 over HTTPS", status == 200, f"status {status}"))
    missing = [h for h in REQUIRED_HEADERS if h not in headers]
    checks.append(Check("security headers present", not missing, f"missing: {', '.join(missing)}" if missing else ", ".join(REQUIRED_HEADERS)))
    if site.page_cache:
        _curl(conn, site, "/")
        status2, headers2 = _curl(conn, site, "/")
        cache = headers2.get("x-cache-status", "")
        checks.append(Check("home page served from the page cache", cache == "HIT", f"X-Cache-Status {cache or 'absent'}"))
    status, headers = _curl(conn, site, "/", scheme="http")
    checks.append(Check("HTTP redirects to HTTPS", status == 301 and headers.get("location", "").startswith(f"https://{site.domain}/"),
                        f"{status} {headers.get('location', '')}"))
    if not site.allow_xmlrpc:
        status, _ = _curl(conn, site, "/xmlrpc.php", method="POST")
        checks.append(Check("XML-RPC denied", status == 403, f"status {status}"))
    for path in ["/wp-config.php", "/.git/config", "/backup.sql", "/wp-content/uploads/x.php"]:
        status, _ = _curl(conn, site, path)
        checks.append(Check(f"{path} denied", status in (403, 404), f"status {status}"))
    mode = run(conn, ["stat", "-c", "%a %U:%G", site.wp_config_path]).stdout.strip()
    checks.append(Check("wp-config.php above the web root, not world-readable", mode.split()[0][-1] == "0", mode))
    login = bootstrap(conn, site, "check-login", {"user": admin_user, "password": admin_password})
    checks.append(Check("admin can log in", bool(login.get("ok"))))
    if site.object_cache:
        keys = redisacl.count_site_keys(conn, site.name, database=site.redis_database)  # as pressfleet's admin
        checks.append(Check("WordPress keys in Redis", keys > 0, f"{keys} keys"))
    return checks


@task(name="checks", cache_policy=NONE)
def verify_site(server, site: SiteConfig, *, admin_user: str, admin_password: str) -> list[Check]:
    """The site answers 200 over HTTPS with every security header, caches, denies what it must; admin logs in."""
    with connected(server) as conn:
        return site_checks(conn, site, admin_user=admin_user, admin_password=admin_password)
