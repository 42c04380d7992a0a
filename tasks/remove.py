"""Removal steps: one site taken off its host (pool, user, vhost, cache, database, cron, files, logs,
certificate, Redis user), its Secret blocks and its saved block; each idempotent, so a re-run completes."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from pressfleet import validate
from pressfleet.fleet.secrets import SECRET_KINDS, secret_block_name
from pressfleet.fleet.siteconfig import SiteConfig
from pressfleet.ssh import converge, pagecache
from tasks.common import connected, script

# Every Secret block kind pressfleet keeps per site (pressfleet.fleet.secrets, the Redis ACL user's password).
# Exact names only: a prefix would also match another site's (`one` and `one_two` share `pressfleet-one-`).

# What is still on the host of a site, one `name` line per thing (empty output: nothing left). Read-only.
_LEFTOVERS = r"""
set -euf
site=$1 php=$2
case "$site" in ""|[!a-z]*|*[!a-z0-9_]*) echo "bad site name" >&2; exit 3;; esac
id -u "$site" >/dev/null 2>&1 && echo user
getent group "$site" >/dev/null && echo group
[ -e "/etc/php/$php/fpm/pool.d/$site.conf" ] && echo pool
{ [ -e "/etc/nginx/sites-available/$site.conf" ] || [ -L "/etc/nginx/sites-enabled/$site.conf" ]; } && echo vhost
[ -e "/etc/systemd/system/pressfleet-wp-cron-$site.timer" ] && echo cron
[ -e "/var/www/$site" ] && echo files
[ -e "/etc/ssl/pressfleet/$site" ] && echo certificate
[ -e "/var/log/nginx/$site.access.log" ] && echo logs
grep -Eq "[[:space:]]# pressfleet:$site\$" /etc/hosts && echo hosts-entry
if command -v mariadb >/dev/null; then
  if systemctl is-active --quiet mariadb; then
    n=$(mariadb --batch --skip-column-names -e "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = '$site'")
    [ "$n" = 0 ] || echo database
    n=$(mariadb --batch --skip-column-names -e "SELECT COUNT(*) FROM mysql.user WHERE User = '$site'")
    [ "$n" = 0 ] || echo database-user
  else
    echo mariadb-down
  fi
fi
exit 0
"""


def remove_args(site: SiteConfig) -> list[str]:
    """The removal script's arguments, each checked again here (the script checks them too)."""
    if site.tls_mode not in ("self-signed", "provided", "acme"):
        raise validate.InvalidInput(f"unknown TLS mode {site.tls_mode!r}")
    return [validate.site_name(site.name), validate.php_version(site.php_version), site.tls_mode,
            *(validate.domain(n) for n in site.server_names)]


def leftovers(conn, site: SiteConfig) -> list[str]:
    """What of SITE is still on the host ('user', 'pool', 'vhost', 'database'...); empty when it is all gone."""
    out = converge.sh(conn, _LEFTOVERS, [validate.site_name(site.name), validate.php_version(site.php_version)],
                      reads=True)
    return out.stdout.split()


def _remove_redis_user(conn, site: SiteConfig) -> list[str]:
    """The site's Redis ACL user (its connections close) and its keys (tasks.redis.remove_redis_user)."""
    from tasks.redis import remove_redis_user

    return list(remove_redis_user(conn, site.name))


@task(name="remove-from-host", cache_policy=NONE)
def remove_from_host(server, site: SiteConfig) -> list[str]:
    """Run the removal script (pressfleet/templates/scripts/remove_site.sh) for SITE on its host, then its Redis
    user; then check nothing of the site is left. Returns what was removed, one sentence each."""
    args = remove_args(site)
    with connected(server) as conn:
        pages = pagecache.purge_site_pages(conn, list(site.server_names))
        result = converge.sh(conn, script("remove_site.sh"), args, check=False, timeout=900)
        refusal = [ln.removeprefix("refused: ") for ln in result.stderr.splitlines() if ln.startswith("refused: ")]
        if not result.ok:
            raise RuntimeError(f"{server.address}: removing site {site.name} stopped: "
                               f"{refusal[0] if refusal else result.stderr.strip()[-400:]} (run it again to finish)")
        removed = pages + [ln for ln in result.stdout.splitlines() if ln.strip()]
        removed += _remove_redis_user(conn, site)
        left = leftovers(conn, site)
    if left:
        raise RuntimeError(f"{server.address}: site {site.name} still has {', '.join(left)} after removal "
                           "(run it again to finish)")
    return removed


def delete_site_blocks(site_name: str, block_name: str) -> list[str]:
    """Delete the site's Secret blocks (exact names) and its saved WordPress Site block; those already gone
    are skipped. Returns the deleted blocks' names."""
    from prefect.blocks.system import Secret
    from prefect.exceptions import ObjectNotFound

    from blocks.site import WordPressSite
    from pressfleet.fleet.saved import saved_block_names

    deleted = []
    saved = set(saved_block_names("secret"))
    for kind in SECRET_KINDS:
        name = secret_block_name(validate.site_name(site_name), kind)
        if name in saved:
            try:
                Secret.delete(name)
                deleted.append(name)
            except (ValueError, ObjectNotFound):
                pass
    if block_name in saved_block_names("wordpress-site"):
        try:
            WordPressSite.delete(block_name)
            deleted.append(block_name)
        except (ValueError, ObjectNotFound):
            pass
    return deleted


_POOLS = r"""
set -euf
case "$1" in [0-9].[0-9]|[0-9].[0-9][0-9]) ;; *) echo "bad PHP version" >&2; exit 3;; esac
d="/etc/php/$1/fpm/pool.d"
[ -d "$d" ] || exit 0
find "$d" -mindepth 1 -maxdepth 1 -name '*.conf' ! -name '00-pressfleet-global.conf' -printf '%f\n'
"""


@task(name="fail2ban-without-sites", cache_policy=NONE)
def jails_without_sites(server, php_version: str) -> list[str] | None:
    """When no site is left on the host (no saved site names it and no PHP pool is left): fail2ban's jail.local
    without WordPress jails, so it no longer watches the removed site's logs (`fail2ban-client -t`, then
    reloaded); returns the files changed. A host that still has a pool is left as it is: None."""
    import ipaddress

    from pressfleet.render.configs import render_fail2ban_jails
    from pressfleet.ssh.converge import ManagedFile
    from pressfleet.ssh.remote import run

    with connected(server) as conn:
        pools = converge.sh(conn, _POOLS, [validate.php_version(php_version)], reads=True).stdout.split()
        if pools:
            return None
        client = run(conn, ["sh", "-c", 'echo "${SSH_CLIENT%% *}"']).stdout.strip()
        networks = [str(ipaddress.ip_network(client))] if client else []
        jail = ManagedFile("/etc/fail2ban/jail.local",
                           render_fail2ban_jails((), ignore_ip=networks, ssh_port=server.port).encode())
        return converge.ensure_files(conn, [jail], check=["fail2ban-client", "-t"],
                                     on_change=["systemctl", "reload-or-restart", "fail2ban"])


def removal_started(left: list[str]) -> bool:
    """Whether a removal already began on the host (LEFT: what `leftovers` found): the site's folder or its
    database is gone, so a final backup can no longer be taken (a re-run then keeps the newest backup as the
    final one)."""
    if "mariadb-down" in left:  # cannot tell whether the database is there: take (or fail) the backup
        return False
    return not ("files" in left and "database" in left)


@task(name="site-on-host", cache_policy=NONE)
def site_on_host(server, site: SiteConfig) -> list[str]:
    """What of SITE is on its host now (`leftovers`), read-only."""
    with connected(server) as conn:
        return leftovers(conn, site)
