"""The pure description of one WordPress site: what the renderers in `pressfleet.render.configs` take.

A `SiteConfig` holds only validated values (see `pressfleet.validate`), is immutable, and derives every
path and name that the host needs from the site name, so that two sites can never collide and no path is
ever typed twice. Secrets (database password, WordPress salts) are not part of it: they are generated once
per site, kept in a secret block, and passed to `render_wp_config` separately.
"""

from __future__ import annotations

import secrets
import string
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pressfleet.validate import Cidr, Domain, Email, HeaderValue, PhpVersion, Secret, SiteName, SubsiteSlug

__all__ = ["SiteConfig", "MappedDomain", "NetworkKind", "WpSalts", "TlsMode", "DEFAULT_CSP", "generate_secret", "WWW_ROOT"]

TlsMode = Literal["self-signed", "provided", "acme"]
NetworkKind = Literal["subdirectory", "subdomain"]

WWW_ROOT = "/var/www"

# Safe for every WordPress admin screen (which relies on inline scripts): it blocks plugins (<object>),
# <base> hijacking and framing by other origins, and upgrades stray http:// sub-resources.
DEFAULT_CSP = "base-uri 'self'; object-src 'none'; frame-ancestors 'self'; upgrade-insecure-requests"

# Characters of `pressfleet.validate.secret` minus the ones that are awkward to type or read.
_SECRET_ALPHABET = string.ascii_letters + string.digits + "._~+=:,@%^*!()[]{}<>|?/-"


def generate_secret(length: int = 64) -> str:
    """A random secret from the quote-free alphabet `pressfleet.validate.secret` accepts."""
    if not 16 <= length <= 128:
        raise ValueError("a secret must be 16-128 characters long")
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(length))


class WpSalts(BaseModel):
    """WordPress's eight keys and salts (wp-config.php), passed to `render_wp_config`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    auth_key: Secret
    secure_auth_key: Secret
    logged_in_key: Secret
    nonce_key: Secret
    auth_salt: Secret
    secure_auth_salt: Secret
    logged_in_salt: Secret
    nonce_salt: Secret

    @classmethod
    def generate(cls) -> WpSalts:
        return cls(**{name: generate_secret(64) for name in cls.model_fields})

    def as_constants(self) -> dict[str, str]:
        """`{"AUTH_KEY": ..., ...}` in WordPress's order."""
        return {name.upper(): getattr(self, name) for name in type(self).model_fields}


class MappedDomain(BaseModel):
    """A network subsite served under a domain of its own (WordPress's own domain mapping: the subsite's row in
    wp_blogs carries the domain). Its old address (`/slug/` or `slug.<network domain>`) redirects there."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    slug: SubsiteSlug
    domain: Domain


class SiteConfig(BaseModel):
    """One WordPress site on one host."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: SiteName = Field(description="unix user and group, PHP-FPM pool, MariaDB database and user")
    domain: Domain
    aliases: tuple[Domain, ...] = Field(default=(), description="other names, redirected to `domain`")
    admin_email: Email
    php_version: PhpVersion = "8.2"

    # mail: PHP's mail() goes through msmtp to the site's SMTP relay (its settings are in the msmtp file)
    mail_relay: bool = Field(default=False, description="WordPress mail through the site's SMTP relay (msmtp)")

    # caching
    page_cache: bool = Field(default=True, description="nginx fastcgi_cache for anonymous GET/HEAD")
    page_cache_ttl_s: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    object_cache: bool = Field(default=True, description="Redis object cache (WP_REDIS_*)")
    redis_database: int = Field(default=0, ge=0, le=1023, description="this site's Redis database index")

    # access
    admin_allow: tuple[Cidr, ...] = Field(
        default=(), description="networks allowed to reach wp-admin and wp-login.php; empty = everyone"
    )
    allow_xmlrpc: bool = Field(default=False, description="xmlrpc.php is denied unless this is set (Jetpack)")

    # TLS and headers
    tls_mode: TlsMode = "acme"
    hsts: bool = True
    hsts_include_subdomains: bool = False
    hsts_preload: bool = False
    csp: HeaderValue = DEFAULT_CSP

    # PHP and files
    uploads_only_writable: bool = Field(
        default=True, description="PHP may write only to wp-content/uploads (no dashboard installs/updates)"
    )
    upload_max_mb: int = Field(default=64, ge=1, le=2048)
    php_memory_limit_mb: int = Field(default=256, ge=64, le=4096)
    disable_shell_functions: bool = Field(default=True, description="exec, system, proc_open... disabled")
    php_open_basedir: bool = Field(
        default=False,
        description="confine PHP's file access to the site's folder (open_basedir); off by default: it defeats "
        "PHP's realpath cache and made uncached pages 40 % slower here (100 ms against 60 ms), while the site's "
        "own user and file modes already keep it out of other sites",
    )
    system_cron: bool = Field(default=True, description="DISABLE_WP_CRON: a timer runs wp-cron instead")
    table_prefix: str = Field(default="wp_", pattern=r"^[a-z][a-z0-9]{0,14}_$")

    # multisite
    multisite: NetworkKind | None = Field(
        default=None, description="a WordPress network: subsites at /slug/ (subdirectory) or slug.<domain> (subdomain)")
    mapped_domains: tuple[MappedDomain, ...] = Field(
        default=(), description="subsites served under their own domains, each with its own certificate")

    @model_validator(mode="after")
    def _coherent(self) -> SiteConfig:
        if self.domain in self.aliases:
            raise ValueError(f"{self.domain} is the site's domain and cannot also be an alias")
        if len(set(self.aliases)) != len(self.aliases):
            raise ValueError("aliases must not repeat")
        if self.hsts_preload and not (self.hsts and self.hsts_include_subdomains):
            raise ValueError("HSTS preload requires hsts and hsts_include_subdomains")
        if self.mapped_domains and not self.multisite:
            raise ValueError("only a network (multisite) maps domains to subsites")
        mapped = [m.domain for m in self.mapped_domains]
        if len(set(mapped)) != len(mapped) or len({m.slug for m in self.mapped_domains}) != len(mapped):
            raise ValueError("a domain is mapped once, and a subsite has one mapped domain")
        taken = set(mapped) & {self.domain, *self.aliases}
        if taken:
            raise ValueError(f"{sorted(taken)[0]} is the network's own domain (or an alias) and cannot be mapped")
        if self.multisite == "subdomain" and any(d.endswith("." + self.domain) for d in mapped):
            raise ValueError("a subdomain of the network's domain is a subsite's own address already: map another domain")
        if len(set(self.admin_allow)) != len(self.admin_allow):
            raise ValueError("admin_allow must not repeat a network")
        return self

    # --- derived names and paths (one place) -------------------------------------------------------------

    @property
    def user(self) -> str:
        return self.name

    @property
    def group(self) -> str:
        return self.name

    @property
    def db_name(self) -> str:
        return self.name

    @property
    def db_user(self) -> str:
        return self.name

    @property
    def home(self) -> str:
        """The site's directory; wp-config.php lives here, one level above the web root."""
        return f"{WWW_ROOT}/{self.name}"

    @property
    def web_root(self) -> str:
        return f"{self.home}/htdocs"

    @property
    def uploads_dir(self) -> str:
        return f"{self.web_root}/wp-content/uploads"

    @property
    def tmp_dir(self) -> str:
        return f"{self.home}/tmp"

    @property
    def msmtp_config_path(self) -> str:
        """The site's msmtp settings (relay and its password), the site's user's alone (0600): no other site
        reads them, and PHP's mail() runs msmtp as that user."""
        return f"/etc/pressfleet/msmtp/{self.name}.conf"

    @property
    def msmtp_password_path(self) -> str:
        """The relay's password, alone in a file of the same owner and mode (msmtp's `passwordeval` reads it)."""
        return f"/etc/pressfleet/msmtp/{self.name}.password"

    @property
    def wp_config_path(self) -> str:
        return f"{self.home}/wp-config.php"

    @property
    def php_socket(self) -> str:
        return f"/run/php/php{self.php_version}-fpm-{self.name}.sock"

    @property
    def php_pool_path(self) -> str:
        return f"/etc/php/{self.php_version}/fpm/pool.d/{self.name}.conf"

    @property
    def nginx_vhost_path(self) -> str:
        return f"/etc/nginx/sites-available/{self.name}.conf"

    @property
    def nginx_headers_path(self) -> str:
        return f"/etc/nginx/snippets/pressfleet-headers-{self.name}.conf"

    @property
    def server_names(self) -> tuple[str, ...]:
        """Every name the site answers to by name: its domain, aliases and mapped domains (not the wildcard)."""
        return (self.domain, *self.aliases, *(m.domain for m in self.mapped_domains))

    @property
    def network_names(self) -> tuple[str, ...]:
        """The names of the main HTTPS server: the domain, and `*.domain` on a subdomain network."""
        return (self.domain, f"*.{self.domain}") if self.multisite == "subdomain" else (self.domain,)

    def subsite_address(self, slug: str) -> tuple[str, str]:
        """(domain, path) of subsite SLUG before any mapping, as WordPress's wp_blogs row holds it."""
        if self.multisite == "subdomain":
            return f"{slug}.{self.domain}", "/"
        return self.domain, f"/{slug}/"

    def mapped_cert_paths(self, domain: str) -> tuple[str, str]:
        """(certificate chain, key) of a mapped domain: certbot's (ACME; also when the network's own certificate
        is provided) or a self-signed pair for tests."""
        if self.tls_mode == "self-signed":
            base = f"/etc/ssl/pressfleet/{self.name}/mapped/{domain}"
        else:
            base = f"/etc/letsencrypt/live/{domain}"
        return f"{base}/fullchain.pem", f"{base}/privkey.pem"

    @property
    def tls_cert_path(self) -> str:
        if self.tls_mode == "acme":
            return f"/etc/letsencrypt/live/{self.domain}/fullchain.pem"
        return f"/etc/ssl/pressfleet/{self.name}/fullchain.pem"

    @property
    def tls_key_path(self) -> str:
        if self.tls_mode == "acme":
            return f"/etc/letsencrypt/live/{self.domain}/privkey.pem"
        return f"/etc/ssl/pressfleet/{self.name}/privkey.pem"

    @property
    def hsts_value(self) -> str:
        value = "max-age=31536000"
        if self.hsts_include_subdomains:
            value += "; includeSubDomains"
        if self.hsts_preload:
            value += "; preload"
        return value
