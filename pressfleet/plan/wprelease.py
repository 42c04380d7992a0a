"""Which WordPress release a run installs: pure decisions from what the host recorded and what the block asks.

A re-run never changes core behind the person's back. The host records the release pressfleet installed
(`/var/www/SITE/.pressfleet-release`: URL, sha256, sha1, version, core entries). A release is installed
when there is none yet, when the block pins a different sha256 or names a different URL, or when it sets
`update_core`. An unpinned URL whose content moved on (`latest.tar.gz`) is reported as an available update
and left alone. An older release than the installed one is refused: its database was already upgraded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

_HEX = re.compile(r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")
_VERSION = re.compile(r"^[0-9A-Za-z.-]{1,40}$")


class ReleaseRefused(RuntimeError):
    """The requested release cannot be installed over the one in service (nothing was changed)."""


@dataclass(frozen=True)
class Recorded:
    """The release pressfleet recorded on the host (fields a legacy one-line record lacks are None)."""

    url: str | None = None
    sha256: str | None = None
    sha1: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class HostRelease:
    """What `install_wordpress_release.sh inspect` found."""

    recorded: Recorded | None
    installed: str | None  # the version core's version.php says (None: no core in the web root)
    published_sha1: str | None  # the checksum at URL.sha1 (only asked for an unpinned URL)
    maintenance: bool  # a maintenance file pressfleet left (a run cut off after swapping core)


@dataclass(frozen=True)
class Fetched:
    """The verified archive in the host's cache."""

    sha256: str
    sha1: str
    version: str
    db_version: int | None


@dataclass(frozen=True)
class Decision:
    action: Literal["keep", "install", "update", "available"]
    reason: str


def _hex(value: str | None) -> str | None:
    return value if value and _HEX.match(value) else None


def _key_values(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def parse_inspect(text: str) -> HostRelease:
    """Parse the inspect action's key=value lines (`recorded.*` are the host's record, verbatim)."""
    kv = _key_values(text)
    recorded = None
    rec = {k[len("recorded."):]: v for k, v in kv.items() if k.startswith("recorded.")}
    legacy = [ln[len("recorded."):] for ln in text.splitlines() if re.match(r"^recorded\.sha(1|256):[0-9a-f]+$", ln)]
    if rec:
        version = rec.get("version")
        recorded = Recorded(url=rec.get("url") or None, sha256=_hex(rec.get("sha256")), sha1=_hex(rec.get("sha1")),
                            version=version if version and _VERSION.match(version) else None)
    elif legacy:  # the one-line record of earlier pressfleet versions: "sha256:HEX" or "sha1:HEX"
        algo, _, digest = legacy[0].partition(":")
        recorded = Recorded(**{algo: _hex(digest)})
    installed = kv.get("installed")
    return HostRelease(
        recorded=recorded,
        installed=installed if installed and _VERSION.match(installed) else (installed and "unknown"),
        published_sha1=_hex(kv.get("published.sha1")),
        maintenance=kv.get("maintenance") == "pressfleet",
    )


def parse_fetched(text: str) -> Fetched:
    kv = _key_values(text)
    sha256, sha1, version = _hex(kv.get("sha256")), _hex(kv.get("sha1")), kv.get("version", "")
    if not (sha256 and sha1 and _VERSION.match(version)):
        raise ValueError(f"unexpected answer from the release fetch: {text.strip()[:200]!r}")
    db = kv.get("db_version", "")
    return Fetched(sha256=sha256, sha1=sha1, version=version, db_version=int(db) if db.isdigit() else None)


def version_key(version: str) -> tuple:
    """Order WordPress versions: 6.8.12 > 6.8.7 > 6.8 > 6.8-RC1 > 6.8-beta2 (a pre-release sorts before its release)."""
    main, _, pre = version.partition("-")
    nums = tuple(int(p) if p.isdigit() else 0 for p in main.split("."))
    nums = nums + (0,) * (4 - len(nums))
    return nums + ((1, "") if not pre else (0, pre.lower()))


def needs_fetch(host: HostRelease, pin: str | None) -> bool:
    """Whether the archive must be fetched (into the host's cache) to decide: not when the checksum the block
    pins, or the one published beside an unpinned URL, is the one recorded."""
    if host.installed is None or host.recorded is None:
        return True
    if pin:
        return pin != host.recorded.sha256
    return not (host.published_sha1 and host.published_sha1 == host.recorded.sha1)


def decide(host: HostRelease, *, url: str, pin: str | None, update_core: bool, fetched: Fetched | None) -> Decision:
    """What to do with the release the block asks for. FETCHED is None when `needs_fetch` said no."""
    if host.installed is None:
        return Decision("install", "no WordPress core in the web root yet")
    rec = host.recorded
    if fetched is None or (rec is not None and (fetched.sha256 == rec.sha256 or fetched.sha1 == rec.sha1)):
        return Decision("keep", "the installed release is the one asked for")
    asked = (update_core or rec is None or bool(pin)
             or (rec.url is not None and rec.url != url))
    installed = host.installed if host.installed != "unknown" else rec.version if rec else None
    if not asked:
        return Decision("available", f"WordPress {fetched.version} is available at {url} (installed: "
                                     f"{installed or 'unknown'}); set 'Update core' on the site block, or pin the "
                                     f"archive's sha256, to install it")
    if installed and version_key(fetched.version) < version_key(installed):
        raise ReleaseRefused(
            f"the release at {url} is WordPress {fetched.version}, older than the installed {installed}: pressfleet "
            f"does not downgrade core (the database was upgraded for {installed}); restore a backup instead")
    return Decision("update", f"core {installed or 'unknown'} -> {fetched.version}")
