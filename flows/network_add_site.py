"""Add a subsite to a WordPress network: the flow behind `pressfleet network add-site`."""

from __future__ import annotations

from typing import Optional

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from blocks.site import WordPressSite
from pressfleet.backup.targets import server_of
from pressfleet.fleet.changes import record_change
from pressfleet.fleet.locks import site_lock
from pressfleet.multisite.domains import new_subsite
from pressfleet.validate import InvalidInput, email as check_email, subsite_slug
from tasks.common import run_connections
from tasks.network import create_subsite, list_subsites


@flow(name="network-add-site")
def network_add_site(
    network: WordPressSite,
    slug: str,
    title: Optional[str] = None,
    admin_email: Optional[str] = None,
    domain: Optional[str] = None,
    block_name: Optional[str] = None,
    resolver: Optional[str] = None,
) -> dict:
    """Create subsite SLUG in NETWORK with WordPress's own wp_insert_site(): at https://NETWORK/SLUG/ on a
    subdirectory network, https://SLUG.NETWORK/ on a subdomain one, titled TITLE (default: the slug), with
    ADMIN_EMAIL's user as its administrator (made when there is none, and mailed WordPress's set-your-password link
    once the subsite is proved; default: the network's admin). The run proves the subsite answers 200 with its
    title over HTTPS, or deletes it again (and the administrator it made). DOMAIN then maps it to a domain of its own (the network-map-domain flow, with its checks).

    A slug in use, a bad slug or e-mail, or a site that is not a network is refused before anything runs."""
    block_name = block_name or getattr(network, "_block_document_name", None)  # the saved block a run was given
    cfg = network.config()
    slug = subsite_slug(slug)
    email = check_email(admin_email or network.admin_email)
    if not cfg.multisite:
        raise InvalidInput(f"site {cfg.name} is not a network (its block's multisite is not set)")
    server = server_of(network)
    with run_connections(), site_lock([cfg.name], "network-add-site", hosts=[server], logger=get_run_logger()):
        existing = list_subsites(server, cfg)
        host, path = new_subsite(cfg, existing, slug)
        made = create_subsite(server, cfg, slug, title or slug, email)
    site = made["site"]
    result = {"network": cfg.name, "slug": slug, "blog_id": site["blog_id"], "url": f"https://{host}{path}",
              "title": site["title"], "admin_email": email, "admin_made": made.get("admin_made", False),
              "admin_mailed": made.get("mailed", False)}
    record_change(cfg.name, "network-add-site", f"subsite {slug} ({result['url']})")
    create_markdown_artifact(
        key=f"network-add-site-{cfg.name.replace('_', '-')}",
        markdown=f"# Subsite {slug} added to {cfg.domain}\n\n- {result['url']} (blog {site['blog_id']}), "
                 f"titled {site['title']!r}: answered 200 over HTTPS\n- administrator: {email}"
                 + ((" (a new user: WordPress's mail with the link to set a password "
                     + ("was sent)" if result["admin_mailed"] else "could not be sent: the site has no mail relay)"))
                    if result["admin_made"] else ""),
        description=f"network-add-site {slug}")
    if domain:
        from flows.network_map_domain import network_map_domain

        result["mapping"] = network_map_domain(network=network, subsite=slug, domain=domain, block_name=block_name,
                                               resolver=resolver)
    return result
