"""The release catalogue: per component (core, each plugin, each theme) the releases pressfleet may install.

Every release names its archive's URL and sha256: a host installs nothing it cannot verify, so an entry without
a sha256 is refused when the catalogue is read, not when an update runs. Three sources, one interface
(`Catalogue`): entries a person edits in the `ReleaseCatalog` block, a catalogue file (JSON or YAML, the lab's
mirror writes one), and wordpress.org's update API for control machines that reach the internet (its archives
are fetched once here to compute the sha256, because wordpress.org publishes none for plugins and themes).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal

from pressfleet import validate
from pressfleet.plan.wprelease import version_key

Kind = Literal["core", "plugin", "theme"]
KINDS: tuple[str, ...] = ("core", "plugin", "theme")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
_VERSION = re.compile(r"^[0-9][0-9A-Za-z.-]{0,39}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class CatalogError(ValueError):
    """The catalogue (or a request against it) is not usable; nothing was changed."""


@dataclass(frozen=True)
class Release:
    kind: str
    slug: str  # "wordpress" for core; the plugin's or theme's folder name
    version: str
    url: str
    sha256: str
    security: bool = False  # a security release (the automatic policy installs these without approval)

    @property
    def component(self) -> str:
        return "core" if self.kind == "core" else f"{self.kind}:{self.slug}"


def release(entry: dict) -> Release:
    """One catalogue entry, checked: an unknown kind, a bad slug or version, or no sha256 is refused by name."""
    if not isinstance(entry, dict):
        raise CatalogError(f"a catalogue entry must be a mapping, not {type(entry).__name__}")
    kind = str(entry.get("kind", "")).strip()
    if kind not in KINDS:
        raise CatalogError(f"unknown component kind {kind!r} in the catalogue: use one of {', '.join(KINDS)}")
    slug = str(entry.get("slug") or ("wordpress" if kind == "core" else "")).strip()
    if not _SLUG.match(slug):
        raise CatalogError(f"catalogue entry {slug!r}: a slug is a-z, 0-9, '_' and '-' (the plugin's or theme's folder)")
    version = str(entry.get("version", "")).strip()
    what = f"{kind} {slug} {version or '(no version)'}"
    if not _VERSION.match(version):
        raise CatalogError(f"catalogue entry {what}: the version must look like 6.8.12 or 5.0.2")
    sha256 = str(entry.get("sha256") or "").strip().lower()
    if not _SHA256.match(sha256):
        raise CatalogError(f"catalogue entry {what} has no sha256: pressfleet installs only archives it can verify")
    try:
        url = validate.url(str(entry.get("url", "")))
    except validate.InvalidInput as exc:
        raise CatalogError(f"catalogue entry {what}: {exc}") from None
    return Release(kind=kind, slug=slug, version=version, url=url, sha256=sha256,
                   security=bool(entry.get("security", False)))


@dataclass(frozen=True)
class Catalogue:
    """Releases by component; `newest(kind, slug)` is what an update installs."""

    releases: tuple[Release, ...] = ()
    source: str = "entries"
    _by: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        by: dict[tuple[str, str], list[Release]] = {}
        seen: dict[tuple[str, str, str], Release] = {}
        for r in self.releases:
            key = (r.kind, r.slug, r.version)
            if key in seen and seen[key].sha256 != r.sha256:
                raise CatalogError(f"the catalogue lists {r.kind} {r.slug} {r.version} twice with different sha256")
            seen[key] = r
            by.setdefault((r.kind, r.slug), []).append(r)
        for key in by:
            by[key] = sorted({r.version: r for r in by[key]}.values(), key=lambda r: version_key(r.version))
        object.__setattr__(self, "_by", by)

    def components(self) -> list[tuple[str, str]]:
        return sorted(self._by)

    def versions(self, kind: str, slug: str) -> list[Release]:
        return list(self._by.get((kind, slug), []))

    def newest(self, kind: str, slug: str) -> Release | None:
        found = self._by.get((kind, slug))
        return found[-1] if found else None

    def find(self, kind: str, slug: str, version: str) -> Release:
        """The release named, or a refusal naming what the catalogue has."""
        if (kind, slug) not in self._by:
            known = ", ".join(f"{k}:{s}" for k, s in self.components()) or "nothing"
            raise CatalogError(f"the catalogue has no {kind} {slug!r} (it lists {known})")
        for r in self._by[(kind, slug)]:
            if r.version == version:
                return r
        have = ", ".join(r.version for r in self._by[(kind, slug)])
        raise CatalogError(f"the catalogue has no {kind} {slug} {version} (it lists {have})")


def from_entries(entries: Iterable[dict], source: str = "entries") -> Catalogue:
    return Catalogue(tuple(release(e) for e in entries), source=source)


def parse_file(text: str, name: str = "catalogue file") -> Catalogue:
    """A catalogue file: JSON or YAML, `{"releases": [...]}` or a bare list of entries."""
    import yaml

    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise CatalogError(f"{name} is not valid JSON or YAML: {str(exc).splitlines()[0]}") from None
    entries = data.get("releases") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise CatalogError(f"{name} must hold a list of releases under 'releases'")
    return from_entries(entries, source=name)


def load_file(path: str | Path) -> Catalogue:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise CatalogError(f"cannot read the catalogue file {p}: {exc.strerror}") from None
    return parse_file(text, str(p))


def dump(releases: Iterable[Release]) -> str:
    """A catalogue file's text (JSON), for the lab's mirror and for people starting one of their own."""
    rows = [{"kind": r.kind, "slug": r.slug, "version": r.version, "url": r.url, "sha256": r.sha256,
             **({"security": True} if r.security else {})} for r in releases]
    return json.dumps({"releases": rows}, indent=2) + "\n"


# ---------------------------------------------------------------------------------------------
# wordpress.org's update API (internet-connected control machines only)

WPORG_API = "https://api.wordpress.org"


def _sha256_of(get, url: str) -> str:
    digest = hashlib.sha256()
    for chunk in get(url):
        digest.update(chunk)
    return digest.hexdigest()


def from_wordpress_org(plugins: Iterable[str], themes: Iterable[str], *, api: str = WPORG_API, get_json=None,
                       get_bytes=None) -> Catalogue:
    """The newest core, plugin and theme releases wordpress.org offers, over HTTPS; each sha256 is computed
    here from the archive itself (wordpress.org publishes none for plugins and themes)."""
    import httpx

    def _json(url: str, params: dict | None = None):
        r = httpx.get(url, params=params, timeout=30, follow_redirects=True)
        r.raise_for_status()
        return r.json()

    def _bytes(url: str):
        with httpx.stream("GET", url, timeout=120, follow_redirects=True) as r:
            r.raise_for_status()
            yield from r.iter_bytes()

    get_json, get_bytes = get_json or _json, get_bytes or _bytes
    out: list[Release] = []
    core = get_json(f"{api}/core/version-check/1.7/")
    offer = next((o for o in core.get("offers", []) if o.get("response") in ("upgrade", "latest")), None)
    if offer:
        url = offer["download"].replace(".zip", ".tar.gz")
        out.append(release({"kind": "core", "version": offer["version"], "url": url,
                            "sha256": _sha256_of(get_bytes, url)}))
    for slug in plugins:
        info = get_json(f"{api}/plugins/info/1.2/", {"action": "plugin_information", "slug": slug})
        out.append(release({"kind": "plugin", "slug": slug, "version": info["version"], "url": info["download_link"],
                            "sha256": _sha256_of(get_bytes, info["download_link"])}))
    for slug in themes:
        info = get_json(f"{api}/themes/info/1.2/", {"action": "theme_information", "slug": slug})
        out.append(release({"kind": "theme", "slug": slug, "version": info["version"], "url": info["download_link"],
                            "sha256": _sha256_of(get_bytes, info["download_link"])}))
    return Catalogue(tuple(out), source="wordpress.org")

