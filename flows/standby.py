"""A site's standby on a second server: add it, see how far behind it is, remove it.

`standby-add` provisions the site on the standby server with the real provisioning flow, seeds its database
from a consistent snapshot of the primary, starts MariaDB GTID replication over TLS (semi-synchronous when
asked) and a file sync of wp-content, and puts both servers behind the site's traffic (a Front or Route 53):
the primary in traffic, the standby health-checked and out of it. Its database is read-only for the site and
its WordPress cron is off, so it serves nothing until a failover promotes it.
"""

from __future__ import annotations

import time
from typing import Literal, Optional

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from blocks.server import Server
from blocks.standby import Front, Route53Dns, StandbyPair, pair_block_name
from pressfleet import validate
from pressfleet.dr import replication as rep
from pressfleet.dr.pairs import pairs_on
from pressfleet.dr.traffic import traffic_for
from tasks import standby as sb

REPLICATION_SECRET = "replication-password"


def site_block(site: str):
    from blocks.site import WordPressSite
    from pressfleet.fleet.sites import site_block_name

    try:
        return WordPressSite.load(site_block_name(validate.site_name(site)))
    except ValueError:
        raise validate.InvalidInput(f"no saved site {site!r}: provision it first (pressfleet provision)") from None


def replication_password(site: str) -> str:
    from pressfleet.fleet.secrets import _load_or_create, secret_block_name
    from pressfleet.fleet.siteconfig import generate_secret

    return str(_load_or_create(secret_block_name(site, REPLICATION_SECRET), lambda: generate_secret(40)))


def _host_conf(address: str, semisync_of: dict[str, bool]) -> str:
    """The replication settings of the server at ADDRESS, from every pair it is part of."""
    pairs = pairs_on(address)
    replicas = [rep.ReplicaConnection(p.site, p.primary.address, rep.server_id(p.primary.address))
                for p in pairs if p.standby.address == address and p.standby_state == "replica"]
    semisync = any(p.semisync for p in pairs) or any(semisync_of.values())
    return rep.render_replication_cnf(address, replicas=replicas, semisync=semisync)


def setup_replication(pair: StandbyPair, log=print) -> list[str]:
    """Replication from the pair's primary to its standby, from a fresh snapshot, and the file sync: what
    `standby add` and a failback's rejoin do once the site is on both servers. Returns what changed."""
    cfg = site_block(pair.site).config()
    started = time.monotonic()
    changed: list[str] = []
    p_conn, s_conn = pair.primary.connect(), pair.standby.connect()
    try:
        p_pem, c = sb.ensure_tls(p_conn, pair.primary.address)
        changed += c
        s_pem, c = sb.ensure_tls(s_conn, pair.standby.address)
        changed += c
        changed += sb.ensure_peer_ca(s_conn, pair.primary.address, p_pem)
        changed += sb.ensure_peer_ca(p_conn, pair.standby.address, s_pem)
        for conn, address in ((p_conn, pair.primary.address), (s_conn, pair.standby.address)):
            changed += sb.ensure_replication_conf(conn, _host_conf(address, {pair.site: pair.semisync}))
        log(f"TLS and replication settings in place ({time.monotonic() - started:.1f} s)")
        password = replication_password(pair.site)
        sb.sql(p_conn, rep.primary_grant_sql(pair.site, pair.standby.address, password))
        changed += sb.set_site_writable(p_conn, pair.site, True)
        changed += sb.set_site_writable(s_conn, pair.site, False)
        changed += sb.remove_file_sync(s_conn, pair.site)  # a rejoining old primary pushed files the other way
        changed += sb.unauthorize_file_sync(p_conn, pair.site)
        snapshot, _ = sb.seed(p_conn, s_conn, pair.site)
        log(f"seeded {pair.site} on {pair.standby.address} from a snapshot at GTID {snapshot or '(empty)'} "
            f"({time.monotonic() - started:.1f} s)")
        sb.start_replica(s_conn, pair.site, pair.primary.address, password, snapshot)
        changed.append(f"replication {pair.primary.address} -> {pair.standby.address} from {snapshot or 'the start'}")
        changed += sb.stop_cron(pair.standby, pair.site)
        from pressfleet.backup.restore import flush_caches

        flush_caches(s_conn, cfg)
        changed += sb.ensure_file_sync(p_conn, s_conn, cfg, pair.primary.address, pair.standby.address,
                                       pair.standby.host_key or "", pair.file_sync_interval_s)
        log(f"file sync every {pair.file_sync_interval_s} s, first pass done ({time.monotonic() - started:.1f} s)")
    finally:
        p_conn.close()
        s_conn.close()
    return changed


def wait_replicating(pair: StandbyPair, timeout: float = 60) -> sb.PairStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = sb.pair_status(pair)
        if (status.replicating and status.transactions_behind == 0) or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


def refresh_firewalls(pair: StandbyPair, site) -> None:
    """Both servers' firewalls re-rendered by the provisioning flow (they now let each other reach MariaDB)."""
    from flows.provision_wordpress import provision_wordpress

    for server in (pair.primary, pair.standby):
        provision_wordpress(server=server, site=site, components=["firewall"], verify=False)


@flow(name="standby-add")
def standby_add(site: str, standby: Server, semisync: bool = False,
                traffic: Literal["front", "dns", "none"] = "front", front: Optional[Front] = None,
                dns: Optional[Route53Dns] = None, auto_failover: bool = True, failover_after_s: int = 20,
                cooldown_minutes: int = 60, file_sync_interval_s: int = 10) -> dict:
    """Give SITE a standby on the STANDBY server: provisioned there, replicating, files following, behind
    the site's traffic. A re-run with the same standby brings everything back in line (a fresh snapshot)."""
    from flows.provision_wordpress import provision_wordpress

    log = get_run_logger()
    started = time.monotonic()
    block = site_block(site)
    primary = block.server
    if primary is None:
        raise validate.InvalidInput(f"{site} names no server: provision it first")
    try:
        existing = StandbyPair.load(pair_block_name(site))
    except ValueError:
        existing = None
    # Checked before anything runs: a standby on the primary's own server, or a traffic block missing.
    pair = StandbyPair(site=site, primary=primary, standby=standby, semisync=semisync, traffic=traffic, front=front,
                       dns=dns, auto_failover=auto_failover, failover_after_s=failover_after_s,
                       cooldown_minutes=cooldown_minutes, file_sync_interval_s=file_sync_interval_s,
                       standby_state="replica", last_failover=existing.last_failover if existing else None)
    if existing is not None and existing.standby.address != standby.address:
        raise validate.InvalidInput(f"{site} already has a standby on {existing.standby.address}: "
                                    f"`pressfleet standby remove {site}` first")
    if existing is not None and existing.primary.address != primary.address:
        raise validate.InvalidInput(f"{site}'s pair says its primary is {existing.primary.address}, its site block "
                                    f"{primary.address}: run `pressfleet standby status {site}`")
    steps: list[tuple[str, float]] = []

    def mark(what: str) -> None:
        steps.append((what, round(time.monotonic() - started, 1)))
        log.info("%s (%.1f s)", what, time.monotonic() - started)

    standby_site = type(block)(**{**block.model_dump(exclude={"server"}), "server": standby})
    provision_wordpress(server=standby, site=standby_site)
    mark(f"{site} provisioned on {standby.address}")
    pair.save(pair_block_name(site), overwrite=True)
    refresh_firewalls(pair, block)
    mark("firewalls of both servers let the pair reach MariaDB")
    changed = setup_replication(pair, log=log.info)
    mark("replicating")
    changed += traffic_for(pair).apply(pair)
    mark(f"traffic: {traffic_for(pair).describe()}")
    from pressfleet.dr.automation import sync_failover_automations

    sync_failover_automations()
    status = wait_replicating(pair)
    mark(status.line())
    create_markdown_artifact(
        key=f"standby-{site.replace('_', '-')}",
        markdown="\n".join([f"# Standby of {site}", "", status.line(), "", "| step | at (s) |", "| --- | --- |",
                            *(f"| {w} | {t} |" for w, t in steps), "", "Changed:", *(f"- {c}" for c in changed)]),
        description=f"{site}: standby on {standby.address}")
    return {"site": site, "primary": primary.address, "standby": standby.address, "semisync": semisync,
            "seconds": round(time.monotonic() - started, 1), "replicating": status.replicating,
            "transactions_behind": status.transactions_behind, "changed": changed}


@flow(name="standby-remove")
def standby_remove(site: str) -> dict:
    """Stop SITE's replication and file sync and forget its standby (the standby's copy of the site stays,
    read-only, until `pressfleet site remove` on that server)."""
    from blocks.standby import load_pair

    pair = load_pair(site)
    changed: list[str] = []
    for server, role in ((pair.primary, "primary"), (pair.standby, "standby")):
        try:
            conn = server.connect()
        except Exception as exc:  # noqa: BLE001 - a server that is gone: say so, go on with the other
            changed.append(f"{role} {server.address} not reached ({type(exc).__name__}): clean it up when it returns")
            continue
        try:
            if role == "standby":
                changed += sb.remove_replica(conn, site)
                changed += sb.unauthorize_file_sync(conn, site)
            else:
                changed += sb.remove_file_sync(conn, site)
                sb.sql(conn, rep.drop_user_sql(site, pair.standby.address))
        finally:
            conn.close()
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        doc = client.read_block_document_by_name(pair_block_name(site), block_type_slug="pressfleet-standby-pair")
        client.delete_block_document(doc.id)
    from pressfleet.dr.automation import sync_failover_automations

    sync_failover_automations()
    if pair.traffic == "front":
        kept = pair.model_copy(update={"standby_state": "fenced"})
        changed += traffic_for(kept).apply(kept)
    return {"site": site, "changed": changed}


@flow(name="standby-status")
def standby_status(site: Optional[str] = None) -> list[dict]:
    """Replication and file sync of every pair (or SITE's): lag in seconds and transactions, errors."""
    from dataclasses import asdict

    from pressfleet.dr.pairs import saved_pairs

    pairs = [p for p in saved_pairs() if site is None or p.site == site]
    if site is not None and not pairs:
        from blocks.standby import load_pair

        load_pair(site)  # the clear error
    out = [asdict(sb.pair_status(p)) for p in pairs]
    return out
