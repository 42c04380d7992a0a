"""Pure update planning: what a site lacks, the waves a fleet update runs in, and whether an update broke a site.

No I/O: the inventory comes from WordPress itself (the bootstrap's `inventory` action), the catalogue from
`pressfleet.updates.catalog`, the checks from `tasks.updates`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from pressfleet.plan.wprelease import version_key
from pressfleet.updates.catalog import Catalogue, CatalogError, Release

_WAVE = re.compile(r"^(\d{1,6})(%?)$")


@dataclass(frozen=True)
class Installed:
    """One site's components as WordPress reports them."""

    core: str
    plugins: dict[str, str] = field(default_factory=dict)  # slug -> version
    themes: dict[str, str] = field(default_factory=dict)
    active_plugins: tuple[str, ...] = ()  # slugs
    theme: str = ""  # the active theme's slug (stylesheet)

    @classmethod
    def from_bootstrap(cls, data: dict) -> "Installed":
        return cls(core=str(data.get("core", "")),
                   plugins={k: str(v.get("version", "")) for k, v in (data.get("plugins") or {}).items()},
                   themes={k: str(v.get("version", "")) for k, v in (data.get("themes") or {}).items()},
                   active_plugins=tuple(k for k, v in (data.get("plugins") or {}).items() if v.get("active")),
                   theme=str(data.get("stylesheet", "")))


@dataclass(frozen=True)
class Pending:
    """An update a site lacks: the installed version and the catalogue's newest release."""

    kind: str
    slug: str
    installed: str
    release: Release

    @property
    def component(self) -> str:
        return self.release.component

    def describe(self) -> str:
        name = "WordPress" if self.kind == "core" else f"{self.kind} {self.slug}"
        return f"{name} {self.installed} -> {self.release.version}"


def _newer(release: Release | None, installed: str) -> bool:
    return release is not None and bool(installed) and version_key(release.version) > version_key(installed)


def outdated(installed: Installed, catalogue: Catalogue, kinds: Iterable[str] = ("core", "plugin", "theme")) -> list[Pending]:
    """What the site has that the catalogue has a newer release of (components the catalogue does not list,
    e.g. a plugin of the site's own, are left alone). Core first: plugins are checked against the new core."""
    wanted = set(kinds)
    out: list[Pending] = []
    if "core" in wanted and _newer(r := catalogue.newest("core", "wordpress"), installed.core):
        out.append(Pending("core", "wordpress", installed.core, r))
    for kind, have in (("plugin", installed.plugins), ("theme", installed.themes)):
        if kind not in wanted:
            continue
        for slug in sorted(have):
            if _newer(r := catalogue.newest(kind, slug), have[slug]):
                out.append(Pending(kind, slug, have[slug], r))
    return out


def parse_waves(spec: str) -> list[tuple[int, bool]]:
    """`1,25%,100%` -> [(1, False), (25, True), (100, True)]: each wave's cumulative reach, a count or a share.
    The last wave must reach every site (100%); the reaches must grow."""
    parts = [p.strip() for p in str(spec).split(",") if p.strip()]
    if not parts:
        raise CatalogError("waves: give at least one, e.g. 1,25%,100%")
    out = []
    for p in parts:
        m = _WAVE.match(p)
        if not m or int(m.group(1)) == 0 or (m.group(2) and int(m.group(1)) > 100):
            raise CatalogError(f"waves: {p!r} is neither a count of sites (1, 5) nor a share (25%, 100%)")
        out.append((int(m.group(1)), bool(m.group(2))))
    if out[-1] != (100, True):
        out.append((100, True))
    return out


def plan_waves(sites: Sequence[str], spec: str) -> list[list[str]]:
    """Split SITES (in order) into waves: each wave's reach is cumulative (`1,25%,100%` on 8 sites: 1, then up
    to 2, then the rest). Waves that would add no site are dropped; every site is in exactly one wave."""
    waves: list[list[str]] = []
    done = 0
    for reach, share in parse_waves(spec):
        upto = min(len(sites), math.ceil(len(sites) * reach / 100) if share else reach)
        if upto > done:
            waves.append(list(sites[done:upto]))
            done = upto
    return waves


@dataclass(frozen=True)
class PageCheck:
    url: str
    status: int
    seconds: float


@dataclass(frozen=True)
class SiteChecks:
    """What a site looked like: its pages' status and timing, its PHP error log's size and fatal count."""

    pages: tuple[PageCheck, ...]
    error_log_bytes: int
    fatals: int
    screenshot_difference: float | None = None  # after an update: the share of pixels that changed


def regressions(before: SiteChecks, after: SiteChecks, *, screenshot_threshold: float = 0.1) -> list[str]:
    """Why the update broke the site (empty: it did not): a page that answered 2xx no longer does, a new PHP
    fatal error in the site's log, or a home page that looks different beyond the threshold."""
    reasons = []
    was = {p.url: p.status for p in before.pages}
    for p in after.pages:
        old = was.get(p.url)
        if old is not None and 200 <= old < 300 and not 200 <= p.status < 300:
            reasons.append(f"{p.url} answered {p.status} (was {old})")
    if after.fatals > before.fatals:
        reasons.append(f"{after.fatals - before.fatals} new PHP fatal error(s) in the site's error log")
    if after.screenshot_difference is not None and after.screenshot_difference > screenshot_threshold:
        reasons.append(f"the home page looks different: {after.screenshot_difference:.1%} of its pixels changed "
                       f"(threshold {screenshot_threshold:.1%})")
    return reasons
