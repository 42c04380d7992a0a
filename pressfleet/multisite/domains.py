"""Pure rules of a network's subsites and mapped domains: where a subsite lives, which registered domain a
certificate counts against (Let's Encrypt's limit is per registered domain), and what a mapping must not be."""

from __future__ import annotations

from dataclasses import dataclass

from pressfleet.fleet.siteconfig import MappedDomain, SiteConfig
from pressfleet.validate import InvalidInput, domain as check_domain, subsite_slug

# Let's Encrypt: 50 new certificates per registered domain per week (letsencrypt.org/docs/rate-limits).
CERTIFICATES_PER_WEEK = 50
WEEK_S = 7 * 24 * 3600


def registered_domain(name: str) -> str:
    """The registered domain NAME belongs to (one label under its public suffix): shop.example.co.uk ->
    example.co.uk. The Public Suffix List is publicsuffixlist's (a copy ships with it: nothing is fetched)."""
    from publicsuffixlist import PublicSuffixList

    name = check_domain(name)
    found = _psl(PublicSuffixList).privatesuffix(name)
    return found or name  # a name that is itself a public suffix (lab.test under an unknown TLD) counts alone


_PSL = None


def _psl(cls):
    global _PSL
    if _PSL is None:
        _PSL = cls()
    return _PSL


def rate_limit_name(name: str) -> str:
    """The Prefect concurrency limit (with slot decay) that counts certificates for NAME's registered domain."""
    return f"acme-certificates-{registered_domain(name)}"


@dataclass(frozen=True)
class Subsite:
    blog_id: int
    domain: str
    path: str
    title: str
    home: str
    main: bool

    @property
    def slug(self) -> str | None:
        """The subsite's slug under the network's own address (None for the main site)."""
        return None if self.main else (self.path.strip("/") or self.domain.split(".", 1)[0])

    @property
    def url(self) -> str:
        return f"https://{self.domain}{self.path}"


def parse_sites(rows: list[dict]) -> list[Subsite]:
    return [Subsite(int(r["blog_id"]), r["domain"], r["path"], r.get("title") or "", r.get("home") or "",
                    bool(r.get("main"))) for r in rows]


def find_subsite(site: SiteConfig, sites: list[Subsite], ref: str) -> Subsite:
    """The subsite REF names: its slug, its blog id, or its mapped domain. Refuses the main site and unknown names."""
    ref = str(ref).strip()
    mapped = {m.domain: m.slug for m in site.mapped_domains}
    slug = mapped.get(ref.lower(), ref)
    for s in sites:
        if s.main:
            continue
        if (ref.isdigit() and s.blog_id == int(ref)) or _slug_of(site, s) == slug:
            return s
    if any(s.main and (ref == "1" or ref == site.domain) for s in sites):
        raise InvalidInput(f"{ref!r} is the network's main site: it is the network itself")
    raise InvalidInput(f"network {site.name} has no subsite {ref!r} (its subsites: "
                       f"{', '.join(_slug_of(site, s) for s in sites if not s.main) or 'none'})")


def _slug_of(site: SiteConfig, s: Subsite) -> str:
    """A subsite's slug: kept in the block once its domain is mapped (WordPress then holds the new domain)."""
    for m in site.mapped_domains:
        if s.domain == m.domain:
            return m.slug
    if site.multisite == "subdomain":
        suffix = "." + site.domain
        return s.domain[: -len(suffix)] if s.domain.endswith(suffix) else s.domain
    return s.path.strip("/")


def slug_of(site: SiteConfig, s: Subsite) -> str:
    return _slug_of(site, s)


def new_subsite(site: SiteConfig, sites: list[Subsite], slug: str) -> tuple[str, str]:
    """(domain, path) of a new subsite SLUG; refuses a network that is not one, a bad slug or one in use."""
    if not site.multisite:
        raise InvalidInput(f"site {site.name} is not a network (its block's multisite is not set)")
    slug = subsite_slug(slug)
    if any(not s.main and _slug_of(site, s) == slug for s in sites) or any(m.slug == slug for m in site.mapped_domains):
        raise InvalidInput(f"network {site.name} has a subsite {slug!r} already")
    return site.subsite_address(slug)


def check_mapping(site: SiteConfig, slug: str, domain: str) -> MappedDomain:
    """The mapping of subsite SLUG to DOMAIN, refused (InvalidInput) when it cannot be one: not a network, a bad
    domain, the network's own name, a name already mapped, a subsite that has a mapped domain."""
    if not site.multisite:
        raise InvalidInput(f"site {site.name} is not a network (its block's multisite is not set)")
    mapping = MappedDomain(slug=slug, domain=check_domain(domain))
    try:
        SiteConfig(**{**site.model_dump(), "mapped_domains": (*site.mapped_domains, mapping)})
    except ValueError as exc:
        raise InvalidInput(f"{mapping.domain} cannot be mapped to subsite {slug}: "
                           f"{exc.errors()[0]['msg'] if hasattr(exc, 'errors') else exc}") from None
    return mapping
