"""Every configuration file pressfleet puts on a host, rendered from `pressfleet/templates/config/`.

Pure functions: validated models in (`SiteConfig`, the settings of `pressfleet.plan.sizing`, values checked by
`pressfleet.validate`), text out. Tasks upload the text; they never assemble configuration from strings.

Two guards keep hostile values out of the files:
- renderers accept only pydantic models of the expected class, and validate them again (so a model built
  with `model_construct`, which skips validation, is refused as well), and check every loose argument
  with the validators of `pressfleet.validate`;
- the Jinja environment refuses to output a value that contains a newline or another control character,
  so no value can ever add a line (a directive) to a file, whatever slipped through.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import jinja2
import markupsafe
from pydantic import BaseModel

from pressfleet.paths import TEMPLATES
from pressfleet.fleet.siteconfig import SiteConfig, WpSalts
from pressfleet.plan.sizing import InnodbSettings, OpcacheSettings, PhpFpmSizing, RedisSettings
from pressfleet import validate as _v
from pressfleet.validate import InvalidInput, cidr, remote_path, secret, unix_user

__all__ = [
    "RenderError",
    "CACHE_ZONE",
    "LOGIN_ZONE",
    "LOGIN_RATE",
    "SSH_KEX",
    "SSH_CIPHERS",
    "SSH_MACS",
    "SSH_HOST_KEY_ALGORITHMS",
    "TLS_CIPHERS",
    "STATUS_PORT",
    "NGINX_STATUS_PATH",
    "FPM_STATUS_PATH",
    "fpm_status_url_path",
    "fpm_status_socket",
    "render_nginx_http_conf",
    "render_nginx_default_server",
    "render_nginx_headers",
    "render_nginx_vhost",
    "render_php_pool",
    "render_php_fpm_global",
    "render_php_ini_overrides",
    "render_php_logrotate",
    "php_slowlog_path",
    "php_error_log_path",
    "render_mariadb_conf",
    "render_restore_test_wp_config",
    "render_redis_conf",
    "render_sshd_conf",
    "render_nftables_conf",
    "render_fail2ban_jails",
    "render_fail2ban_filters",
    "render_wp_config",
    "render_site_files",
    "render_wp_cron_units",
    "render_os_hardening",
    "LOGIN_DEFS",
    "wp_cron_unit",
]

CONFIG_TEMPLATES = TEMPLATES / "config"

CACHE_ZONE = "pressfleet"
# Monitoring endpoints, on a loopback-only nginx server (conf.d/pressfleet.conf): stub_status and each
# site's PHP-FPM pool status (pm.status_path, served from the pool's own pm.status_listen socket).
STATUS_PORT = 8081
NGINX_STATUS_PATH = "/nginx-status"
FPM_STATUS_PATH = "/status"


def fpm_status_url_path(site_name: str) -> str:
    """The path of a site's PHP-FPM status on the loopback status server (`/fpm-status-<site>`)."""
    return f"/fpm-status-{_v.site_name(site_name)}"


def fpm_status_socket(site: SiteConfig) -> str:
    """The pool's own status socket (pm.status_listen); nginx's status server passes to it."""
    return f"/run/php/php{site.php_version}-fpm-{site.name}.status.sock"

LOGIN_ZONE = "pf_wp_login"
LOGIN_RATE = "1r/s"

# Mozilla "intermediate" TLS 1.2 suites minus the DHE ones (no dhparam file to manage); TLS 1.3 suites are
# OpenSSL's defaults.
TLS_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)

# OpenSSH 9.2 (Debian 12): post-quantum hybrid and curve25519 key exchange, AEAD and CTR ciphers,
# encrypt-then-MAC SHA-2 MACs only. Debian's 9.2p1-2+deb12u2 and later carry the "strict KEX" fix for
# Terrapin (CVE-2023-48795), so chacha20-poly1305 stays for clients that prefer it.
SSH_KEX = (
    "sntrup761x25519-sha512@openssh.com",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
)
SSH_CIPHERS = (
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)
SSH_MACS = (
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256-etm@openssh.com",
    "umac-128-etm@openssh.com",
)
SSH_HOST_KEY_ALGORITHMS = (
    "ssh-ed25519",
    "ssh-ed25519-cert-v01@openssh.com",
    "rsa-sha2-512",
    "rsa-sha2-256",
    "rsa-sha2-512-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
)

PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), usb=()"
)

DISABLED_FUNCTIONS = ("exec", "passthru", "shell_exec", "system", "proc_open", "popen", "pcntl_exec")


class RenderError(ValueError):
    """A template was given a value it must not print (the message names the template)."""


# --- the Jinja environment ------------------------------------------------------------------------------


def _finalize(value: Any) -> Any:
    # Markup is only ever template text (a macro's output marked `| fragment` in a template), whose own
    # values went through this check when the macro rendered them.
    if isinstance(value, str) and not isinstance(value, markupsafe.Markup) and any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise RenderError(f"refusing to render a value with a control character or newline: {value[:60]!r}")
    return value


def _php_str(value: Any) -> str:
    """Escape for a PHP single-quoted string: only backslash and quote are special there."""
    if not isinstance(value, str):
        raise RenderError(f"php_str expects a string, not {type(value).__name__}")
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _php_bool(value: Any) -> str:
    if not isinstance(value, bool):
        raise RenderError(f"php_bool expects a bool, not {type(value).__name__}")
    return "true" if value else "false"


def _mib(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RenderError(f"mib expects a byte count, not {value!r}")
    return value // (1024 * 1024)


def _fragment(value: Any) -> markupsafe.Markup:
    """A macro's output, to be placed on its own lines: trusted template text without its last newline."""
    if not isinstance(value, str):
        raise RenderError(f"fragment expects a macro's output, not {type(value).__name__}")
    return markupsafe.Markup(value.rstrip("\n"))


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(CONFIG_TEMPLATES)),
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    finalize=_finalize,
)
def _msmtp_quote(value: Any) -> str:
    """A msmtp configuration value in double quotes; msmtp has no escapes there, so a quote or backslash is refused."""
    if not isinstance(value, str) or '"' in value or "\\" in value:
        raise RenderError(f"a msmtp value may not hold a double quote or backslash: {str(value)[:40]!r}")
    return f'"{value}"'


_ENV.filters.update(php_str=_php_str, php_bool=_php_bool, mib=_mib, fragment=_fragment, msmtp_quote=_msmtp_quote)


def _render(template: str, **context: Any) -> str:
    banner = f"Rendered by pressfleet from templates/config/{template}; local edits are overwritten."
    try:
        return _ENV.get_template(template).render(banner=banner, **context)
    except RenderError as exc:
        raise RenderError(f"{template}: {exc}") from None


# --- input checks ---------------------------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


def _valid(obj: Any, cls: type[M], what: str) -> M:
    """`obj` must be a `cls`; it is validated again, which refuses models built with model_construct()."""
    if not isinstance(obj, cls):
        raise TypeError(f"{what} must be a {cls.__name__}, not {type(obj).__name__}")
    return cls.model_validate(obj.model_dump(warnings=False))


def _cidrs(values: Iterable[str]) -> list[str]:
    return [cidr(v) for v in values]


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{what} must be true or false, not {value!r}.")
    return value


def _int_in(value: Any, lo: int, hi: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidInput(f"{what} must be a whole number from {lo} to {hi}, not {value!r}.")
    return value


# --- nginx ----------------------------------------------------------------------------------------------


def render_nginx_http_conf(
    *,
    cache_dir: str = "/var/cache/nginx/pressfleet",
    keys_zone_mb: int = 32,
    cache_max_size_mb: int = 1024,
    cache_inactive_min: int = 60,
    status_port: int = STATUS_PORT,
    php_version: str = "8.2",
) -> str:
    """/etc/nginx/conf.d/pressfleet.conf: fastcgi_cache zone and key, cache-bypass maps, wp-login limit,
    and the loopback-only status server (`127.0.0.1:<status_port>`: stub_status at /nginx-status, each
    site's PHP-FPM pool status at /fpm-status-<site>, from the pool's status socket for `php_version`).

    One keys zone for all sites (the key contains the host); 1 MiB of keys zone holds about 8000 keys.
    """
    return _render(
        "nginx/http.conf.j2",
        cache_dir=remote_path(cache_dir),
        cache_zone=CACHE_ZONE,
        keys_zone_mb=_int_in(keys_zone_mb, 1, 4096, "keys_zone_mb"),
        cache_max_size_mb=_int_in(cache_max_size_mb, 16, 1024 * 1024, "cache_max_size_mb"),
        cache_inactive_min=_int_in(cache_inactive_min, 1, 7 * 24 * 60, "cache_inactive_min"),
        login_zone=LOGIN_ZONE,
        login_rate=LOGIN_RATE,
        status_port=_v.port(status_port),
        php_version=_v.php_version(php_version),
        nginx_status_path=NGINX_STATUS_PATH,
        fpm_status_path=FPM_STATUS_PATH,
    )


def render_nginx_default_server(*, ipv6: bool = True) -> str:
    """/etc/nginx/sites-enabled/00-default.conf: drop requests for unknown host names (replaces Debian's)."""
    return _render("nginx/default-server.conf.j2", ipv6=_bool(ipv6, "ipv6"))


def render_nginx_headers(site: SiteConfig) -> str:
    """The site's security-header snippet (`site.nginx_headers_path`), included wherever headers are added."""
    site = _valid(site, SiteConfig, "site")
    return _render("nginx/headers.conf.j2", site=site, permissions_policy=PERMISSIONS_POLICY)


def render_nginx_vhost(
    site: SiteConfig,
    *,
    log_dir: str = "/var/log/nginx",
    acme_webroot: str = "/var/www/_letsencrypt",
    purge_allow: Sequence[str] = ("127.0.0.1", "::1"),
    cache_purge: bool = True,
    ipv6: bool = True,
    headers_include: str | None = None,
    fastcgi_timeout_s: int = 120,
) -> str:
    """/etc/nginx/sites-available/<site>.conf: HTTP->HTTPS, TLS, headers, page cache, WordPress hardening.

    `purge_allow` are the networks that may call /purge/<path> (the Nginx Helper plugin calls it from the
    host itself; add the host's public address if WordPress resolves its own domain to it).
    `cache_purge` needs Debian's libnginx-mod-http-cache-purge.
    """
    site = _valid(site, SiteConfig, "site")
    return _render(
        "nginx/vhost.conf.j2",
        site=site,
        log_dir=remote_path(log_dir),
        acme_webroot=remote_path(acme_webroot),
        purge_allow=_cidrs(purge_allow),
        cache_purge=_bool(cache_purge, "cache_purge"),
        ipv6=_bool(ipv6, "ipv6"),
        headers_include=remote_path(headers_include or site.nginx_headers_path),
        fastcgi_timeout_s=_int_in(fastcgi_timeout_s, 10, 3600, "fastcgi_timeout_s"),
        cache_zone=CACHE_ZONE,
        login_zone=LOGIN_ZONE,
        tls_ciphers=TLS_CIPHERS,
    )


# --- PHP ------------------------------------------------------------------------------------------------


def render_php_pool(
    site: SiteConfig,
    sizing: PhpFpmSizing,
    *,
    request_timeout_s: int = 120,
    log_dir: str = "/var/log",
) -> str:
    """/etc/php/8.2/fpm/pool.d/<site>.conf: the site's own user, socket, process manager and PHP limits.

    The slow log is written by the master (root) under `log_dir`; PHP errors go to the site's own
    `<home>/log/php-error.log`, which its user can write.
    """
    site = _valid(site, SiteConfig, "site")
    sizing = _valid(sizing, PhpFpmSizing, "sizing")
    return _render(
        "php/pool.conf.j2",
        site=site,
        sizing=sizing,
        request_timeout_s=_int_in(request_timeout_s, 30, 3600, "request_timeout_s"),
        status_socket=fpm_status_socket(site),
        status_path=FPM_STATUS_PATH,
        slowlog=php_slowlog_path(site, log_dir),
        error_log=php_error_log_path(site),
        disabled_functions=DISABLED_FUNCTIONS,
    )


class MailRelay(BaseModel):
    """Where a site's mail goes: the SMTP relay (the SmtpRelay block's values, the password in plain text here:
    it is rendered into a file only the site's user can read)."""

    host: str
    port: int = 587
    security: str = "starttls"  # starttls, tls (implicit, port 465) or none
    user: str = ""
    password: str = ""
    from_address: str


SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def render_msmtp(site: SiteConfig, relay: MailRelay, *, trust_file: str = SYSTEM_CA_BUNDLE) -> str:
    """The site's msmtp settings: its relay, TLS (certificates checked against TRUST_FILE) and login."""
    site = _valid(site, SiteConfig, "site")
    relay = _valid(relay, MailRelay, "relay")
    if relay.security not in ("starttls", "tls", "none"):
        raise RenderError(f"mail relay security must be starttls, tls or none, not {relay.security!r}")
    checked = relay.model_copy(update={"host": _v.hostname(relay.host), "port": _v.port(relay.port),
                                       "from_address": _v.email(relay.from_address)})
    if relay.user and not relay.password:
        raise RenderError("a mail relay user needs its password")
    if any(ord(c) < 32 or ord(c) == 127 for c in relay.password):
        raise RenderError("a mail relay password may not hold control characters or newlines")
    return _render("mail/msmtp.conf.j2", site=site, relay=checked, trust_file=remote_path(trust_file))


def php_slowlog_path(site: SiteConfig, log_dir: str = "/var/log") -> str:
    """The pool's slow log: written by php-fpm's master (root), in a folder only root can write."""
    return f"{remote_path(log_dir)}/php{site.php_version}-fpm-{site.name}.slow.log"


def php_error_log_path(site: SiteConfig) -> str:
    """The site's PHP error log, in `<home>/log`, which the site's user owns (its workers write it)."""
    return f"{site.home}/log/php-error.log"


def render_php_logrotate(sites: Sequence[SiteConfig], *, slowlog_dir: str = "/var/log", keep_days: int = 14) -> str:
    """/etc/pressfleet/logrotate-sites.conf (included from /etc/logrotate.d): daily rotation of every site's PHP slow log and error log.

    The error log sits in a folder the site's user can write, so its stanza has `su <user> <group>`: logrotate
    (root) drops to that user there and never follows a link the site's PHP could have placed. The slow log
    is in a root-owned folder. Neither needs php-fpm to reopen anything: both are opened per write.
    """
    checked = sorted((_valid(s, SiteConfig, "site") for s in sites), key=lambda s: s.name)
    return _render("logrotate/sites.j2", sites=checked, slowlog_dir=remote_path(slowlog_dir),
                   keep_days=_int_in(keep_days, 1, 3650, "keep_days"))


def render_php_fpm_global(sizing: PhpFpmSizing) -> str:
    """/etc/php/8.2/fpm/pool.d/00-pressfleet-global.conf: `process.max` over all pools."""
    sizing = _valid(sizing, PhpFpmSizing, "sizing")
    return _render("php/fpm-global.conf.j2", sizing=sizing)


def render_php_ini_overrides(opcache: OpcacheSettings, *, php_version: str = "8.2") -> str:
    """/etc/php/8.2/fpm/conf.d/90-pressfleet.ini: OPcache, realpath cache, expose_php."""
    opcache = _valid(opcache, OpcacheSettings, "opcache")
    return _render("php/pressfleet.ini.j2", opcache=opcache, php_version=_v.php_version(php_version))


# --- MariaDB, Redis -------------------------------------------------------------------------------------


def render_mariadb_conf(
    innodb: InnodbSettings,
    *,
    bind_address: str = "127.0.0.1",
    slow_log: str = "/var/log/mysql/mariadb-slow.log",
    binlog_days: int = 8,
) -> str:
    """/etc/mysql/mariadb.conf.d/90-pressfleet.cnf: memory, connections, local-only, slow query log, and the
    binary log kept binlog_days (point-in-time recovery; longer than the nightly backup interval)."""
    if not isinstance(binlog_days, int) or not 1 <= binlog_days <= 365:
        raise InvalidInput(f"binlog_days must be a whole number of days from 1 to 365, not {binlog_days!r}.")
    innodb = _valid(innodb, InnodbSettings, "innodb")
    try:
        bind = str(ipaddress.ip_address(bind_address))
    except ValueError:
        raise InvalidInput(f"{bind_address!r} is not an IP address MariaDB can bind to.") from None
    return _render("mariadb/pressfleet.cnf.j2", innodb=innodb, bind_address=bind, slow_log=remote_path(slow_log),
                   binlog_days=binlog_days)


def render_redis_conf(
    redis: RedisSettings,
    *,
    bind: Sequence[str] = ("127.0.0.1", "-::1"),
    port: int = 6379,
    data_dir: str = "/var/lib/redis",
    logfile: str = "/var/log/redis/redis-server.log",
    pidfile: str = "/run/redis/redis-server.pid",
    aclfile: str | None = None,
) -> str:
    """/etc/redis/redis.conf: loopback only, bounded, allkeys-lru, no persistence.

    A leading `-` on a bind address (Redis 7) skips it when the host has no such address (no IPv6).
    `port=0` disables TCP (tests use that with a unix socket given on the command line). `aclfile` is where Redis
    keeps its ACL users (one per site, pressfleet.ssh.redisacl; ACL SAVE writes it): the file must exist before
    Redis starts with it. None: no ACL file (every client is the `default` user).
    """
    redis = _valid(redis, RedisSettings, "redis")
    addresses = []
    for address in bind:
        optional = address.startswith("-")
        try:
            ip = str(ipaddress.ip_address(address[1:] if optional else address))
        except ValueError:
            raise InvalidInput(f"{address!r} is not an address Redis can bind to.") from None
        addresses.append(("-" if optional else "") + ip)
    if not addresses:
        raise InvalidInput("Redis needs at least one address to bind to.")
    if port != 0:
        _v.port(port)
    return _render(
        "redis/redis.conf.j2",
        redis=redis,
        bind=addresses,
        port=port,
        data_dir=remote_path(data_dir),
        logfile=remote_path(logfile),
        pidfile=remote_path(pidfile),
        aclfile=None if aclfile is None else remote_path(aclfile),
    )


# --- sshd, nftables, fail2ban ---------------------------------------------------------------------------


def render_sshd_conf(
    allow_users: Sequence[str] = (),
    *,
    allow_groups: Sequence[str] = (),
    port: int = 22,
    permit_root_login: str = "prohibit-password",
    max_auth_tries: int = 3,
    max_sessions: int = 2,
) -> str:
    """/etc/ssh/sshd_config.d/00-pressfleet.conf: keys only, listed groups (or users) only, no forwarding, modern crypto.

    pressfleet itself allows groups (`AllowGroups`: its own `pressfleet-ssh`, which the automation user and named
    admins join, and `sudo` by default), so human accounts are named in one place. With both lists a login must
    satisfy both (sshd's rule); every account that logs in (the control side's too) must be allowed, or it is
    locked out.
    """
    users = [unix_user(u) for u in allow_users]
    groups = [unix_user(g) for g in allow_groups]
    if not users and not groups:
        raise InvalidInput("sshd needs at least one group in AllowGroups (or user in AllowUsers), or nobody can log in.")
    if permit_root_login not in ("prohibit-password", "no"):
        raise InvalidInput("PermitRootLogin must be 'prohibit-password' or 'no'.")
    return _render(
        "ssh/sshd_config.conf.j2",
        allow_users=list(dict.fromkeys(users)),
        allow_groups=list(dict.fromkeys(groups)),
        port=_v.port(port),
        permit_root_login=permit_root_login,
        max_auth_tries=_int_in(max_auth_tries, 1, 6, "MaxAuthTries"),
        max_sessions=_int_in(max_sessions, 1, 64, "MaxSessions"),
        kex=SSH_KEX,
        ciphers=SSH_CIPHERS,
        macs=SSH_MACS,
        host_key_algorithms=SSH_HOST_KEY_ALGORITHMS,
    )


def render_nftables_conf(
    *,
    ssh_port: int = 22,
    tcp_ports: Sequence[int] = (80, 443),
    ssh_rate_per_minute: int = 10,
    ssh_burst: int = 10,
    ssh_exempt: Sequence[str] = (),
    mariadb_peers: Sequence[str] = (),
) -> str:
    """/etc/nftables.conf: table `inet pressfleet` only, replaced atomically; default-drop input.

    Accepted: loopback, established/related, ICMP and ICMPv6, DHCPv6 replies, SSH (new connections
    rate-limited per source address, except from `ssh_exempt` networks such as the control host), and
    `tcp_ports`. Forwarding is dropped. No `flush ruleset`, so fail2ban's table survives a reload.
    `mariadb_peers` (addresses of the other servers of its standby pairs) may reach MariaDB (3306) and SSH
    without the rate limit (the file sync logs in every few seconds).
    """
    peers = [str(ipaddress.ip_address(_v.hostname(p))) for p in mariadb_peers]
    exempt = _cidrs([*ssh_exempt, *(f"{p}/{32 if ipaddress.ip_address(p).version == 4 else 128}" for p in peers)])
    ports = sorted({_v.port(p) for p in tcp_ports})
    if not ports:
        raise InvalidInput("At least one public TCP port (usually 80 and 443) is needed.")
    return _render(
        "nftables/nftables.conf.j2",
        ssh_port=_v.port(ssh_port),
        tcp_ports=ports,
        ssh_rate=_int_in(ssh_rate_per_minute, 1, 6000, "ssh_rate_per_minute"),
        ssh_burst=_int_in(ssh_burst, 1, 1000, "ssh_burst"),
        ssh_exempt_v4=[n for n in exempt if ipaddress.ip_network(n).version == 4],
        ssh_exempt_v6=[n for n in exempt if ipaddress.ip_network(n).version == 6],
        mariadb_v4=sorted({p for p in peers if ipaddress.ip_address(p).version == 4}),
        mariadb_v6=sorted({p for p in peers if ipaddress.ip_address(p).version == 6}),
    )


def render_fail2ban_jails(
    sites: Sequence[SiteConfig] = (),
    *,
    nginx_log_dir: str = "/var/log/nginx",
    ignore_ip: Sequence[str] = (),
    ssh_port: int = 22,
    wp_login_maxretry: int = 5,
    fail2ban_log: str = "/var/log/fail2ban.log",
    other_sites: Sequence[str] = (),
) -> str:
    """/etc/fail2ban/jail.local: sshd (journal), recidive, nginx-botsearch, WordPress jails.

    The WordPress login jail reads each site's access log; the XML-RPC jail only the logs of sites that
    deny xmlrpc.php (on a site that allows it, posting to it is legitimate). `sites` are every site on the
    host (never the one being provisioned alone); `other_sites` names sites on the host known only by name,
    whose logs are watched as well. Log files are listed one by
    one rather than globbed: fail2ban refuses to start a jail whose glob matches no file yet. Put the
    control host in `ignore_ip`.
    """
    checked = sorted((_valid(s, SiteConfig, "site") for s in sites), key=lambda s: s.name)
    # Sites on the host known only by name (a pool with no block or record): watched as denying XML-RPC.
    others = sorted({_v.site_name(n) for n in other_sites} - {s.name for s in checked})
    log_dir = remote_path(nginx_log_dir)
    every = [s.name for s in checked] + others
    error_logs = [f"{log_dir}/{n}.error.log" for n in sorted(every)] or [f"{log_dir}/error.log"]
    return _render(
        "fail2ban/jail.local.j2",
        ignore_ip=["127.0.0.1/8", "::1", *(n for n in _cidrs(ignore_ip) if n not in ("127.0.0.1/8", "::1/128"))],
        ssh_port=_v.port(ssh_port),
        fail2ban_log=remote_path(fail2ban_log),
        error_logs=error_logs,
        login_logs=[f"{log_dir}/{n}.access.log" for n in sorted(every)],
        xmlrpc_logs=[f"{log_dir}/{n}.access.log"
                     for n in sorted([s.name for s in checked if not s.allow_xmlrpc] + others)],
        wp_login_maxretry=_int_in(wp_login_maxretry, 1, 100, "wp_login_maxretry"),
    )


def render_fail2ban_filters() -> dict[str, str]:
    """The filters our jails use, as {file name in /etc/fail2ban/filter.d/: content}."""
    return {
        "pressfleet-wordpress-login.conf": _render("fail2ban/filter-wordpress-login.conf.j2"),
        "pressfleet-wordpress-xmlrpc.conf": _render("fail2ban/filter-wordpress-xmlrpc.conf.j2"),
    }


# --- WordPress ------------------------------------------------------------------------------------------


def render_wp_config(
    site: SiteConfig,
    *,
    db_password: str,
    salts: WpSalts,
    db_host: str = "localhost",
    redis_host: str = "127.0.0.1",
    redis_port: int = 6379,
    redis_password: str | None = None,
) -> str:
    """<site home>/wp-config.php (above the web root): database, salts, hardening, Redis, HTTPS.

    `redis_password` is the site's Redis ACL user's (the user is the site's name): WP_REDIS_PASSWORD is then
    `[user, password]`, the form pressfleet's drop-in and the "Redis Object Cache" plugin both read. None: no
    credentials (Redis without ACL users).

    `db_host` "localhost" makes PHP use MariaDB's unix socket. Secrets must pass
    `pressfleet.validate.secret`; every string is still escaped for PHP single quotes.
    """
    site = _valid(site, SiteConfig, "site")
    salts = _valid(salts, WpSalts, "salts")
    return _render(
        "wordpress/wp-config.php.j2",
        site=site,
        db_password=secret(db_password),
        salts=salts.as_constants(),
        db_host=_v.hostname(db_host),
        redis_host=_v.hostname(redis_host),
        redis_port=_v.port(redis_port),
        redis_password=None if redis_password is None else secret(redis_password),
    )


def render_restore_test_wp_config(
    site: SiteConfig, *, db_name: str, db_user: str, db_password: str, salts: WpSalts, home_url: str, abspath: str,
) -> str:
    """wp-config.php of a restore-test copy: a scratch database, WP_HOME on loopback, no Redis, no cron."""
    from pressfleet.fleet.dbnames import check_scratch

    site = _valid(site, SiteConfig, "site")
    salts = _valid(salts, WpSalts, "salts")
    parts = urlsplit(home_url)
    if parts.scheme != "http" or parts.hostname != "127.0.0.1" or parts.path not in ("", "/"):
        raise InvalidInput(f"a restore-test copy is served on http://127.0.0.1:PORT, not {home_url!r}")
    return _render(
        "wordpress/wp-config-restore-test.php.j2", site=site, db_name=check_scratch(db_name),
        db_user=check_scratch(db_user), db_password=secret(db_password), salts=salts.as_constants(),
        home_url=home_url.rstrip("/"), abspath=remote_path(abspath).rstrip("/"),
    )


# Protocols and file systems a WordPress server never needs (CIS / Lynis NETW-3200, FILE-6430).
UNUSED_KERNEL_MODULES = ("dccp", "sctp", "rds", "tipc", "cramfs", "freevxfs", "jffs2", "hfs", "hfsplus", "udf",
                         "usb-storage", "firewire-core")


def render_os_hardening() -> dict[str, str]:
    """Whole files of the OS hardening step, as {path: content}: login banner, no core dumps, kernel
    settings, unused kernel modules, sysstat on."""
    banner = _render("os/issue.j2")
    return {
        "/etc/issue": banner,
        "/etc/issue.net": banner,
        "/etc/security/limits.d/90-pressfleet.conf": _render("os/limits.conf.j2"),
        "/etc/sysctl.d/90-pressfleet.conf": _render("os/sysctl.conf.j2"),
        "/etc/modprobe.d/90-pressfleet.conf": _render("os/modprobe.conf.j2", modules=UNUSED_KERNEL_MODULES),
        "/etc/default/sysstat": _render("os/sysstat.j2"),
    }


# Settings changed inside distro files that pressfleet does not own whole (`key value` lines).
LOGIN_DEFS = {
    "UMASK": "027",
    "PASS_MAX_DAYS": "365",
    "PASS_MIN_DAYS": "1",
    "PASS_WARN_AGE": "14",
    "SHA_CRYPT_MIN_ROUNDS": "65536",
    "SHA_CRYPT_MAX_ROUNDS": "65536",
}


def wp_cron_unit(site: SiteConfig) -> str:
    return f"pressfleet-wp-cron-{site.name}"


def render_wp_cron_units(site: SiteConfig, *, interval_min: int = 5) -> dict[str, str]:
    """The systemd service and timer that run the site's wp-cron.php (DISABLE_WP_CRON is set when
    `site.system_cron`), as {path: content}; empty when the site keeps WordPress's visitor-driven cron."""
    site = _valid(site, SiteConfig, "site")
    if not site.system_cron:
        return {}
    unit = f"/etc/systemd/system/{wp_cron_unit(site)}"
    interval = _int_in(interval_min, 1, 60, "interval_min")
    return {
        f"{unit}.service": _render("systemd/wp-cron.service.j2", site=site),
        f"{unit}.timer": _render("systemd/wp-cron.timer.j2", site=site, interval_min=interval),
    }


def render_site_files(
    site: SiteConfig,
    sizing: PhpFpmSizing,
    *,
    db_password: str,
    salts: WpSalts,
) -> dict[str, str]:
    """All per-site files with default options, as {remote path: content}."""
    return {
        site.nginx_headers_path: render_nginx_headers(site),
        site.nginx_vhost_path: render_nginx_vhost(site),
        site.php_pool_path: render_php_pool(site, sizing),
        site.wp_config_path: render_wp_config(site, db_password=db_password, salts=salts),
    }


# --- container images (issue 15) ----------------------------------------------------------------------------

CONTAINER_WEB_ROOT = "/var/www/site/htdocs"
CONTAINER_PORT = 8080


def render_container_files(*, upload_max_mb: int = 64, memory_limit_mb: int = 256, max_children: int = 8,
                           page_cache_ttl_s: int = 3600, opcache_mb: int = 128) -> dict[str, str]:
    """The configuration files baked into pressfleet's WordPress images: nginx (the hosts' deny rules, the page
    cache, plain HTTP on 8080), PHP-FPM (one pool on 127.0.0.1:9000, logs to stderr), PHP's OPcache overrides
    (timestamps not checked: code only changes with a new image) and a wp-config.php that reads the environment."""
    from pressfleet.plan.sizing import OpcacheSettings

    opcache = OpcacheSettings(memory_consumption_mb=_int_in(opcache_mb, 32, 1024, "opcache_mb"),
                              interned_strings_buffer_mb=16, max_accelerated_files=16229, validate_timestamps=False,
                              budget_bytes=opcache_mb * 1024 * 1024)
    common = dict(upload_max_mb=_int_in(upload_max_mb, 1, 2048, "upload_max_mb"))
    return {
        "nginx.conf": _render("containers/nginx.conf.j2", port=CONTAINER_PORT, web_root=CONTAINER_WEB_ROOT,
                              page_cache_ttl_s=_int_in(page_cache_ttl_s, 1, 7 * 24 * 3600, "page_cache_ttl_s"),
                              **common),
        "php-fpm.conf": _render("containers/php-fpm.conf.j2", max_children=_int_in(max_children, 1, 256, "max_children"),
                                memory_limit_mb=_int_in(memory_limit_mb, 64, 4096, "memory_limit_mb"), **common),
        "90-pressfleet.ini": render_php_ini_overrides(opcache),
        "wp-config.php": _render("containers/wp-config.php.j2"),
    }
