"""The WordPressSite block: one site as a person configures it in the Prefect UI."""

from __future__ import annotations

from typing import Literal, Optional

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from blocks.mail import SmtpRelay
from pressfleet.updates.policy import UpdatePolicy
from blocks.server import Server
from pressfleet import validate
from pressfleet.fleet.siteconfig import DEFAULT_CSP, MappedDomain, SiteConfig

OFFICIAL_RELEASE_URL = "https://wordpress.org/latest.tar.gz"


class WordPressSite(Block):
    """A WordPress site: its domain, admin, caching, TLS and hardening options.

    Provisioning turns a pristine Debian 12 server into this site. Credentials (database password,
    admin password, salts) are generated on the first run and kept as Secret blocks named
    `pressfleet-<name>-...`; they are never shown in logs.
    """

    _block_type_name = "WordPress Site"
    _block_type_slug = "wordpress-site"
    _description = "One WordPress site: domain, admin, caching, TLS and hardening options."
    model_config = ConfigDict(hide_input_in_errors=True)

    name: str = Field(..., title="Site name",
                      description="Short name: the site's system user, PHP pool, database and user (a-z, 0-9, _; starts with a letter).")
    domain: str = Field(..., title="Domain", description="The site's domain, e.g. www.example.com.")
    aliases: list[str] = Field(default_factory=list, title="Aliases", description="Other names, redirected to the domain.")
    tags: list[str] = Field(default_factory=list, title="Tags",
                            description="Labels that select the site in fleet operations (`--select tag:T`), e.g. shop, eu.")
    title: str = Field("My WordPress site", title="Site title", max_length=200,
                       description="The title WordPress is installed with. Only the first run sets it: afterwards the "
                                   "title is the site's own (Settings > General), and a re-run never changes it.")
    admin_user: str = Field("admin", title="Admin user", pattern=r"^[a-z][a-z0-9_.-]{2,59}$")
    admin_email: str = Field(..., title="Admin email")
    php_version: str = Field("8.2", title="PHP version", description="Debian 12 ships PHP 8.2.")
    page_cache: bool = Field(True, title="Page cache", description="nginx FastCGI cache for anonymous visitors, purged on publish.")
    page_cache_ttl_s: int = Field(3600, ge=1, le=604800, title="Page cache lifetime (seconds)")
    object_cache: bool = Field(True, title="Object cache", description="Redis object cache through pressfleet's drop-in.")
    tls_mode: Literal["self-signed", "provided", "acme"] = Field(
        "acme", title="TLS certificate",
        description="acme: Let's Encrypt (or the ACME server below) through certbot; provided: the certificate below; self-signed: for tests.")
    acme_server: Optional[str] = Field(None, title="ACME directory URL", description="Empty for Let's Encrypt.")
    acme_ca_bundle: Optional[str] = Field(
        None, title="ACME server's CA (PEM)",
        description="Only for a private ACME server whose HTTPS certificate is not publicly trusted (e.g. step-ca).")
    dns01_api_url: Optional[str] = Field(
        None, title="DNS-01 API URL",
        description="A subdomain network's wildcard certificate is validated over DNS-01: the DNS API that puts "
                    "certbot's token in the zone (pebble-challtestsrv's set-txt and clear-txt calls).")
    multisite: Optional[Literal["subdirectory", "subdomain"]] = Field(
        None, title="Network (multisite)",
        description="A WordPress network: subsites at /slug/ (subdirectory) or slug.<domain> (subdomain). An existing "
                    "single site converts on the next provisioning run; a network never becomes a single site again.")
    mapped_domains: list[MappedDomain] = Field(
        default_factory=list, title="Mapped domains",
        description="Subsites served under a domain of their own (set by `pressfleet network map-domain`, which "
                    "checks DNS, issues the certificate and proves the subsite serves there first).")
    certificate_pem: Optional[str] = Field(None, title="Certificate chain (PEM)", description="For TLS 'provided'.")
    certificate_key: Optional[SecretStr] = Field(None, title="Certificate private key (PEM)", description="For TLS 'provided'.")
    admin_allow: list[str] = Field(default_factory=list, title="wp-admin allow-list",
                                   description="Networks (CIDR) allowed to reach wp-admin and wp-login.php; empty = everyone.")
    allow_xmlrpc: bool = Field(False, title="Allow XML-RPC", description="Off: xmlrpc.php is denied (brute-force and DDoS vector).")
    uploads_only_writable: bool = Field(True, title="PHP may write only to uploads",
                                        description="Off: the site's user owns all files, so dashboard updates work.")
    php_open_basedir: bool = Field(False, title="Confine PHP to the site's folder (open_basedir)",
                                   description="Costs about 40 % on uncached pages (it defeats PHP's realpath cache).")
    csp: str = Field(DEFAULT_CSP, title="Content-Security-Policy")
    template: Optional[str] = Field(
        None, title="Site template", description="A Site Template block: its options apply to every field this site "
                                                 "does not override, its plugins and themes are installed.")
    overrides: list[str] = Field(default_factory=list, title="Own options",
                                 description="The options this site sets itself, whatever its template says.")
    update_policy: UpdatePolicy = Field(
        default_factory=UpdatePolicy, title="Update policy",
        description="What the scheduled auto-update run does with security, minor and major releases: install "
                    "them (auto), ask a person in the Prefect UI (approval), or leave them (never).")
    mail_relay: Optional[SmtpRelay] = Field(
        None, title="Mail relay", description="An SMTP Relay block: WordPress's mail goes there (msmtp on the host). "
                                              "Empty: PHP's mail() as Debian ships it (no MTA: mail is not sent).")
    server: Optional[Server] = Field(
        None, title="Server", description="The host this site runs on: nightly backups and restores reach it there.")
    release_url: str = Field(OFFICIAL_RELEASE_URL, title="WordPress release archive URL")
    release_sha256: Optional[str] = Field(
        None, title="Release sha256", pattern=r"^[0-9a-f]{64}$",
        description="Pin the archive's sha256. Empty: the .sha1 published beside the archive is checked instead. "
                    "A different pin (or URL) than the installed release's updates core on the next run.")
    update_core: bool = Field(
        False, title="Update core",
        description="Off: a re-run keeps the installed release even when an unpinned URL (latest.tar.gz) now "
                    "serves a newer one (the run notes it). On: install what the URL serves now and run "
                    "WordPress's database upgrade.")

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, value: list[str]) -> list[str]:
        from pressfleet.fleet.selection import tag

        return list(dict.fromkeys(tag(t) for t in value))

    @field_validator("template")
    @classmethod
    def _check_template(cls, value: Optional[str]) -> Optional[str]:
        return validate.block_name(value, "Site Template block") if value else None

    @field_validator("overrides")
    @classmethod
    def _check_overrides(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(cls.model_fields))
        if unknown:
            raise ValueError(f"overrides name options the site block does not have: {', '.join(unknown)}")
        return list(dict.fromkeys(value))

    @field_validator("acme_server")
    @classmethod
    def _check_acme_url(cls, value: Optional[str]) -> Optional[str]:
        return _release_url(value) if value else None

    @field_validator("dns01_api_url")
    @classmethod
    def _check_dns01_url(cls, value: Optional[str]) -> Optional[str]:
        if value and "?" in value:  # certbot runs its hooks through a shell: no query (`&`) in the hook's command
            raise ValueError("the DNS-01 API URL takes no query: scheme, host, port and path only")
        return _release_url(value) if value else None

    @field_validator("acme_ca_bundle", "certificate_pem")
    @classmethod
    def _check_pem(cls, value: Optional[str]) -> Optional[str]:
        if value and "-----BEGIN CERTIFICATE-----" not in value:
            raise ValueError("expected PEM certificate text (-----BEGIN CERTIFICATE-----)")
        return value or None

    @field_validator("release_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _release_url(value)

    @model_validator(mode="after")
    def _check_site(self) -> "WordPressSite":
        self.config()  # the domain, name, email, PHP version... are refused here, before anything runs
        return self

    def config(self) -> SiteConfig:
        """The validated, pure description of the site that renderers take."""
        return SiteConfig(
            name=self.name, domain=self.domain, aliases=tuple(self.aliases), admin_email=self.admin_email,
            php_version=self.php_version, page_cache=self.page_cache, page_cache_ttl_s=self.page_cache_ttl_s,
            object_cache=self.object_cache, tls_mode=self.tls_mode, admin_allow=tuple(self.admin_allow),
            allow_xmlrpc=self.allow_xmlrpc, uploads_only_writable=self.uploads_only_writable, csp=self.csp,
            php_open_basedir=self.php_open_basedir, mail_relay=self.mail_relay is not None,
            multisite=self.multisite, mapped_domains=tuple(self.mapped_domains),
        )


def _release_url(value: str) -> str:
    return validate.url(value)
