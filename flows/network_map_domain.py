"""Map a domain to a network's subsite: the flow behind `pressfleet network map-domain`."""

from __future__ import annotations

import time
from typing import Optional

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from blocks.site import WordPressSite
from pressfleet.backup.targets import server_of
from pressfleet.fleet.changes import record_change
from pressfleet.fleet.locks import site_lock
from pressfleet.multisite.dns import check_points_here
from pressfleet.multisite.domains import check_mapping, find_subsite, slug_of
from tasks.common import run_connections
from tasks.network import list_subsites, map_subsite_domain


@flow(name="network-map-domain")
def network_map_domain(
    network: WordPressSite,
    subsite: str,
    domain: str,
    block_name: Optional[str] = None,
    resolver: Optional[str] = None,
) -> dict:
    """Serve a network's SUBSITE (its slug or blog id) at https://DOMAIN/, with WordPress's own domain mapping.

    Before anything changes: DOMAIN must be a valid name, not the network's own or already mapped, and resolve
    to the server and nothing else, asked through the control side's resolver (or RESOLVER, ADDRESS[:PORT]; the
    lab's is pebble-challtestsrv's DNS). Each certificate takes a slot of its registered domain's weekly limit
    (a Prefect rate limit, Let's Encrypt's 50 per week). Then: DOMAIN's own certificate (ACME over HTTP-01),
    the subsite's domain, home and siteurl, the nginx server for DOMAIN, and proof that https://DOMAIN/ answers
    200 with the subsite's title under that certificate while the old address redirects there. If any of it
    fails, every step is undone and the run says why. Done, the network's block (BLOCK_NAME, by default the saved
    block the run was given) records the mapping, so provisioning keeps it."""
    block_name = block_name or getattr(network, "_block_document_name", None)  # the saved block a run was given
    started = time.monotonic()
    cfg = network.config()
    server = server_of(network)
    with run_connections(), site_lock([cfg.name], "network-map-domain", hosts=[server], logger=get_run_logger()):
        sites = list_subsites(server, cfg)
        target = find_subsite(cfg, sites, subsite)
        slug = slug_of(cfg, target)
        mapping = check_mapping(cfg, slug, domain)
        found = check_points_here(mapping.domain, server.address, resolver)
        limit = None
        if cfg.tls_mode != "self-signed":
            from pressfleet.multisite.ratelimit import take_certificate_slot

            limit = take_certificate_slot(mapping.domain)
        mapped_site = network.model_copy(update={"mapped_domains": [*network.mapped_domains, mapping]})
        done = map_subsite_domain(server, cfg, mapped_site.config(), target, mapping.domain,
                                  acme_server=network.acme_server, acme_ca_bundle=network.acme_ca_bundle)
    if block_name:
        mapped_site.save(block_name, overwrite=True)
    seconds = round(time.monotonic() - started, 1)
    result = {"network": cfg.name, "subsite": slug, "blog_id": target.blog_id, "domain": mapping.domain,
              "url": f"https://{mapping.domain}/", "old_url": target.url, "resolves_to": found,
              "certificate": done["certificate"], "rate_limit": limit, "steps": done["steps"], "seconds": seconds,
              "saved_block": block_name}
    record_change(cfg.name, "network-map-domain", f"{target.url} -> https://{mapping.domain}/")
    create_markdown_artifact(
        key=f"network-map-domain-{cfg.name.replace('_', '-')}",
        markdown=f"# {mapping.domain} mapped to subsite {slug} of {cfg.domain}\n\n"
                 f"- resolves to {', '.join(found)} (this server)\n- {result['url']} answered 200 with the subsite's "
                 f"title under its own certificate; {target.url} redirects there\n"
                 + "".join(f"- {s}\n" for s in done["steps"]) + f"\n{seconds} s",
        description=f"network-map-domain {mapping.domain}")
    return result
