"""OS hardening step: audit and integrity tools, login and password policy, no core dumps, kernel settings,
unused kernel modules off, a legal banner (what Lynis and CIS ask of a Debian server)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from pressfleet.ssh import converge
from pressfleet.ssh.converge import ManagedFile, StepResult
from pressfleet.ssh.remote import run
from tasks.common import connected, step

HARDENING_PACKAGES = [
    "libpam-tmpdir", "libpam-pwquality", "apt-listchanges", "needrestart", "debsums", "apt-show-versions",
    "acct", "sysstat", "rkhunter",
    "logrotate",  # rotates every site's PHP logs (/etc/logrotate.d/pressfleet-sites)
]
CRON_DIRS = ["/etc/cron.d", "/etc/cron.daily", "/etc/cron.hourly", "/etc/cron.weekly", "/etc/cron.monthly"]

_CRON_MODES = r"""
for d in "$@"; do
  if [ -d "$d" ] && [ "$(stat -c %a "$d")" != 700 ]; then chmod 700 "$d"; echo "$d"; fi
done
"""


@task(name="os", cache_policy=NONE)
def harden_os(server, files: list[ManagedFile], login_defs: dict[str, str]) -> StepResult:
    """Files and settings of the OS hardening; kernel settings are applied unless the host is a container
    (whose kernel is the machine's: then they take effect on a real boot, and the step says so)."""
    with step("os") as result, connected(server) as conn:
        installed = converge.ensure_packages(conn, HARDENING_PACKAGES)
        if installed:
            result.changed.append(f"installed {' '.join(installed)}")
        changed = converge.ensure_files(conn, files)
        result.changed += changed
        result.changed += converge.ensure_settings(conn, "/etc/login.defs", login_defs)
        result.changed += [f"{d} mode 700" for d in converge.sh(conn, _CRON_MODES, CRON_DIRS).stdout.split()]
        for unit in ("acct", "sysstat"):
            result.changed += converge.ensure_service(conn, unit)
        if any(p.startswith("/etc/sysctl.d/") for p in changed):
            container = run(conn, ["systemd-detect-virt", "--container"], check=False).stdout.strip()
            if container and container != "none":
                result.notes.append(f"kernel settings written but not applied: this host is a {container} container")
            elif not converge.would("would run `sysctl --system`"):  # dry run: reported, not run
                run(conn, ["sysctl", "--system"])
    return result
