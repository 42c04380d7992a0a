"""Pure parts of provisioning: which components run, and every file each one puts on the host.

The flow gathers facts (RAM, CPUs, measured PHP worker memory), then asks `desired_files()` for the whole
desired state, rendered by `pressfleet.render.configs` from `pressfleet/templates/config/`. Nothing here touches a host.
"""

from __future__ import annotations

import json
import math
from typing import Literal

from pydantic import BaseModel

from pressfleet.render import configs as render
from pressfleet.ssh import redisacl
from pressfleet.ssh.converge import ManagedFile
from pressfleet.fleet.siteconfig import SiteConfig, WpSalts
from pressfleet.plan.hostsites import HostSites, site_record, site_record_path
from pressfleet.plan.sizing import HostPlan, MiB, plan_host

Component = Literal["packages", "os", "ssh", "firewall", "fail2ban", "mariadb", "redis", "wordpress", "php", "nginx"]
# Dependency order: the database before WordPress's install, the site's user (made by wordpress) before its
# PHP pool, the pool's socket before the vhost that points at it.
COMPONENTS: tuple[Component, ...] = (
    "packages", "os", "ssh", "firewall", "fail2ban", "mariadb", "redis", "wordpress", "php", "nginx")

class ProvisionReport(BaseModel):
    """What a provisioning run did (the flow's result; importable so a deployment's result can be read back)."""

    site_url: str
    changed: bool
    steps: list[dict]
    checks: list[dict]
    seconds: float
    # A dry run (nothing changed on the host): `changed` says whether anything would change; DIFFS are
    # {"step", "path", "diff"} (unified diff text; files others may not read show no content), PACKAGES the
    # packages it would install, ACTIONS the service actions and commands it would run, as sentences.
    dry_run: bool = False
    # Every site on the host this run rendered host-wide files from, and what it noted about them
    # (a site on the host with no saved block, a block whose site is not on the host yet).
    host_sites: list[str] = []
    host_notes: list[str] = []
    diffs: list[dict] = []
    packages: list[str] = []
    actions: list[str] = []


SIZING_RECORD = "/etc/pressfleet/sizing.json"
# Every site's PHP log rotation lives outside /etc/logrotate.d (logrotate reads every file there, and a
# changed managed file keeps its previous version beside it as *.pressfleet-last-good: duplicate entries);
# a constant one-line include there, written once and never changed, so it never gets such a copy.
LOGROTATE_SITES = "/etc/pressfleet/logrotate-sites.conf"
LOGROTATE_INCLUDE = "/etc/logrotate.d/pressfleet-sites"
NGINX_CACHE_DIR = "/var/cache/nginx/pressfleet"
# A re-measured worker within this share of the recorded one keeps the recorded figure, so a re-run
# does not rewrite the pool for noise.
WORKER_MEMORY_TOLERANCE = 0.25
WORKER_MEMORY_STEP = 4 * MiB


def selected(components: list[str] | None) -> list[Component]:
    """The components to run, in dependency order (all when none are named)."""
    if not components:
        return list(COMPONENTS)
    unknown = sorted(set(components) - set(COMPONENTS))
    if unknown:
        raise ValueError(f"unknown component(s) {', '.join(unknown)}: choose from {', '.join(COMPONENTS)}")
    return [c for c in COMPONENTS if c in components]


def choose_worker_memory(samples: list[int], recorded: int | None) -> int | None:
    """The PHP worker memory to size with: the recorded figure unless the measurement moved by more than
    the tolerance; otherwise the median sample rounded up to 4 MiB. None when there is nothing to go on."""
    if not samples:
        return recorded
    ordered = sorted(samples)
    median = ordered[len(ordered) // 2]
    measured = math.ceil(median / WORKER_MEMORY_STEP) * WORKER_MEMORY_STEP
    if recorded and abs(measured - recorded) <= WORKER_MEMORY_TOLERANCE * recorded:
        return recorded
    return measured


def plan_for(ram_bytes: int, cpus: int, samples: list[int], recorded: int | None, *, sites: int = 1) -> HostPlan:
    """The host's plan for `sites` pools from the measured workers, but keeping the recorded worker figure
    whenever the measurement would not change the pools' size (so a re-run rewrites nothing for noise)."""
    chosen = choose_worker_memory(samples, recorded)
    plan = plan_host(ram_bytes, worker_rss_bytes=chosen, cpus=cpus, sites=sites)
    if recorded and chosen != recorded:
        kept = plan_host(ram_bytes, worker_rss_bytes=recorded, cpus=cpus, sites=sites)
        if kept.php.max_children == plan.php.max_children:
            return kept
    return plan


def sizing_record(plan: HostPlan) -> bytes:
    return (json.dumps({"worker_memory_bytes": plan.php.worker_rss_bytes, "ram_bytes": plan.ram_bytes,
                        "max_children": plan.php.max_children,
                        "innodb_buffer_pool_bytes": plan.innodb.buffer_pool_bytes}, indent=2) + "\n").encode()


def unattended_upgrades_files() -> list[ManagedFile]:
    text = ('APT::Periodic::Update-Package-Lists "1";\n'
            'APT::Periodic::Unattended-Upgrade "1";\n'
            'APT::Periodic::AutocleanInterval "7";\n')
    return [ManagedFile("/etc/apt/apt.conf.d/20auto-upgrades", text.encode())]


def desired_files(
    site: SiteConfig,
    plan: HostPlan,
    *,
    ssh_port: int,
    ssh_groups: list[str] = (),
    ssh_users: list[str] = (),
    control_networks: list[str],
    db_password: str,
    salts: WpSalts,
    host: HostSites | None = None,
    replication_peers: list[str] = (),
) -> dict[Component, list[ManagedFile]]:
    """Every managed file, per component, for `site` on one host. Host-wide files (fail2ban's jails, every
    pool, `process.max`, log rotation) come from every site on the host (`host`, see
    `pressfleet.plan.hostsites`; `site` alone when None). `replication_peers`: the other servers of the
    host's standby pairs, which may reach MariaDB and push files over SSH without its rate limit."""
    host = host or HostSites((site,))
    if site.name not in {s.name for s in host.sites}:
        raise ValueError(f"site {site.name} is not among the host's sites")
    php = site.php_version
    fail2ban_filters = [
        ManagedFile(f"/etc/fail2ban/filter.d/{name}", text.encode())
        for name, text in render.render_fail2ban_filters().items()
    ]
    return {
        "packages": unattended_upgrades_files(),
        "os": [ManagedFile(path, text.encode()) for path, text in render.render_os_hardening().items()],
        "ssh": [ManagedFile("/etc/ssh/sshd_config.d/00-pressfleet.conf",
                            render.render_sshd_conf(ssh_users, allow_groups=ssh_groups, port=ssh_port).encode())],
        "firewall": [ManagedFile("/etc/nftables.conf",
                                 render.render_nftables_conf(ssh_port=ssh_port, ssh_exempt=control_networks,
                                                                   mariadb_peers=replication_peers).encode(), 0o755)],
        "fail2ban": [*fail2ban_filters,
                     ManagedFile("/etc/fail2ban/jail.local",
                                 render.render_fail2ban_jails(host.sites, ignore_ip=control_networks, ssh_port=ssh_port,
                                                              other_sites=host.pool_only).encode())],
        "mariadb": [ManagedFile("/etc/mysql/mariadb.conf.d/90-pressfleet.cnf", render.render_mariadb_conf(plan.innodb).encode())],
        "redis": [ManagedFile("/etc/redis/redis.conf", render.render_redis_conf(plan.redis, aclfile=redisacl.ACL_FILE).encode(),
                              0o640, "redis", "redis")],
        "php": [
            *(ManagedFile(s.php_pool_path, render.render_php_pool(s, plan.php).encode()) for s in host.sites),
            *(ManagedFile(site_record_path(s.name), site_record(s)) for s in host.sites),
            ManagedFile(LOGROTATE_SITES, render.render_php_logrotate(host.sites).encode()),
            ManagedFile(LOGROTATE_INCLUDE, f"# pressfleet: every site's PHP logs\ninclude {LOGROTATE_SITES}\n".encode()),
            ManagedFile(f"/etc/php/{php}/fpm/pool.d/00-pressfleet-global.conf", render.render_php_fpm_global(plan.php).encode()),
            ManagedFile(f"/etc/php/{php}/fpm/conf.d/90-pressfleet.ini", render.render_php_ini_overrides(plan.opcache, php_version=php).encode()),
            ManagedFile(SIZING_RECORD, sizing_record(plan)),
        ],
        # (wp-config.php and pressfleet's PHP files come from tasks.wordpress.wordpress_files())
        "wordpress": [ManagedFile(path, text.encode()) for path, text in render.render_wp_cron_units(site).items()],
        "nginx": [
            ManagedFile("/etc/nginx/conf.d/pressfleet.conf", render.render_nginx_http_conf(cache_dir=NGINX_CACHE_DIR).encode()),
            ManagedFile("/etc/nginx/sites-enabled/00-default.conf", render.render_nginx_default_server().encode()),
            ManagedFile(site.nginx_headers_path, render.render_nginx_headers(site).encode()),
            ManagedFile(site.nginx_vhost_path, render.render_nginx_vhost(site).encode()),
        ],
    }


def watched_logs(site: SiteConfig, host: HostSites | None = None) -> list[str]:
    """The nginx logs fail2ban's jails read, of every site on the host (they must exist before fail2ban
    starts the jails)."""
    names = host.protected_names if host else [site.name]
    return [f"/var/log/nginx/{n}.{kind}.log" for n in names for kind in ("access", "error")]


def nginx_links(site: SiteConfig) -> dict[str, str]:
    """Symlinks nginx needs: {link: target} (Debian's sites-available / sites-enabled)."""
    return {f"/etc/nginx/sites-enabled/{site.name}.conf": site.nginx_vhost_path}


NGINX_REMOVE = ["/etc/nginx/sites-enabled/default"]  # Debian's welcome page; 00-default.conf replaces it


def php_remove(site: SiteConfig) -> list[str]:
    """Debian's stock `www` pool runs as www-data: each site has its own pool instead. A site without a mail
    relay (any more) has no msmtp settings."""
    mail = [] if site.mail_relay else [site.msmtp_config_path, site.msmtp_password_path, mail_ca_path(site)]
    return [f"/etc/php/{site.php_version}/fpm/pool.d/www.conf", *mail]


def mail_ca_path(site: SiteConfig) -> str:
    return f"/etc/pressfleet/msmtp/{site.name}.ca.pem"


def mail_files(site: SiteConfig, relay: render.MailRelay | None, ca_pem: str | None = None) -> list[ManagedFile]:
    """The site's msmtp settings (its user's alone: PHP's mail() runs msmtp as that user) and the relay's own CA
    when it has one. Nothing without a relay."""
    if relay is None:
        return []
    trust = mail_ca_path(site) if ca_pem else render.SYSTEM_CA_BUNDLE
    files = [ManagedFile(site.msmtp_config_path, render.render_msmtp(site, relay, trust_file=trust).encode(), 0o600,
                         site.user, site.group)]
    if relay.user:
        files.append(ManagedFile(site.msmtp_password_path, relay.password.encode(), 0o600, site.user, site.group))
    if ca_pem:
        files.append(ManagedFile(mail_ca_path(site), ca_pem.encode(), 0o644))
    return files


def wp_config(site: SiteConfig, db_password: str, salts: WpSalts, redis_password: str | None = None) -> bytes:
    return render.render_wp_config(site, db_password=db_password, salts=salts, redis_password=redis_password).encode()
