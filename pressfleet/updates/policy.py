"""Automatic update policy: which updates a site takes on its own, which wait for a person, which never come.

Each available release is one of three levels, relative to what the site runs:
- `security`: the catalogue marks the release as a security release, or it is a core release in the branch the
  site already runs (6.1.9 -> 6.1.10: WordPress ships its security fixes as such releases, and by default
  installs them itself);
- `major`: core in another branch (6.1 -> 6.8, WordPress's own meaning of a major release), or a plugin or theme
  whose first version number changes (4.x -> 5.0);
- `minor`: any other plugin or theme release.
A policy says per level `auto`, `approval` or `never`. The default: security releases automatically, minor and
major ones by approval. Pure functions: the catalogue and the inventory come from elsewhere.
"""

from __future__ import annotations

from typing import Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field

from pressfleet.plan.wprelease import version_key
from pressfleet.updates.catalog import Catalogue
from pressfleet.updates.plan import Installed, Pending

Level = Literal["security", "minor", "major"]
Action = Literal["auto", "approval", "never"]
LEVELS: tuple[Level, ...] = ("security", "minor", "major")


class UpdatePolicy(BaseModel):
    """What the scheduled auto-update run does with each level of release."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    security: Action = Field("auto", description="Security releases (and core releases in the site's branch).")
    minor: Action = Field("approval", description="Plugin and theme releases that keep their first version number.")
    major: Action = Field("approval", description="Core in a new branch; plugins and themes with a new first number.")

    def levels(self, action: Action) -> list[Level]:
        return [level for level in LEVELS if getattr(self, level) == action]


def _branch(version: str, parts: int) -> tuple:
    return version_key(version)[:parts]


def level_of(kind: str, installed: str, release) -> Level:
    """The level of RELEASE for a site that runs INSTALLED of it (KIND core, plugin or theme)."""
    if release.security:
        return "security"
    if kind == "core":
        return "security" if _branch(release.version, 2) == _branch(installed, 2) else "major"
    return "major" if _branch(release.version, 1) != _branch(installed, 1) else "minor"


def pending_at(installed: Installed, catalogue: Catalogue, levels: Iterable[Level],
               kinds: Iterable[str] = ("core", "plugin", "theme")) -> list[Pending]:
    """What the site lacks at LEVELS: per component the newest release newer than the installed one whose level
    is among LEVELS (6.1.9 with 6.1.10 and 6.8.12 listed and only `security` allowed: 6.1.10). Core first."""
    allowed, wanted = set(levels), set(kinds)
    have = [("core", "wordpress", installed.core)] if "core" in wanted else []
    for kind, found in (("plugin", installed.plugins), ("theme", installed.themes)):
        if kind in wanted:
            have += [(kind, slug, found[slug]) for slug in sorted(found)]
    out = []
    for kind, slug, version in have:
        if not version:
            continue
        newer = [r for r in catalogue.versions(kind, slug) if version_key(r.version) > version_key(version)
                 and level_of(kind, version, r) in allowed]
        if newer:
            out.append(Pending(kind, slug, version, max(newer, key=lambda r: version_key(r.version))))
    return out


def split(installed: Installed, catalogue: Catalogue, policy: UpdatePolicy,
          kinds: Iterable[str] = ("core", "plugin", "theme")) -> dict[Action, list[Pending]]:
    """Per action, each component's newest release at that action's levels: `auto` to install now, `approval`
    to ask a person about, `never` listed only. (A component with a security release and a new branch appears
    under both `auto` and `approval`: the security release goes in now, the new branch waits.)"""
    kinds = tuple(kinds)
    return {action: pending_at(installed, catalogue, policy.levels(action), kinds)
            for action in ("auto", "approval", "never")}
