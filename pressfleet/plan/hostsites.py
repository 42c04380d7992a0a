"""Which sites a host carries, for the files every site shares (fail2ban's jails, PHP-FPM's `process.max`,
the sizing of every pool).

Host-wide files are rendered from every site on the host, never from the one being provisioned alone. The
sites are the saved WordPressSite blocks naming this host, plus the site being provisioned, checked against
what is on the host: its PHP-FPM pools and the record pressfleet writes per site
(`/etc/pressfleet/sites/<site>.json`, the site's non-secret settings). Pure functions: the flow reads the
blocks and the host, these decide and say why.

- the site being provisioned is always rendered, from its block;
- a saved block whose site is on the host is rendered from the block (what the person configured);
- a saved block whose site is not on the host yet is not rendered (it is provisioned when it is run), and noted;
- a site on the host with no saved block is rendered from its record and noted; with no record either (a
  pool alone), it keeps its pool as it is and is still protected by name (its nginx logs go to fail2ban), and
  noted. No site on the host is ever silently dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from pressfleet.fleet.siteconfig import SiteConfig

SITE_RECORD_DIR = "/etc/pressfleet/sites"
# Pool files pressfleet does not own per site (its global file, Debian's stock pool).
_NOT_SITE_POOLS = frozenset({"00-pressfleet-global", "www"})
_SITE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def site_record_path(site_name: str) -> str:
    return f"{SITE_RECORD_DIR}/{site_name}.json"


def site_record(site: SiteConfig) -> bytes:
    """The per-site record pressfleet keeps on the host: the site's settings, no secret (one JSON line)."""
    return (json.dumps(site.model_dump(mode="json"), sort_keys=True, separators=(",", ":")) + "\n").encode()


@dataclass(frozen=True)
class HostInventory:
    """What the host says about its sites: pool names with their pm.max_children, and the sites' records."""

    pools: dict[str, int | None] = field(default_factory=dict)
    records: dict[str, SiteConfig] = field(default_factory=dict)
    process_max: int | None = None
    notes: tuple[str, ...] = ()

    @property
    def names(self) -> set[str]:
        return set(self.pools) | set(self.records)


def parse_inventory(text: str) -> HostInventory:
    """Read the inventory script's output (lines `pool NAME CHILDREN`, `record NAME JSON`, `process_max N`).

    Names that are not site names and records that do not validate are left out with a note (a record is
    a hint, not an instruction: a site whose record is unreadable still counts by its pool).
    """
    pools: dict[str, int | None] = {}
    records: dict[str, SiteConfig] = {}
    process_max = None
    notes: list[str] = []
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "process_max":
            process_max = int(rest) if rest.strip().isdigit() else None
            continue
        name, _, value = rest.partition(" ")
        if kind not in ("pool", "record"):
            continue
        if kind == "pool" and name in _NOT_SITE_POOLS:
            continue
        if not _SITE_NAME.match(name):
            notes.append(f"ignored a {kind} file whose name is not a site name: {name[:40]!r}")
            continue
        if kind == "pool":
            pools[name] = int(value) if value.strip().isdigit() else None
            continue
        try:
            record = SiteConfig.model_validate_json(value)
        except (ValidationError, ValueError):
            notes.append(f"the record of site {name} on the host is unreadable: its pool alone counts")
            continue
        if record.name != name:
            notes.append(f"the record {site_record_path(name)} names another site ({record.name}): ignored")
            continue
        records[name] = record
    return HostInventory(pools, records, process_max, tuple(notes))


@dataclass(frozen=True)
class HostSites:
    """The sites to render host-wide files from, and what the run should say about them."""

    sites: tuple[SiteConfig, ...]
    pool_only: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        """How many pools share the PHP budget (rendered sites and pools kept as they are)."""
        return len(self.sites) + len(self.pool_only)

    @property
    def protected_names(self) -> list[str]:
        """Every site whose nginx logs fail2ban watches, sorted."""
        return sorted([s.name for s in self.sites] + list(self.pool_only))


def host_sites(current: SiteConfig, saved: Sequence[SiteConfig], inventory: HostInventory) -> HostSites:
    """Every site on the host (the rules are in the module docstring), sorted by name, `current` among them."""
    on_host = inventory.names
    chosen: dict[str, SiteConfig] = {current.name: current}
    notes: list[str] = list(inventory.notes)
    saved_by_name: dict[str, SiteConfig] = {}
    for s in saved:
        saved_by_name.setdefault(s.name, s)
    for name, s in sorted(saved_by_name.items()):
        if name == current.name:
            continue
        if name in on_host:
            chosen[name] = s
        else:
            notes.append(f"site {name} ({s.domain}) names this host but is not on it yet: not rendered")
    pool_only = []
    for name in sorted(on_host - set(chosen)):
        if name in inventory.records:
            chosen[name] = inventory.records[name]
            notes.append(f"site {name} is on the host with no saved block: kept from its record "
                         f"{site_record_path(name)} (save its block to manage it)")
        else:
            pool_only.append(name)
            notes.append(f"site {name} has a PHP pool on the host but no saved block or record: its pool is "
                         "left as it is, its nginx logs stay watched by fail2ban")
    return HostSites(tuple(chosen[n] for n in sorted(chosen)), tuple(pool_only), tuple(notes))


def resize_notes(before: dict[str, int | None], after: dict[str, int], process_max_before: int | None,
                 process_max_after: int) -> list[str]:
    """What the sizing changed, in one line: "re-sized pools: one 6 -> 3 workers, two new (3 workers); ..."."""
    parts = []
    for name in sorted(after):
        old, new = before.get(name), after[name]
        if name not in before:
            parts.append(f"{name} new ({new} workers)")
        elif old != new:
            parts.append(f"{name} {old if old is not None else '?'} -> {new} workers")
    lines = []
    if parts:
        lines.append("re-sized pools: " + ", ".join(parts))
    if process_max_before != process_max_after:
        lines.append(f"process.max {process_max_before if process_max_before is not None else '(none)'} -> "
                     f"{process_max_after} (sum over {len(after)} pool{'s' if len(after) != 1 else ''})")
    return lines


def names(sites: Iterable[SiteConfig]) -> list[str]:
    return [s.name for s in sites]
