"""Which sites a fleet operation covers: `--select` and `pressfleet update`'s arguments, decided purely.

A selector is a site (its block name, site name or domain), `tag:T`, `server:S` (the Server block's name or its
address), `template:T`, or `all`. Sites that several selectors match are taken once, in the order of the fleet
(block names). A selector that matches nothing is refused by name, so a typo never runs on an empty fleet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from pressfleet.fleet.sites import SavedSite, resolve_site_block
from pressfleet.validate import InvalidInput

_TAG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


@dataclass(frozen=True)
class Candidate(SavedSite):
    """A saved site as selection sees it: its identity, and what a selector may name it by."""

    tags: tuple[str, ...] = ()
    server: str = ""  # the Server block's name ("" when unknown)
    address: str = ""
    template: str = ""


def tag(value: str) -> str:
    text = str(value).strip().lower()
    if not _TAG.match(text):
        raise InvalidInput(f"tag {value!r}: a-z, 0-9, '.', '_' and '-', starting with a letter or digit, at most 63")
    return text


def select(candidates: Sequence[Candidate], selectors: Iterable[str]) -> list[Candidate]:
    """The candidates the selectors name (see the module's docstring); refuses an empty selection."""
    chosen: dict[str, Candidate] = {}
    wanted = [str(s).strip() for s in selectors if str(s).strip()]
    if not wanted:
        raise InvalidInput("select sites: name them, or use tag:T, server:S, template:T or all")
    by_block = {c.block: c for c in candidates}
    for sel in wanted:
        kind, sep, value = sel.partition(":")
        if sel == "all":
            found = list(candidates)
        elif sep and kind == "tag":
            t = tag(value)
            found = [c for c in candidates if t in c.tags]
        elif sep and kind == "server":
            found = [c for c in candidates if value and value in (c.server, c.address)]
        elif sep and kind == "template":
            found = [c for c in candidates if value and c.template == value]
        elif sep and kind not in ("http", "https"):
            raise InvalidInput(f"unknown selector {sel!r}: use a site, tag:T, server:S, template:T or all")
        else:
            block = resolve_site_block(sel, [SavedSite(c.block, c.name, c.domain, c.aliases) for c in candidates])
            found = [by_block[block]]
        if not found:
            raise InvalidInput(f"{sel!r} matches no saved site: nothing was run")
        for c in found:
            chosen.setdefault(c.block, c)
    return sorted(chosen.values(), key=lambda c: c.block)


def saved_candidates() -> list[tuple[Candidate, object]]:
    """Every saved WordPress Site block that names its server, as (Candidate, the loaded block)."""
    from blocks.site import WordPressSite
    from pressfleet.fleet.saved import saved_block_names

    out = []
    for block in saved_block_names("wordpress-site"):
        site = WordPressSite.load(block)
        if site.server is None:
            continue
        out.append((Candidate(block=block, name=site.name, domain=site.domain, aliases=tuple(site.aliases),
                              tags=tuple(site.tags), server=getattr(site.server, "_block_document_name", None) or "",
                              address=site.server.address, template=getattr(site, "template", None) or ""), site))
    return out


def select_saved(selectors: Iterable[str]) -> list:
    """The saved WordPress Site blocks the selectors name (refused when one matches nothing)."""
    pairs = saved_candidates()
    blocks = {c.block: site for c, site in pairs}
    return [blocks[c.block] for c in select([c for c, _ in pairs], selectors)]
