"""Releases of a site's plugin or theme on its host (pure): naming, what a listing says, which to keep and
where a rollback goes. The host keeps each release in its own root-owned folder; `current` names the live one."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

KINDS = {"plugin": "plugins", "theme": "themes"}
RELEASE_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{12}(?:-[0-9]+)?$")
DEFAULT_KEEP = 5


class ReleaseError(RuntimeError):
    """A release step that cannot go on (one sentence; the running release is untouched)."""


def release_id(commit: str, now: datetime | None = None, taken: tuple[str, ...] = ()) -> str:
    """`YYYYMMDDTHHMMSSZ-<12 hex of the commit>`: sorts by time, says what it holds; `-N` when that name is taken."""
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):
        raise ReleaseError(f"{commit!r} is not a full git commit id")
    stamp = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name, n = f"{stamp}-{commit[:12]}", 1
    while name in taken:
        n += 1
        name = f"{stamp}-{commit[:12]}-{n}"
    return name


def commit_of(rid: str) -> str:
    return rid.split("-")[1]


@dataclass(frozen=True)
class OnHost:
    """What the host holds of one component: its releases oldest first, the current one, and what the
    wp-content entry is (`absent`, `folder` (not ours), or the link's target)."""

    kind: str
    slug: str
    releases: tuple[str, ...] = ()
    current: str | None = None
    link: str = "absent"
    extra: tuple[str, ...] = field(default=())

    @property
    def previous(self) -> str | None:
        """The release before the current one (where a rollback goes), or None."""
        if self.current not in self.releases:
            return None
        i = self.releases.index(self.current)
        return self.releases[i - 1] if i > 0 else None


def parse_listing(kind: str, slug: str, text: str) -> OnHost:
    """The host script's `list` output: `current ID|-`, `link TARGET|absent|folder`, `release ID` lines."""
    current, link, releases = None, "absent", []
    for line in text.splitlines():
        word, _, rest = line.partition(" ")
        if word == "current" and rest != "-":
            current = rest
        elif word == "link":
            link = rest
        elif word == "release" and RELEASE_ID.fullmatch(rest):
            releases.append(rest)
    return OnHost(kind, slug, tuple(sorted(releases)), current, link)


def to_prune(releases: tuple[str, ...] | list[str], current: str | None, keep: int = DEFAULT_KEEP) -> list[str]:
    """The releases beyond the newest KEEP (the current one always stays, and counts among them)."""
    if keep < 1:
        raise ReleaseError("keep at least 1 release (the current one)")
    ordered = sorted(releases)
    kept = set(ordered[-keep:])
    if current in ordered and current not in kept:
        kept.discard(min(kept))  # the current one is older than KEEP newer ones (after a rollback): it stays
        kept.add(current)
    return [r for r in ordered if r not in kept]


def rollback_target(host: OnHost, to: str | None = None) -> str:
    """The release a rollback switches to: TO if given (it must be on the host), else the one before current."""
    if host.current is None:
        raise ReleaseError(f"{host.kind} {host.slug} has no current release on the host: nothing to roll back")
    if to is not None:
        if to not in host.releases:
            raise ReleaseError(f"release {to} of {host.kind} {host.slug} is not on the host "
                               f"(it has {', '.join(host.releases) or 'none'})")
        if to == host.current:
            raise ReleaseError(f"release {to} is already the current one")
        return to
    if host.previous is None:
        raise ReleaseError(f"{host.kind} {host.slug} has no release before {host.current}: nothing to roll back to")
    return host.previous
