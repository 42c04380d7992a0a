"""PHP-FPM steps: the site's own pool and PHP settings (OPcache, realpath cache), checked by `php-fpm -t`."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from pressfleet.ssh import converge
from pressfleet.ssh.converge import ManagedFile, StepResult
from pressfleet.ssh.remote import run
from pressfleet.fleet.siteconfig import SiteConfig
from pressfleet.plan.hostsites import HostInventory, parse_inventory
from pressfleet.render.configs import php_error_log_path
from tasks.common import connected, step
from tasks.wordpress import ensure_site_user

# Peak private memory of each worker of one pool, in KiB: the high-water mark of its resident memory less
# what it shares (OPcache's segment and mapped files, which have their own budget; see pressfleet.plan.sizing).
# Before measuring, a few uncached requests make the workers run WordPress.
_WORKER_PEAK = r"""
pool=$1 domain=$2
if [ -S "/run/php/php$3-fpm-$pool.sock" ]; then
  for i in 1 2 3; do
    curl -ks -o /dev/null --max-time 20 --resolve "$domain:443:127.0.0.1" "https://$domain/?pressfleet-measure=$i" || true
  done
fi
for pid in $(pgrep -f "^php-fpm: pool $pool\$"); do
  awk '/^VmHWM:/ {h=$2} /^RssFile:/ {f=$2} /^RssShmem:/ {s=$2} END {print h - f - s}' "/proc/$pid/status" 2>/dev/null
done
"""
# A worker below this has not run WordPress yet (idle since the pool started): not a measurement.
MIN_MEANINGFUL_WORKER = 8 * 1024 * 1024


def measured_worker_memory(conn, site: SiteConfig) -> list[int]:
    """Peak private memory of the site's PHP workers in bytes (empty when none has run WordPress yet)."""
    out = run(conn, ["sh", "-c", _WORKER_PEAK, "sh", site.name, site.domain, site.php_version], check=False).stdout.split()
    samples = [int(x) * 1024 for x in out if x.lstrip("-").isdigit()]
    return [s for s in samples if s >= MIN_MEANINGFUL_WORKER]


# What the host says about its sites (root-owned folders only): each pool file with its pm.max_children,
# the global process.max, and pressfleet's per-site records (see pressfleet.plan.hostsites.parse_inventory).
_INVENTORY = r"""
for f in /etc/php/*/fpm/pool.d/*.conf; do
  [ -f "$f" ] && [ ! -L "$f" ] || continue
  n=${f##*/}; n=${n%.conf}
  echo "pool $n $(sed -n 's/^pm\.max_children *= *\([0-9]*\).*/\1/p' "$f" | head -n 1)"
  case $n in 00-pressfleet-global) echo "process_max $(sed -n 's/^process\.max *= *\([0-9]*\).*/\1/p' "$f" | head -n 1)";; esac
done
for f in /etc/pressfleet/sites/*.json; do
  [ -f "$f" ] && [ ! -L "$f" ] || continue
  n=${f##*/}; printf 'record %s ' "${n%.json}"; tr -d '\n' < "$f"; echo
done
"""


def host_inventory(conn) -> HostInventory:
    """The sites the host carries (pools, records, process.max), read without changing anything."""
    return parse_inventory(converge.sh(conn, _INVENTORY, [], reads=True).stdout)


# The site's PHP error log, created by the site's own user (its folder is the user's: root never writes there).
_ERROR_LOG = r"""
[ -e "$2" ] || [ -L "$2" ] || { runuser -u "$1" -- sh -c ': >> "$1" && chmod 0640 "$1"' sh "$2" && echo created; }
"""


@task(name="php", cache_policy=NONE)
def configure_php(server, site: SiteConfig, files: list[ManagedFile], remove: list[str],
                  others: list[SiteConfig] = ()) -> StepResult:
    """Every site's pool (each as its own user) and PHP tuning; Debian's default `www` pool is retired.

    `files` hold the pools of every site on the host (`others` are the sites besides `site`, already on it):
    adding a site re-sizes the pools of the others in the same reload."""
    php = site.php_version
    unit = f"php{php}-fpm"
    with step("php") as result, connected(server) as conn:
        # The pool runs as the site's user and logs into its folder: both must exist before php-fpm checks it.
        result.changed += ensure_site_user(conn, site)
        for s in [site, *others]:
            if not converge.would_unless(conn, ["test", "-d", f"{s.home}/log", "-a", "-d", s.tmp_dir],  # dry run
                                         f"would create {s.home}/log and {s.tmp_dir}"):
                run(conn, ["install", "-d", "-o", s.user, "-g", s.group, "-m", "0750", f"{s.home}/log", s.tmp_dir])
            if not converge.would_unless(conn, ["test", "-e", php_error_log_path(s)],  # dry run
                                         f"would create {php_error_log_path(s)} as {s.user}"):
                if converge.sh(conn, _ERROR_LOG, [s.user, php_error_log_path(s)]).stdout.strip():
                    result.changed.append(f"created {php_error_log_path(s)}")
        result.changed += converge.ensure_files(conn, files, check=[f"php-fpm{php}", "-t"], on_change=["systemctl", "reload", unit])
        removed = converge.ensure_absent(conn, remove or [])
        if removed and not converge.would(f"would run `php-fpm{php} -t` and `systemctl reload {unit}`"):  # dry run
            run(conn, [f"php-fpm{php}", "-t"])
            run(conn, ["systemctl", "reload", unit])
            result.changed += removed
        result.changed += converge.ensure_service(conn, unit)
    return result
