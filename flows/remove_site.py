"""Remove a WordPress site from its server, after a final backup: the flow behind `pressfleet site remove`."""

from __future__ import annotations

from typing import Optional

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.blocks.system import Secret

from blocks.site import WordPressSite
from blocks.storage import AnyStorage
from pressfleet.backup.targets import server_of, storage_block
from pressfleet.fleet.locks import site_lock
from tasks.common import run_connections
from tasks.remove import delete_site_blocks, jails_without_sites, remove_from_host, removal_started, site_on_host

# The host-wide steps re-run for a site that stays: fail2ban's jails, and PHP's pools, process.max, sizing and
# log rotation (rendered from every site on the host).
HOST_WIDE = ["fail2ban", "php"]


def other_sites_on(site: WordPressSite, block_name: Optional[str]) -> list[tuple[str, WordPressSite]]:
    """The saved sites, other than SITE, that run on SITE's server (same address and port), by block name."""
    from pressfleet.fleet.saved import saved_block_names

    me = server_of(site)
    out = []
    for name in saved_block_names("wordpress-site"):
        if name == block_name:
            continue
        try:
            other = WordPressSite.load(name)
        except ValueError:
            continue
        if other.name != site.name and other.server is not None and \
                (other.server.address, other.server.port) == (me.address, me.port):
            out.append((name, other))
    return out


def _markdown(result: dict) -> str:
    lines = [f"# Removed {result['domain']} (site {result['site']}) from {result['server']}", "",
             f"Final backup: `{result['final_backup'] or 'none'}` in {result['backup_location']}.", ""]
    lines += [f"- {r}" for r in result["removed"]]
    lines += ["", "Blocks deleted: " + (", ".join(f"`{b}`" for b in result["blocks_deleted"]) or "none")]
    if result["notes"]:
        lines += ["", "Notes:", *[f"- {n}" for n in result["notes"]]]
    return "\n".join(lines)


def _final_backup(site: WordPressSite, store, encryption_key, server, notes: list[str]) -> Optional[str]:
    """The id of the site's final backup: a full backup taken now, or, when an earlier run already began the
    removal (its folder or database is gone), the newest backup in storage. Raises when the backup fails:
    nothing is removed then."""
    from flows.backup_site import backup_site

    cfg = site.config()
    if removal_started(site_on_host(server, cfg)):
        from pressfleet.backup import catalog
        from pressfleet.backup.targets import encryption_secret

        entries = catalog.list_backups(store.store(), cfg.name, encryption_secret(encryption_key, store))
        if entries:
            newest = entries[-1].manifest.backup_id
            notes.append(f"an earlier run had begun the removal: the final backup is the newest one, {newest}")
            return newest
        notes.append("an earlier run had begun the removal and no backup of the site is in storage: "
                     "its files and database were already gone, nothing was left to back up")
        return None
    try:
        [final] = backup_site(site=site, storage=store, encryption_key=encryption_key, full=True)
    except Exception as exc:
        raise RuntimeError(f"the final backup of {cfg.domain} failed, so nothing was removed: {exc}") from exc
    return final["backup"]


@flow(name="remove-site")
def remove_site(
    site: WordPressSite,
    storage: Optional[AnyStorage] = None,
    encryption_key: Optional[Secret] = None,
    block_name: Optional[str] = None,
) -> dict:
    """Take a site off its server for good, after a final backup; the other sites on the server stay as they are.

    First a full backup of the site (to `storage`, default `local-backups`, with the backup key): if it fails,
    nothing is removed. Then, on the host: its nginx vhost and links, its cached pages, its PHP-FPM pool, its
    cron timer, its database and database user, its web root and wp-config.php, its logs, its certificate (when
    pressfleet made it), its /etc/hosts line, its Redis user, its system user and group; then its Secret
    blocks and its WordPress Site block (`block_name`). Last, one site that stays on the host is provisioned
    again for the host-wide files (fail2ban's jails, PHP's process.max and pool sizes, log rotation), which
    are rendered from the sites that remain; their content is never touched.

    Holds the site's lock and a slot of its host's limit throughout. Every step is idempotent: a run that
    stopped half-way is completed by running it again (the final backup is then taken again, which costs time, not data). Returns what was
    removed and where the final backup is; the artifact `remove-<site>` says the same.
    """
    log = get_run_logger()
    cfg = site.config()
    if block_name is None and site._block_document_name and not site._is_anonymous:
        block_name = site._block_document_name  # the block the deployment's form picked
    server = server_of(site)
    store = storage_block(storage)
    notes: list[str] = []
    with run_connections(), site_lock([cfg.name], "remove-site", hosts=[server], host_files=True, logger=log) as lock:
        if lock.note:
            notes.append(lock.note)
        final_id = _final_backup(site, store, encryption_key, server, notes)
        location = f"{store.store().describe()} under {cfg.name}/backups/{final_id}/" if final_id else "(none)"
        log.info("final backup of %s: %s in %s", cfg.domain, final_id, location)
        stays = other_sites_on(site, block_name)
        removed = remove_from_host(server, cfg)
        deleted = delete_site_blocks(cfg.name, block_name or "")
        if not block_name:
            notes.append("the site was not given as a saved block: no WordPress Site block was deleted")
        rerendered = None
        if stays:
            from flows.provision_wordpress import provision_wordpress

            name, other = stays[0]
            provision_wordpress(server=other.server, site=other, components=HOST_WIDE, verify=False)
            rerendered = other.name
            notes.append(f"host-wide files rendered again from the {len(stays)} site(s) that stay "
                         f"(re-provisioned {other.domain}: {', '.join(HOST_WIDE)})")
        elif jails_without_sites(server, cfg.php_version) is not None:
            notes.append("no site left on this server: fail2ban's jails no longer watch any WordPress site "
                         "(php-fpm is stopped until a site is provisioned there)")
        else:
            notes.append("no other saved site names this server, but PHP pools of sites without a saved block are "
                         "left on it: its host-wide files stay as they are (save those sites' blocks to manage them)")
    result = {"site": cfg.name, "domain": cfg.domain, "server": server.address, "final_backup": final_id,
              "backup_location": location, "removed": removed, "blocks_deleted": deleted,
              "rerendered_from": rerendered, "remaining_sites": [o.domain for _, o in stays], "notes": notes}
    create_markdown_artifact(key=f"remove-{cfg.name.replace('_', '-')}", markdown=_markdown(result),
                             description=f"Removal of {cfg.domain} from {server.address}")
    return result
