"""A site's identity: its name derived from its whole domain, the saved WordPressSite blocks, and the one
resolver every command uses to turn what a person typed (a domain, a site name or a block name) into a site.

The name comes from the whole domain (`www.example.com` -> `example_com`, `shop.a.test` -> `shop_a_test`),
so two domains never share a name, a secret set or a backup chain; a block that holds another domain is
never overwritten (`claim_site_name` refuses and names the holder).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from pressfleet import validate
from pressfleet.validate import InvalidInput

# The longest site name (validate.site_name: 31); a hashed name keeps this much of the domain.
_MAX = 31
_HASHED_HEAD = 18  # "s_" + head + "___" + 8 hex digits = 31


def site_name_for(domain: str) -> str:
    """The site name for a domain: stable, different for different domains, always a valid site name.

    A leading `www.` is dropped (`www.example.com` and `example.com` are one site). Dots become `_` and each
    run of hyphens becomes twice as many `_` (`a-b.test` -> `a__b_test`, `a.b.test` -> `a_b_test`), which
    keeps distinct domains apart. When that is not a valid site name (too long, starting with a digit,
    reserved), the name is `s_<start>___<8 hex digits of the domain's sha256>`: a run of three `_` never
    comes out of the first rule, so the two kinds never meet.
    """
    labels = validate.domain(domain).split(".")
    if labels[0] == "www" and len(labels) > 2:
        labels = labels[1:]
    whole = ".".join(labels)
    direct = re.sub(r"-+", lambda m: "__" * len(m.group()), whole).replace(".", "_")
    try:
        return validate.site_name(direct)
    except InvalidInput:
        pass
    digest = hashlib.sha256(whole.encode("ascii")).hexdigest()[:8]
    head = direct[:_HASHED_HEAD].rstrip("_")
    return validate.site_name(f"s_{head}___{digest}")


def site_block_name(site_name: str) -> str:
    """The block `pressfleet provision` saves a site as: `site-NAME` with `_` as `-` (site names have no `-`)."""
    return f"site-{validate.site_name(site_name).replace('_', '-')}"


@dataclass(frozen=True)
class SavedSite:
    """What a saved WordPressSite block says about the site's identity."""

    block: str
    name: str
    domain: str
    aliases: tuple[str, ...] = ()

    def holds(self, domain: str) -> bool:
        return domain == self.domain or domain in self.aliases


def saved_sites() -> list[SavedSite]:
    """Every saved (named) WordPressSite block's name, domain and aliases, read without loading secrets."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError

    with get_client(sync_client=True) as client:
        try:
            docs = client.read_block_documents_by_type(block_type_slug="wordpress-site", include_secrets=False)
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code == 404:  # the block type was never registered: no sites
                return []
            raise
    found = []
    for d in docs:
        data = d.data or {}
        if d.name and not d.is_anonymous and isinstance(data.get("name"), str):
            found.append(SavedSite(d.name, data["name"], str(data.get("domain", "")),
                                   tuple(str(a) for a in data.get("aliases") or ())))
    return sorted(found, key=lambda s: s.block)


def _normal_domain(text: str) -> str | None:
    try:
        return validate.domain(text)
    except InvalidInput:
        return None


def claim_site_name(domain: str, name: str | None, saved: list[SavedSite]) -> tuple[str, str]:
    """(site name, block name) for provisioning `domain`, given the saved sites; raises InvalidInput.

    A domain already saved keeps its site (and a `name` that differs is refused); a new domain gets `name` or
    the name derived from the domain, refused when a saved block for another domain holds that name.
    """
    domain = validate.domain(domain)
    if name is not None:
        name = validate.site_name(name)
    mine = [s for s in saved if s.holds(domain)]
    if mine:
        holder = mine[0]
        if name is not None and name != holder.name:
            raise InvalidInput(f"{domain} is already site {holder.name!r} (block {holder.block!r}); "
                               f"drop --name or use --name {holder.name}.")
        return holder.name, holder.block
    name = name or site_name_for(domain)
    block = site_block_name(name)
    for s in saved:
        if s.name == name or s.block == block:
            raise InvalidInput(f"the site name {name!r} is held by {s.domain} (block {s.block!r}): "
                               f"choose another with --name.")
    return name, block


def resolve_site_block(text: str, saved: list[SavedSite]) -> str:
    """The block name of the saved site `text` means: a block name, a site name or a domain (or alias).

    Raises InvalidInput with one sentence when no saved site matches, or when a domain is saved twice."""
    for s in saved:
        if s.block == text:
            return s.block
    by_name = [s for s in saved if s.name == text]
    if len(by_name) > 1:  # the block `pressfleet provision` would have saved wins
        by_name = [s for s in by_name if s.block == f"site-{text.replace('_', '-')}"] or by_name
    if len(by_name) == 1:
        return by_name[0].block
    domain = _normal_domain(text)
    if domain is not None:
        held = [s for s in saved if s.holds(domain)]
        if len(held) == 1:
            return held[0].block
        if len(held) > 1:
            raise InvalidInput(f"{domain} is held by more than one site block "
                               f"({', '.join(s.block for s in held)}): name the block.")
        if domain.startswith("www.") and len(domain.split(".")) > 2:
            return resolve_site_block(domain[4:], saved)
    if len(by_name) > 1:
        raise InvalidInput(f"more than one site block is named {text!r} "
                           f"({', '.join(s.block for s in by_name)}): name the block.")
    raise InvalidInput(f"no saved WordPress site is {text!r} (as a domain, a site name or a block name).")
