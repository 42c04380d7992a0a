"""Remove a subsite from a WordPress network, after a backup: the flow behind `pressfleet network remove-site`."""

from __future__ import annotations

from typing import Optional

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.blocks.system import Secret

from blocks.site import WordPressSite
from blocks.storage import AnyStorage
from pressfleet.backup.targets import server_of
from pressfleet.fleet.changes import record_change
from pressfleet.fleet.locks import site_lock
from pressfleet.multisite.domains import find_subsite, slug_of
from tasks.common import run_connections
from tasks.network import delete_subsite, list_subsites


@flow(name="network-remove-site")
def network_remove_site(
    network: WordPressSite,
    subsite: str,
    storage: Optional[AnyStorage] = None,
    encryption_key: Optional[Secret] = None,
    block_name: Optional[str] = None,
) -> dict:
    """Delete a network's SUBSITE (slug, blog id or mapped domain) with WordPress's wp_delete_site(), after a
    backup of the whole network: its tables and uploads/sites/N go, and its mapped domain, if any, leaves the
    vhost, /etc/hosts and the block, and its certificate is deleted. The backup failing removes nothing; it keeps
    the subsite (a restore of the whole network's database and uploads brings it back). The main site is never
    removed alone."""
    from flows.backup_site import backup_site

    block_name = block_name or getattr(network, "_block_document_name", None)  # the saved block a run was given
    cfg = network.config()
    server = server_of(network)
    target = find_subsite(cfg, list_subsites(server, cfg), subsite)
    slug = slug_of(cfg, target)
    try:
        [backup] = backup_site(site=network, storage=storage, encryption_key=encryption_key)
    except Exception as exc:
        raise RuntimeError(f"the backup of {cfg.domain} before removing subsite {slug} failed, so nothing was "
                           f"removed: {exc}") from exc
    kept = [m for m in network.mapped_domains if m.slug != slug]
    unmapped = network.model_copy(update={"mapped_domains": kept}) if len(kept) != len(network.mapped_domains) else None
    with run_connections(), site_lock([cfg.name], "network-remove-site", hosts=[server], logger=get_run_logger()):
        done = delete_subsite(server, cfg, target.blog_id, unmapped.config() if unmapped else None)
    if unmapped is not None and block_name:
        unmapped.save(block_name, overwrite=True)
    result = {"network": cfg.name, "subsite": slug, "blog_id": target.blog_id, "url": target.url,
              "backup": backup["backup"], "removed": done}
    record_change(cfg.name, "network-remove-site", f"subsite {slug} ({target.url}) after backup {backup['backup']}")
    create_markdown_artifact(
        key=f"network-remove-site-{cfg.name.replace('_', '-')}",
        markdown=f"# Subsite {slug} removed from {cfg.domain}\n\nBackup first: `{backup['backup']}` (it keeps the "
                 f"subsite, blog {target.blog_id}).\n\n" + "".join(f"- {d}\n" for d in done),
        description=f"network-remove-site {slug}")
    return result
