"""PHP-FPM steps: the site's own pool and PHP settings (OPcache, realpath cache), checked by `php-fpm -t`."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from pressfleet.ssh import converge
from pressfleet.ssh.converge import ManagedFile, StepResult
from pressfleet.ssh.remote import run
from pressfleet.fleet.siteconfig import SiteConfig
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


@task(name="php", cache_policy=NONE)
def configure_php(server, site: SiteConfig, files: list[ManagedFile], remove: list[str]) -> StepResult:
    """The site's pool (as its own user) and PHP tuning; Debian's default `www` pool is retired."""
    php = site.php_version
    unit = f"php{php}-fpm"
    with step("php") as result, connected(server) as conn:
        # The pool runs as the site's user and logs into its folder: both must exist before php-fpm checks it.
        result.changed += ensure_site_user(conn, site)
        if not converge.would_unless(conn, ["test", "-d", f"{site.home}/log", "-a", "-d", site.tmp_dir],  # dry run
                                     f"would create {site.home}/log and {site.tmp_dir}"):
            run(conn, ["install", "-d", "-o", site.user, "-g", site.group, "-m", "0750", f"{site.home}/log", site.tmp_dir])
        result.changed += converge.ensure_files(conn, files, check=[f"php-fpm{php}", "-t"], on_change=["systemctl", "reload", unit])
        removed = converge.ensure_absent(conn, remove or [])
        if removed and not converge.would(f"would run `php-fpm{php} -t` and `systemctl reload {unit}`"):  # dry run
            run(conn, [f"php-fpm{php}", "-t"])
            run(conn, ["systemctl", "reload", unit])
            result.changed += removed
        result.changed += converge.ensure_service(conn, unit)
    return result
