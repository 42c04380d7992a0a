"""Provision a WordPress host: the flow a person runs to turn a pristine Debian 12 server into a hardened,
tuned WordPress site, or to bring one back to its desired state."""

from __future__ import annotations

import ipaddress
import json
import time
from typing import Optional

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from blocks.server import Server
from blocks.site import WordPressSite
from pressfleet.alerts.store import maintenance
from pressfleet.plan import desired as provision
from pressfleet.ssh.converge import StepResult
from blocks.template import with_template
from pressfleet.fleet.changes import record_change
from pressfleet.fleet.locks import site_lock
from pressfleet.plan.desired import Component, ProvisionReport
from pressfleet.render.configs import LOGIN_DEFS
from pressfleet.ssh.remote import run
from pressfleet.fleet.secrets import site_secrets
from pressfleet.fleet.siteconfig import SiteConfig
from pressfleet.plan.hostsites import HostInventory, HostSites, host_sites, resize_notes
from tasks.base import install_packages, stack_packages
from tasks.checks import Check, verify_site
from pressfleet.ssh import converge
from tasks.common import connected, run_connections
from tasks.host import gather_host_facts
from tasks.mariadb import configure_mariadb
from tasks.nginx import configure_nginx
from tasks.os import harden_os
from tasks.php import configure_php, host_inventory, measured_worker_memory
from tasks.redis import configure_redis
from tasks.security import configure_fail2ban, configure_firewall, harden_ssh
from tasks.wordpress import configure_wordpress
from tasks.updates import ensure_template_components


@task(name="sizing inputs", cache_policy=NONE)
def sizing_inputs(server: Server, site: SiteConfig) -> dict:
    """The PHP workers' measured memory, the figure recorded last time, and the control side's address."""
    with connected(server) as conn:
        # A dry run sends the site no requests (they would warm caches): the recorded figure stands.
        samples = [] if converge.current_dry_run() is not None else measured_worker_memory(conn, site)
        recorded = run(conn, ["cat", provision.SIZING_RECORD], check=False)
        client = run(conn, ["sh", "-c", 'echo "${SSH_CLIENT%% *}"']).stdout.strip()
    previous = None
    if recorded.ok:
        try:
            previous = int(json.loads(recorded.stdout)["worker_memory_bytes"])
        except (ValueError, KeyError, TypeError):
            previous = None
    return {"samples": samples, "recorded": previous, "control_address": client}


def saved_sites_on(server: Server, current: str) -> tuple[list[SiteConfig], list[str]]:
    """The saved WordPressSite blocks whose server is this host (same address and port), as site configs,
    and a note for each saved block that could not be read."""
    from pressfleet.fleet.sites import saved_sites

    configs, notes = [], []
    for saved in saved_sites():
        if saved.name == current:
            continue
        try:
            block = WordPressSite.load(saved.block)
        except Exception as exc:  # noqa: BLE001 - one unreadable block must not stop the run; it is reported
            notes.append(f"saved block {saved.block} could not be read ({type(exc).__name__}): not counted")
            continue
        other = block.server
        if other is not None and other.address == server.address and other.port == server.port:
            configs.append(block.config())
    return configs, notes


@task(name="sites on the host", cache_policy=NONE)
def sites_on_host(server: Server, site: SiteConfig) -> tuple[HostSites, HostInventory]:
    """Every site on the host: the saved blocks naming it, checked against its pools and pressfleet's records."""
    saved, notes = saved_sites_on(server, site.name)
    with connected(server) as conn:
        inventory = host_inventory(conn)
    found = host_sites(site, saved, inventory)
    return HostSites(found.sites, found.pool_only, (*notes, *found.notes)), inventory


def replication_peers(server: Server, site: str = "") -> tuple[list[str], bool]:
    """The other servers of the standby pairs this host is part of (they may reach its MariaDB), and whether
    this host holds SITE's standby (or its fenced old primary): there the site's database stays read-only."""
    from pressfleet.dr.pairs import pairs_on

    pairs = pairs_on(server.address)
    peers = sorted({a for p in pairs for a in (p.primary.address, p.standby.address)} - {server.address})
    return peers, any(p.site == site and p.standby.address == server.address for p in pairs)


def peek_site_secrets(name: str):
    """The site's saved credentials, or throwaway ones (never saved) for a site not provisioned yet: a dry run
    creates no block. (Files holding them are never shown in a diff.)"""
    from prefect.blocks.system import Secret

    from pressfleet.fleet.secrets import SiteSecrets, secret_block_name
    from pressfleet.fleet.siteconfig import WpSalts, generate_secret

    def peek(what, make):
        try:
            return Secret.load(secret_block_name(name, what)).get()
        except ValueError:
            return make()

    return SiteSecrets(db_password=str(peek("db-password", lambda: generate_secret(40))),
                       admin_password=str(peek("admin-password", lambda: generate_secret(24))),
                       salts=WpSalts(**peek("salts", lambda: WpSalts.generate().model_dump())),
                       redis_password=str(peek("redis-password", lambda: generate_secret(40))))


def dry_run_report(site_url: str, address: str, results: list[StepResult], seconds: float) -> ProvisionReport:
    """The report of a dry run: what each step would change, every diff, package and action (nothing changed)."""
    changed = any(r.did_change or r.diffs or r.packages or r.actions for r in results)
    create_markdown_artifact(
        key=f"provision-dry-run-{site_url.split('/')[2].replace('.', '-')}",
        markdown=converge_markdown(site_url, address, results, changed),
        description=f"Dry run of provisioning {site_url} on {address}: nothing was changed",
    )
    return ProvisionReport(
        site_url=site_url, changed=changed, seconds=seconds, dry_run=True, checks=[],
        steps=[{"name": r.name, "changed": r.changed, "seconds": r.seconds, "notes": r.notes, "diffs": r.diffs,
                "packages": r.packages, "actions": r.actions} for r in results],
        diffs=[{"step": r.name, **d} for r in results for d in r.diffs],
        packages=[p for r in results for p in r.packages],
        actions=[a for r in results for a in r.actions],
    )


def converge_markdown(site_url: str, address: str, results: list[StepResult], changed: bool) -> str:
    lines = [f"# Dry run: provisioning {site_url} on {address}", "",
             "Nothing was changed on the host." + ("" if changed else " Nothing would change."), ""]
    for r in results:
        if r.packages:
            lines += [f"**{r.name}** would install: {' '.join(r.packages)}", ""]
        for a in r.actions:
            lines.append(f"- {r.name}: {a}")
        for d in r.diffs:
            lines += ["", f"```diff\n{d['diff']}```"]
    return "\n".join(lines)


def _report_markdown(site_url: str, results: list[StepResult], checks: list[Check], seconds: float,
                     host: HostSites | None = None) -> str:
    changed = any(r.did_change for r in results)
    lines = [f"# Provisioned {site_url}", "",
             f"{'Changes were made' if changed else 'Nothing to change: the host already matched the desired state'}"
             f" ({seconds:.1f} s).", ""]
    if host is not None:
        lines += [f"Sites on this host ({host.count}), whose host-wide files (fail2ban, pools, process.max, log "
                  f"rotation) this run rendered: {', '.join(host.protected_names)}.", ""]
        lines += [f"- {n}" for n in host.notes] + ([""] if host.notes else [])
    lines += ["| step | changed | seconds | what |", "| --- | --- | --- | --- |"]
    for r in results:
        what = "; ".join(r.changed)[:400] or "-"
        lines.append(f"| {r.name} | {'yes' if r.did_change else 'no'} | {r.seconds:.1f} | {what} |")
    updates = [c for r in results for c in r.changed if c.startswith("updated core ")]
    if updates:
        lines += ["", f"**Update:** WordPress {'; '.join(u.removeprefix('updated ') for u in updates)}"
                      " (new core swapped in around wp-content; WordPress's wp_upgrade() ran)."]
    notes = [f"{r.name}: {n}" for r in results for n in r.notes]
    if notes:
        lines += ["", "Notes:", *[f"- {n}" for n in notes]]
    if checks:
        lines += ["", "| check | result | detail |", "| --- | --- | --- |"]
        for c in checks:
            lines.append(f"| {c.name} | {'pass' if c.passed else '**FAIL**'} | {c.detail} |")
    return "\n".join(lines)


def _mail_files(site, cfg) -> list:
    """The site's msmtp settings when it names a mail relay (with the relay's password: the site's user's alone)."""
    relay = site.mail_relay
    return provision.mail_files(cfg, relay.settings(cfg.domain) if relay else None, relay.ca_pem if relay else None)


@flow(name="provision-wordpress")
def provision_wordpress(
    server: Server,
    site: WordPressSite,
    components: Optional[list[Component]] = None,
    verify: bool = True,
    dry_run: bool = False,
) -> ProvisionReport:
    """Turn a pristine Debian 12 server into a hardened, tuned WordPress site (or bring it back in line).

    Installs nginx, PHP-FPM, MariaDB and Redis from Debian; hardens sshd, the firewall and fail2ban; sizes
    PHP-FPM, MariaDB, OPcache and Redis from the host's RAM and measured PHP worker memory; installs the
    WordPress release (checksum verified) with its own database, user and PHP pool; serves it over HTTPS
    with a page cache purged on publish and a Redis object cache. Every step changes only what differs,
    validates configuration before reloading, and a second run changes nothing. `components` runs only
    the named steps (like Trellis tags). The run ends with checks of the live site and a report artifact.
    While it runs it holds the site's lock (pressfleet.fleet.locks): a backup, restore or prune of the site waits.
    The run's tasks share one SSH connection to the host (opened again only if it drops).

    `dry_run` changes nothing on the host (no file, package, user, database, service or reload) and saves no
    secret: it reads the host's facts and reports, per step, the unified diff of every file it would change,
    the packages it would install and the services and commands it would touch (like Ansible's check mode).
    It takes no lock and runs no checks of the live site.
    """
    site = with_template(site)  # an unknown template is refused here, before anything runs
    template_parts = template_components(site)
    with run_connections():
        if dry_run:
            with converge.dry_run():
                return _provision_locked(server, site, components, False, "", dry_run=True,
                                         template_parts=template_parts)
        with site_lock([site.config().name], "provision-wordpress", hosts=[server], host_files=True,
                       logger=get_run_logger()) as lock, \
                maintenance([site.config().name], "provision-wordpress", log=get_run_logger().warning):
            return _provision_locked(server, site, components, verify, lock.note, template_parts=template_parts)


def template_components(site: WordPressSite) -> tuple[list, list[str], list[tuple[str, str]]] | None:
    """The catalogue releases of the site's template's plugins and themes, the plugins to activate and the
    administrators to add (login, e-mail); None without a template. A slug the catalogue does not have is
    refused before anything runs."""
    if not site.template:
        return None
    from blocks.catalog import ReleaseCatalog, load_catalog
    from blocks.template import load_template
    from pressfleet.updates.catalog import CatalogError

    template = load_template(site.template)
    if not template.plugins and not template.themes and not template.admins:
        return None
    try:
        cat = load_catalog(ReleaseCatalog.load(template.catalog) if template.catalog else None)
    except ValueError as exc:
        raise CatalogError(f"template {site.template!r}: {exc}") from None
    releases = []
    for kind, slugs in (("plugin", template.plugins), ("theme", template.themes)):
        for slug in slugs:
            newest = cat.newest(kind, slug)
            if newest is None:
                raise CatalogError(f"template {site.template!r} installs {kind} {slug!r}, which the catalogue "
                                   f"({cat.source}) does not list: add it there or take it out of the template")
            releases.append(newest)
    return releases, list(template.plugins), [(a.login, a.email) for a in template.admins]


def _provision_locked(server: Server, site: WordPressSite, components: Optional[list[Component]], verify: bool,
                      lock_note: str, *, dry_run: bool = False, template_parts=None) -> ProvisionReport:
    """The provisioning run itself, with the site's lock held (or a dry run of it)."""
    log = get_run_logger()
    started = time.monotonic()
    cfg = site.config()
    steps = provision.selected(components)
    secrets = peek_site_secrets(cfg.name) if dry_run else site_secrets(cfg.name)
    results: list[StepResult] = []

    facts = gather_host_facts(server)
    if "packages" in steps:
        results.append(install_packages(server, stack_packages(cfg.php_version), provision.unattended_upgrades_files()))

    host, inventory = sites_on_host(server, cfg)
    others = [s for s in host.sites if s.name != cfg.name]
    for note in host.notes:
        log.warning("%s", note)
    inputs = sizing_inputs(server, cfg)
    plan = provision.plan_for(facts.mem_total_bytes, facts.cpus, inputs["samples"], inputs["recorded"],
                              sites=host.count)
    control = inputs["control_address"]
    control_networks = [str(ipaddress.ip_network(control))] if control else []
    peers, standby_here = replication_peers(server, cfg.name)
    if standby_here:
        log.info("%s holds the standby of %s: its database stays read-only, its cron off, no live-site checks",
                 server.address, cfg.name)
        verify = False
    files = provision.desired_files(
        cfg, plan, ssh_groups=server.ssh_login_groups(), ssh_port=server.port, control_networks=control_networks,
        db_password=secrets.db_password, salts=secrets.salts, host=host, replication_peers=peers,
    )
    files["php"] += _mail_files(site, cfg)
    log.info("Sizing for %.1f GiB RAM, %d CPUs, PHP worker %d MiB, %d site(s) (%s): %d PHP workers per pool, "
             "process.max %d, InnoDB buffer pool %d MiB",
             facts.mem_total_bytes / 2**30, facts.cpus, plan.php.worker_rss_bytes // 2**20, host.count,
             ", ".join(host.protected_names), plan.php.max_children, plan.php.process_max,
             plan.innodb.buffer_pool_bytes // 2**20)

    for step_name in steps:
        if step_name == "os":
            results.append(harden_os(server, files["os"], LOGIN_DEFS))
        elif step_name == "ssh":
            results.append(harden_ssh(server, files["ssh"], group=server.ssh_group, admins=server.ssh_admins,
                                      allow_groups=server.ssh_allow_groups))
        elif step_name == "firewall":
            results.append(configure_firewall(server, files["firewall"]))
        elif step_name == "fail2ban":
            results.append(configure_fail2ban(server, files["fail2ban"], provision.watched_logs(cfg, host)))
        elif step_name == "mariadb":
            results.append(configure_mariadb(server, files["mariadb"], cfg.db_name, secrets.db_password,
                                             read_only=standby_here))
        elif step_name == "redis":
            results.append(configure_redis(server, files["redis"], cfg.name, secrets.redis_password))
        elif step_name == "php":
            results.append(configure_php(server, cfg, files["php"], provision.php_remove(cfg), others))
        elif step_name == "wordpress":
            results.append(configure_wordpress(
                server, cfg, title=site.title, admin_user=site.admin_user, admin_password=secrets.admin_password,
                wp_config=provision.wp_config(cfg, secrets.db_password, secrets.salts, secrets.redis_password),
                release_url=site.release_url, release_sha256=site.release_sha256, cron_units=files["wordpress"],
                update_core=site.update_core,
            ))
        elif step_name == "nginx":
            results.append(configure_nginx(
                server, files["nginx"], site=cfg, remove=provision.NGINX_REMOVE, links=provision.nginx_links(cfg),
                cache_dirs=[provision.NGINX_CACHE_DIR],
                certificate=(site.certificate_pem, site.certificate_key.get_secret_value() if site.certificate_key else None),
                acme_server=site.acme_server, acme_ca_bundle=site.acme_ca_bundle, dns01_api=site.dns01_api_url,
            ))

    if "php" in steps and not inputs["samples"] and not dry_run:
        # The first run sized PHP before any worker had run WordPress: measure now that the site serves, and
        # re-size in this same run, so that the next run finds nothing to change.
        measured = sizing_inputs(server, cfg)
        better = provision.plan_for(facts.mem_total_bytes, facts.cpus, measured["samples"], plan.php.worker_rss_bytes,
                                    sites=host.count)
        if better != plan:
            plan = better
            files = provision.desired_files(
                cfg, plan, ssh_groups=server.ssh_login_groups(), ssh_port=server.port, control_networks=control_networks,
                db_password=secrets.db_password, salts=secrets.salts, host=host, replication_peers=peers,
            )
            files["php"] += _mail_files(site, cfg)
            resized = configure_php(server, cfg, files["php"], provision.php_remove(cfg), others)
            resized.name = "php (sized from measured workers)"
            results.append(resized)

    if template_parts and "wordpress" in steps:
        results.append(ensure_template_components(server, cfg, *template_parts, reassign=site.admin_user))

    php_results = [r for r in results if r.name.startswith("php")]
    if php_results and any(r.did_change for r in php_results):
        # What the sizing did to every pool on the host (the pools of the other sites included).
        php_results[-1].notes += resize_notes(inventory.pools, {s.name: plan.php.max_children for s in host.sites},
                                              inventory.process_max, plan.php.process_max)
    if standby_here and not dry_run:
        from tasks.standby import stop_cron

        stop_cron(server, cfg.name)
    checks = verify_site(server, cfg, admin_user=site.admin_user, admin_password=secrets.admin_password) if verify else []
    seconds = round(time.monotonic() - started, 1)
    site_url = f"https://{cfg.domain}/"
    if dry_run:
        return dry_run_report(site_url, server.address, results, seconds)
    create_markdown_artifact(
        key=f"provision-{cfg.name.replace('_', '-')}", markdown=_report_markdown(site_url, results, checks, seconds, host)
        + (f"\n\n{lock_note}" if lock_note else ""),
        description=f"Provisioning of {site_url} on {server.address}",
    )
    failed = [c.name for c in checks if not c.passed]
    if failed:
        raise RuntimeError(f"{site_url} is provisioned but these checks failed: {', '.join(failed)}")
    changed = any(r.did_change for r in results)
    log.info("%s: %s in %.1f s", site_url, "changed" if changed else "nothing to change", seconds)
    if changed:
        record_change(cfg.name, "provision-wordpress", ", ".join(r.name for r in results if r.did_change))
    return ProvisionReport(
        site_url=site_url, changed=changed, seconds=seconds,
        steps=[{"name": r.name, "changed": r.changed, "seconds": r.seconds, "notes": r.notes} for r in results],
        checks=[{"name": c.name, "passed": c.passed, "detail": c.detail} for c in checks],
        host_sites=host.protected_names, host_notes=list(host.notes),
    )
