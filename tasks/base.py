"""Base steps: the stack's Debian packages in one apt transaction, and unattended security upgrades."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from pressfleet.ssh import converge
from pressfleet.ssh.converge import ManagedFile, StepResult
from tasks.common import connected, step
from tasks.os import HARDENING_PACKAGES


def stack_packages(php: str = "8.2") -> list[str]:
    """Everything a hardened, cached WordPress host runs, from Debian 12's own archive."""
    return [
        "nginx", "libnginx-mod-http-cache-purge", "ssl-cert", "openssl",
        f"php{php}-fpm", f"php{php}-cli", f"php{php}-mysql", f"php{php}-curl", f"php{php}-gd", f"php{php}-intl",
        f"php{php}-mbstring", f"php{php}-xml", f"php{php}-zip", f"php{php}-opcache", f"php{php}-bcmath",
        "php-redis", "php-imagick",
        "mariadb-server", "redis-server",
        "nftables", "fail2ban", "python3-systemd",
        "unattended-upgrades", "certbot", "python3-certbot-nginx",
        "curl", "zstd", "ca-certificates", "netbase", "acl",  # acl: getfacl/setfacl to inspect nginx's read access
        "msmtp",  # WordPress's mail to the site's SMTP relay (only when a site names one)
        *HARDENING_PACKAGES,  # one apt transaction for everything; the os step finds them there
    ]


@task(name="packages", cache_policy=NONE)
def install_packages(server, packages: list[str], files: list[ManagedFile]) -> StepResult:
    """Install what is missing (nothing when all is there) and switch on unattended security upgrades."""
    with step("packages") as result, connected(server) as conn:
        installed = converge.ensure_packages(conn, packages)
        if installed:
            result.changed.append(f"installed {len(installed)} packages: {' '.join(installed)}")
        result.changed += converge.ensure_files(conn, files)
    return result
