"""WordPress steps: the site's user and folders, the verified release, wp-config.php, pressfleet's
mu-plugin and object-cache drop-in, and the install itself through WordPress's own PHP API."""

from __future__ import annotations

import json

from prefect import task
from prefect.cache_policies import NONE

from pressfleet.ssh import converge
from pressfleet.plan import wprelease
from pressfleet.ssh.converge import ManagedFile, StepResult
from pressfleet.ssh.remote import run
from pressfleet.render.configs import wp_cron_unit
from pressfleet.fleet.siteconfig import SiteConfig
from tasks.common import connected, script, step, wordpress_file
from tasks.nginx import NGINX_USER

BOOTSTRAP = "/usr/local/lib/pressfleet/pressfleet-bootstrap.php"


_USER_SCRIPT = r"""
set -eu
user=$1 dir=$2
changed=""
if ! getent group "$user" >/dev/null; then groupadd --system "$user"; changed="group"; fi
if ! id -u "$user" >/dev/null 2>&1; then
  useradd --system --gid "$user" --home-dir "$dir" --no-create-home --shell /usr/sbin/nologin "$user"; changed="$changed user"
fi
# nginx (www-data) is in no site's group: it reads static files through per-site ACLs (tasks.nginx), never
# wp-config.php. A host provisioned before is mended: www-data leaves the group, nginx's workers restart without it.
if id -nG www-data | tr ' ' '\n' | grep -qx "$user"; then
  gpasswd -d www-data "$user" >/dev/null; changed="$changed www-data-out-of-group"
  if systemctl is-active --quiet nginx; then systemctl reload nginx; fi
fi
# root chowns and chmods the site's folder: never through a link (chmod would follow one)
if [ -L "$dir" ] || { [ -e "$dir" ] && [ ! -d "$dir" ]; }; then echo "$dir is not a plain folder: nothing was changed" >&2; exit 3; fi
if [ ! -d "$dir" ]; then mkdir -p "$dir"; changed="$changed dir"; fi
if [ "$(stat -c '%U:%G %a' "$dir")" != "root:$user 750" ]; then chown -h "root:$user" "$dir"; chmod 750 "$dir"; changed="$changed dir-perms"; fi
echo "$changed"
"""


def ensure_site_user(conn, site: SiteConfig) -> list[str]:
    """The site's own system user and group (PHP-FPM runs as it) and its folder /var/www/NAME."""
    out = converge.sh(conn, _USER_SCRIPT, [site.user, site.home]).stdout.split()
    return [f"site {site.name}: {what}" for what in out]


# WordPress calls its own site (loopback and REST health checks, wp-cron, cache purges): the domain
# resolves to this host itself, whatever public DNS says, so those calls never leave the machine.
_HOSTS_SCRIPT = r"""
set -eu
tag="# pressfleet:$1"; shift
line="127.0.0.1 $* $tag"
if grep -qxF "$line" /etc/hosts; then exit 0; fi
# the whole tag at the line's end: a fixed-string match would also take site one_two's line for site one's
grep -v -- " $tag\$" /etc/hosts > /etc/hosts.pressfleet-new || true
echo "$line" >> /etc/hosts.pressfleet-new
cat /etc/hosts.pressfleet-new > /etc/hosts; rm -f /etc/hosts.pressfleet-new
echo changed
"""


def ensure_hosts_entry(conn, site: SiteConfig) -> list[str]:
    out = converge.sh(conn, _HOSTS_SCRIPT, [site.name, *site.server_names]).stdout.strip()
    return [f"/etc/hosts: {' '.join(site.server_names)} is this host"] if out == "changed" else []


def _release_script(conn, action: str, site: SiteConfig, *args: str, timeout: float = 120) -> str:
    return converge.sh(conn, script("install_wordpress_release.sh"), [action, site.user, site.home, *args],
                       timeout=timeout, reads=action == "inspect").stdout


def install_release(conn, site: SiteConfig, url: str, sha256: str | None, *,
                    update_core: bool = False) -> tuple[list[str], list[str], bool]:
    """Bring core to the release the block asks for, never behind the person's back (`pressfleet.plan.wprelease`):
    a fresh install, an update (new core swapped in around wp-content, under maintenance mode), or nothing.
    Returns (changes, notes, whether core changed in place so wp_upgrade() and `finish` must follow)."""
    dry = converge.current_dry_run() is not None  # dry run: nothing is fetched, so only a missing core is known
    if dry and not run(conn, ["test", "-d", site.home], check=False).ok:
        converge.would(f"would create {site.home}, install WordPress from {url} and run wp_install()")
        return [f"WordPress from {url}"], [], False
    host = wprelease.parse_inspect(_release_script(conn, "inspect", site, url, sha256 or ""))
    if dry:
        if host.installed is None:
            converge.would(f"would install WordPress from {url} and run wp_install()")
            return [f"WordPress from {url}"], [], False
        if wprelease.needs_fetch(host, sha256):
            return [], ["dry run: the release was not fetched, so a core update was not checked"], host.maintenance
        return [], [], host.maintenance
    fetched = None
    if wprelease.needs_fetch(host, sha256):
        fetched = wprelease.parse_fetched(_release_script(
            conn, "fetch", site, url, sha256 or "", host.published_sha1 or "", timeout=900))
    decision = wprelease.decide(host, url=url, pin=sha256, update_core=update_core, fetched=fetched)
    if decision.action == "keep":
        return [], [], host.maintenance
    if decision.action == "available":
        return [], [decision.reason], host.maintenance
    out = _release_script(conn, "apply", site, url, fetched.sha256,
                          "uploads" if site.uploads_only_writable else "all", timeout=900).strip()
    if decision.action == "install":
        return [f"WordPress {out}"], [], False
    before, _, after = out.removeprefix("updated ").partition(" -> ")
    return [f"updated core {before} -> {after}"], [], True


def end_maintenance(conn, site: SiteConfig) -> None:
    _release_script(conn, "finish", site)


def bootstrap(conn, site: SiteConfig, action: str, payload: dict | None = None) -> dict:
    """Run pressfleet's PHP bootstrap as the site's user; PAYLOAD (which may hold passwords) goes on stdin."""
    data = json.dumps({"domain": site.domain, "path": site.web_root, **(payload or {})})
    mail = ["-d", f"sendmail_path=/usr/bin/msmtp -C {site.msmtp_config_path} -t"] if site.mail_relay else []
    # (php-cli reads php.ini, not the pool: the site's mail relay is given here too)
    result = run(conn, ["runuser", "-u", site.user, "--", "php", *mail, BOOTSTRAP, action], stdin=data, timeout=300)
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"WordPress bootstrap '{action}' printed no result (stderr: {result.stderr.strip()[-300:]})")
    return json.loads(lines[-1])


MULTISITE_LINE = "define( 'MULTISITE', true );"


def network_configured(conn, site: SiteConfig) -> bool | None:
    """Whether the host's wp-config.php starts WordPress as a network (None: there is no wp-config.php yet)."""
    if not run(conn, ["test", "-f", site.wp_config_path], check=False).ok:
        return None
    return run(conn, ["grep", "-qF", "--", MULTISITE_LINE, site.wp_config_path], check=False).ok


def network_tables(conn, site: SiteConfig) -> bool:
    """Whether the network's own tables hold the network (WordPress's network_domain_check())."""
    out = bootstrap(conn, site, "status", {"no_network": True})
    return bool(out.get("network"))


def install_network(conn, site: SiteConfig) -> bool:
    """WordPress's own network install (the tables, the network and its super admin) while wp-config.php still
    starts WordPress as a single site. True if it made the network, False if it was there."""
    out = bootstrap(conn, site, "network-install", {"no_network": True, "subdomain": site.multisite == "subdomain",
                                                    "admin_email": site.admin_email})
    if out.get("not_installed"):  # a first run cut before wp_install(): the install below comes first
        return False
    if out.get("error"):
        raise RuntimeError(f"site {site.name}: the network install failed: {out['error']}")
    return bool(out.get("changed"))


def wordpress_files(site: SiteConfig, wp_config: bytes) -> list[ManagedFile]:
    group = site.group
    content = f"{site.web_root}/wp-content"
    return [
        # Above the web root, readable by the site's group only: nginx can never serve it.
        ManagedFile(site.wp_config_path, wp_config, 0o440, "root", group),
        ManagedFile(f"{content}/mu-plugins/pressfleet-cache-purge.php", wordpress_file("pressfleet-cache-purge.php"), 0o640, "root", group),
        ManagedFile(f"{content}/object-cache.php", wordpress_file("object-cache.php"), 0o640, "root", group),
        ManagedFile(BOOTSTRAP, wordpress_file("pressfleet-bootstrap.php"), 0o644),
    ]


@task(name="wordpress", cache_policy=NONE)
def configure_wordpress(server, site: SiteConfig, *, title: str, admin_user: str, admin_password: str,
                        wp_config: bytes, release_url: str, release_sha256: str | None,
                        cron_units: list[ManagedFile], update_core: bool = False) -> StepResult:
    """Site user, verified release, wp-config.php, mu-plugin and drop-in, wp_install() if needed, and the
    systemd timer that runs WordPress's scheduled tasks.

    A re-run never changes the site's content: title, admin e-mail, posts and options are set by wp_install()
    on the first run only. A core change (another release asked for) runs WordPress's own wp_upgrade() and
    is reported as an update."""
    with step("wordpress") as result, connected(server) as conn:
        result.changed += ensure_site_user(conn, site)
        result.changed += ensure_hosts_entry(conn, site)
        changed, notes, maintenance = install_release(conn, site, release_url, release_sha256, update_core=update_core)
        result.changed += changed
        result.notes += notes
        if maintenance:  # new core files came in by rename: nginx may read them now, not only at the nginx step
            converge.ensure_webread(conn, NGINX_USER, site.home, site.web_root)
        dry = converge.current_dry_run() is not None
        network = network_configured(conn, site)
        if network and not site.multisite:
            raise RuntimeError(f"site {site.name} is a WordPress network on the host: a network does not become a "
                               "single site again (set its block's multisite to subdirectory or subdomain)")
        converting = bool(site.multisite) and network is False  # a single site becomes a network
        if converting and dry:
            converge.would(f"would install a {site.multisite} network (WordPress's network install) on {site.domain}")
            result.changed.append(f"{site.multisite} network")
        elif converting and install_network(conn, site):  # before wp-config.php names it a network: no request fails
            result.changed.append(f"{site.multisite} network installed (the site is its main site)")
        written = converge.ensure_files(conn, wordpress_files(site, wp_config))
        result.changed += written
        if site.wp_config_path in written and not dry:
            # OPcache keeps the old wp-config.php for its revalidate interval: a running pool reloads (gracefully)
            # so every request has the new one at once (a converted network's subsites 404 until then)
            run(conn, ["sh", "-c", 'if systemctl is-active --quiet "$1"; then systemctl reload "$1"; fi', "sh",
                       f"php{site.php_version}-fpm"])
        install = {"title": title, "admin_user": admin_user, "admin_email": site.admin_email,
                   "admin_password": admin_password}
        try:
            if site.multisite and not dry:
                # a network's tables come first (a re-run after a cut one finishes them): wp_install() runs before
                # them on a new site, as a single site (PRESSFLEET_NO_NETWORK), then the network install
                if network is None or not network_tables(conn, site):
                    made = bootstrap(conn, site, "install", {**install, "no_network": True})
                    if made.get("user_id"):
                        result.changed.append("WordPress installed")
                    if install_network(conn, site):
                        result.changed.append(f"{site.multisite} network installed")
            outcome = {} if dry else bootstrap(conn, site, "install", install)
        finally:
            if maintenance:  # also when wp_upgrade() failed: the site serves (WordPress says what is wrong)
                end_maintenance(conn, site)
        if outcome.get("user_id"):
            result.changed.append("WordPress installed")
        if outcome.get("upgraded"):
            before, after = outcome["upgraded"]
            result.changed.append(f"database upgraded by wp_upgrade() (db_version {before} -> {after})")
        if outcome.get("subsites_upgraded"):
            result.changed.append(f"{outcome['subsites_upgraded']} subsites' tables upgraded by wp_upgrade()")
        if cron_units:
            result.changed += converge.ensure_files(conn, cron_units, on_change=["systemctl", "daemon-reload"])
            result.changed += converge.ensure_service(conn, f"{wp_cron_unit(site)}.timer")
    return result
