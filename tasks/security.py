"""Security steps: sshd, the nftables firewall and fail2ban, each validated before it is applied."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from pressfleet import converge
from pressfleet.converge import ManagedFile, StepResult
from pressfleet.remote import run
from tasks.common import connected, step


@task(name="ssh", cache_policy=NONE)
def harden_ssh(server, files: list[ManagedFile]) -> StepResult:
    """sshd hardened; `sshd -t` must pass before sshd reloads (a reload keeps this very session)."""
    with step("ssh") as result, connected(server) as conn:
        result.changed += converge.ensure_files(
            conn, files, check=["sshd", "-t"], on_change=["systemctl", "reload", "ssh"])
    # Prove the flow's own access survives: a fresh connection with the same key must still log in.
    with connected(server) as conn:
        run(conn, ["true"])
    return result


@task(name="firewall", cache_policy=NONE)
def configure_firewall(server, files: list[ManagedFile]) -> StepResult:
    """nftables, default deny; the ruleset is checked with `nft -c` before it is loaded."""
    with step("firewall") as result, connected(server) as conn:
        result.changed += converge.ensure_files(
            conn, files, check=["nft", "-c", "-f", "/etc/nftables.conf"], on_change=["nft", "-f", "/etc/nftables.conf"])
        result.changed += converge.ensure_service(conn, "nftables")
    return result


_LOGS_SCRIPT = r"""
for f in "$@"; do
  if [ ! -e "$f" ]; then install -D -m 0640 -o www-data -g adm /dev/null "$f"; echo "$f"; fi
done
"""


@task(name="fail2ban", cache_policy=NONE)
def configure_fail2ban(server, files: list[ManagedFile], watched_logs: list[str]) -> StepResult:
    """fail2ban jails (journal backend, nftables bans); `fail2ban-client -t` before reload.

    The nginx logs the jails watch are created empty if nginx has not written them yet: fail2ban refuses
    a jail with no log file."""
    with step("fail2ban") as result, connected(server) as conn:
        for path in watched_logs:
            converge.check_path(path)
        created = converge.sh(conn, _LOGS_SCRIPT, watched_logs).stdout.split()
        result.changed += [f"created empty log {p}" for p in created]
        result.changed += converge.ensure_files(
            conn, files, check=["fail2ban-client", "-t"], on_change=["systemctl", "reload-or-restart", "fail2ban"])
        result.changed += converge.ensure_service(conn, "fail2ban")
    return result
