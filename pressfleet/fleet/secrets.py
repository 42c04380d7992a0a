"""A site's generated credentials, kept as Prefect Secret blocks (never logged, never on a command line).

Created on the first provisioning run and read back on every later one, so a re-run changes nothing.
Block names: `pressfleet-<site>-db-password`, `pressfleet-<site>-admin-password`, `pressfleet-<site>-salts`,
`pressfleet-<site>-redis-password` (the site's Redis ACL user; Redis on the host holds only its SHA-256).
"""

from __future__ import annotations

from dataclasses import dataclass

from pressfleet.fleet.siteconfig import WpSalts, generate_secret

# Every Secret block a site has (`secret_block_name(site, kind)`): site removal deletes them all.
# (`rotation` exists only while a secret rotation is under way: the new values, saved before the host changes.)
SECRET_KINDS: tuple[str, ...] = ("db-password", "admin-password", "salts", "redis-password", "rotation")


@dataclass(frozen=True)
class SiteSecrets:
    db_password: str
    admin_password: str
    salts: WpSalts
    redis_password: str

    def __repr__(self) -> str:
        return "SiteSecrets(********)"


def secret_block_name(site: str, what: str) -> str:
    return f"pressfleet-{site.replace('_', '-')}-{what}"


def _load_or_create(name: str, make):
    from prefect.blocks.system import Secret

    try:
        return Secret.load(name).get()
    except ValueError:  # no such block yet
        value = make()
        Secret(value=value).save(name)
        return value


def site_secrets(site: str) -> SiteSecrets:
    """The site's credentials: read from their Secret blocks, created the first time."""
    db = _load_or_create(secret_block_name(site, "db-password"), lambda: generate_secret(40))
    admin = _load_or_create(secret_block_name(site, "admin-password"), lambda: generate_secret(24))
    salts = _load_or_create(secret_block_name(site, "salts"), lambda: WpSalts.generate().model_dump())
    redis = _load_or_create(secret_block_name(site, "redis-password"), lambda: generate_secret(40))
    return SiteSecrets(db_password=str(db), admin_password=str(admin), salts=WpSalts(**salts), redis_password=str(redis))
