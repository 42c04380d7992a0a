"""Security steps: sshd, the nftables firewall and fail2ban, each validated before it is applied."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from pressfleet.ssh import converge
from pressfleet.ssh.converge import ManagedFile, StepResult
from pressfleet.ssh.remote import run
from tasks.common import connected, step


# Accounts that can log in over SSH today: a login shell and a non-empty authorized_keys file (Debian's sshd
# reads .ssh/authorized_keys and .ssh/authorized_keys2). Prints `name<TAB>group group...` for each.
_KEYED_ACCOUNTS = r"""
getent passwd | while IFS=: read -r name _ _ _ _ home shell; do
  case "$shell" in */nologin|*/false|"") continue;; esac
  if [ -s "$home/.ssh/authorized_keys" ] || [ -s "$home/.ssh/authorized_keys2" ]; then
    printf '%s	%s
' "$name" "$(id -nG "$name" 2>/dev/null)"
  fi
done
"""

# The SSH login group and its members (added, never removed: other tools may use the group too).
_SSH_GROUP = r"""
set -eu
group=$1; shift
if ! getent group "$group" >/dev/null; then groupadd --system "$group"; echo "group $group"; fi
for user in "$@"; do
  if ! id -nG "$user" | tr ' ' '\n' | grep -qx "$group"; then usermod -a -G "$group" "$user"; echo "$user in $group"; fi
done
"""


def locked_out(accounts: dict[str, set[str]], allowed_groups: list[str], joining: list[str]) -> list[str]:
    """Accounts with SSH keys that sshd's AllowGroups would shut out: in none of the allowed groups and not
    about to join the SSH login group (pure; ACCOUNTS maps each keyed account to its groups)."""
    allowed, joins = set(allowed_groups), set(joining)
    return sorted(name for name, groups in accounts.items() if name not in joins and not groups & allowed)


def parse_keyed_accounts(text: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line.strip():
            name, _, groups = line.partition("\t")
            out[name] = set(groups.split())
    return out


def fresh_login(server) -> None:
    """A brand-new SSH connection with the Server block's key must log in and run a command."""
    with connected(server, fresh=True) as proof:  # a NEW login, never the run's shared connection
        run(proof, ["true"])


@task(name="ssh", cache_policy=NONE)
def harden_ssh(server, files: list[ManagedFile], *, group: str = "pressfleet-ssh", admins: list[str] = (),
               allow_groups: list[str] = ("sudo",)) -> StepResult:
    """sshd hardened, logins limited to groups (AllowGroups: GROUP, which the automation user and ADMINS join, and
    ALLOW_GROUPS). Refused before any change when an account with SSH keys would be locked out. The new config
    must pass `sshd -t`, then sshd reloads (this session stays up) and a fresh login must succeed before the
    config is committed; otherwise the previous config goes back and sshd reloads again."""
    with step("ssh") as result, connected(server) as conn:
        joining = list(dict.fromkeys([server.user, *admins]))
        missing = [u for u in joining if not run(conn, ["id", "-u", "--", u], check=False).ok]
        if missing:
            raise ValueError(f"{server.address} has no account {', '.join(missing)} (named as an SSH account on the "
                             "Server block): create it or remove it from the block; nothing was changed")
        keyed = parse_keyed_accounts(run(conn, ["sh", "-c", _KEYED_ACCOUNTS]).stdout)
        shut_out = locked_out(keyed, [group, *allow_groups], joining)
        if shut_out:
            raise ValueError(
                f"sshd on {server.address} would lock out {', '.join(shut_out)} (accounts with SSH keys in none of the "
                f"groups {', '.join([group, *allow_groups])}): add them to the Server block's human SSH accounts, "
                "or their group to its other allowed groups, or remove their keys; nothing was changed")
        out = converge.sh(conn, _SSH_GROUP, [group, *joining]).stdout.splitlines()
        result.changed += [f"ssh login group: {line}" for line in out if line.strip()]
        result.changed += converge.ensure_files(
            conn, files, check=["sshd", "-t"], on_change=["systemctl", "reload", "ssh"],
            prove=lambda: fresh_login(server))
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
  if [ ! -e "$f" ] && [ ! -L "$f" ]; then install -D -m 0640 -o www-data -g adm /dev/null "$f"; echo "$f"; fi
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
