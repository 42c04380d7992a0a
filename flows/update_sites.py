"""Update WordPress core, plugins and themes safely: one site (`update-site`) or the fleet in waves (`update-sites`).

For each site: a backup proven restorable first, the pages checked, the catalogue's newest releases installed
(verified by sha256, swapped in atomically, WordPress's wp_upgrade() for core, active plugins kept active), the
pages checked again, and on any regression the site rolled back to that proven backup and checked once more.
A fleet update runs in waves; a wave with a failed site stops the run and later waves never start.
"""

from __future__ import annotations

import time
from dataclasses import replace
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from datetime import UTC, datetime, timedelta
from typing import Literal, Optional

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.blocks.system import Secret
from prefect.input import RunInput

from blocks.catalog import ReleaseCatalog, load_catalog
from blocks.server import Server
from blocks.site import WordPressSite
from blocks.storage import AnyStorage
from flows.restore_test import scratch_server
from pressfleet.alerts.store import maintenance
from pressfleet.backup import catalog as backups
from pressfleet.backup.targets import encryption_secret, saved_sites, server_of, storage_block
from pressfleet.fleet.changes import record_change
from pressfleet.fleet.children import block_ref, site_children
from pressfleet.fleet.fanout import fan_out
from pressfleet.fleet.locks import host_lock_name, site_lock
from pressfleet.fleet.nothing import nothing_to_do
from pressfleet.fleet.selection import select_saved
from pressfleet.updates.imagediff import compare
from pressfleet.updates.plan import outdated, plan_waves, regressions
from pressfleet.updates.policy import Level, pending_at
from tasks import updates
from tasks.backup import backup_one, restore_one, restore_test_one
from tasks.common import connected, run_connections

Component = Literal["core", "plugins", "themes"]
KIND_OF = {"core": "core", "plugins": "plugin", "themes": "theme"}
UPDATE_DEPLOYMENT = "update-site/update-site"


class UpdateFailed(RuntimeError):
    """The update broke the site; it was rolled back (or the rollback failed too, which the sentence says)."""


class WaveDecision(RunInput):
    """What the person decides after a wave, in the Prefect UI's resume form."""

    decision: Literal["continue", "stop"] = "continue"


def proven_backup(site: WordPressSite, storage, server: Server, scratch: Optional[Server], key_block,
                  max_age: timedelta, core_version: str) -> tuple[str, str]:
    """The backup a rollback would restore: the newest backup when a restore-test proved it, it is younger than
    MAX_AGE and was taken of the core now installed (CORE_VERSION); otherwise a fresh backup, restore-tested now
    (the update does not start unless the proof passes)."""
    secret = encryption_secret(key_block, storage)
    entries = list(backups.list_backups(storage.store(), site.config().name, secret))
    now = datetime.now(UTC)
    newest = entries[-1] if entries else None
    if (newest is not None and newest.verified and now - newest.manifest.started_at < max_age
            and newest.manifest.wordpress_version == core_version):
        age = (now - entries[-1].manifest.started_at).total_seconds() / 60
        return entries[-1].manifest.backup_id, f"newest backup, verified, {age:.0f} min old"
    summary = backup_one.fn(site, storage, server, key_block)
    with scratch_server(site.name, scratch, log=get_run_logger().info) as (host, where):
        proof = restore_test_one.fn(site, storage, host, where, summary["backup"], key_block)
    return summary["backup"], f"fresh {summary['kind']} backup, restore-tested on {where} in {proof['seconds']:.1f} s"


def _pages(checks) -> str:
    return ", ".join(f"{p.url} {p.status} ({p.seconds:.2f} s)" for p in checks.pages)


def roll_back(site: WordPressSite, storage, server: Server, backup_id: str, old_core, core_changed: bool,
              key_block, paths: list[str]):
    """Files and database back to the proven backup (and core to the release recorded before), then checked:
    the pages, and the PHP fatal errors counted from the rollback's end (the failed update's are in the log)."""
    config = site.config()
    started = time.monotonic()
    with connected(server) as conn:
        if core_changed and old_core is not None and old_core.sha256 and old_core.url:
            updates.install_core_files(conn, config, old_core.url, old_core.sha256)
    try:
        restore_one.fn(site, storage, server, backup_id, ["database", "files"], None, key_block)
    finally:
        with connected(server) as conn:
            updates.end_maintenance(conn, config)
            updates.reload_php(conn, config)
    with connected(server) as conn:
        _, fatals = updates.error_log(conn, config)  # the failed update's own fatals are in the log already
        checks = updates.check_site(conn, config, paths)
    return checks, fatals, round(time.monotonic() - started, 1)


@flow(name="update-site")
def update_site(
    site: WordPressSite,
    components: list[Component] = ["core", "plugins", "themes"],  # noqa: B006 - a form default, never mutated
    catalog: Optional[ReleaseCatalog] = None,
    storage: Optional[AnyStorage] = None,
    encryption_key: Optional[Secret] = None,
    scratch: Optional[Server] = None,
    sitemap_urls: int = 5,
    proof_max_age_minutes: int = 60,
    screenshot_threshold: float = 0.25,
    levels: Optional[list[Level]] = None,
    dry_run: bool = False,
) -> dict:
    """Update one site to the catalogue's newest core, plugins and themes, or leave it as it was.

    Before: a backup proven restorable (the newest verified one if under `proof_max_age_minutes` old, otherwise
    a fresh backup restore-tested now on `scratch`, left empty a fresh lab host), and the home page and up to
    `sitemap_urls` pages of WordPress's sitemap checked (status, time) with the PHP error log. Then each update:
    the archive verified by sha256, swapped in atomically, wp_upgrade() for core, active plugins kept active.
    After: the same checks. A page that answered 2xx no longer doing so, a new PHP fatal error, or a home page
    whose full-page screenshot (headless Chromium, before and after) differs in more than `screenshot_threshold`
    of its pixels rolls files and database back to the proven backup, checks the site again and fails the run
    saying why; the screenshots and the diff image are kept under the state folder's reports/update-site/. The catalogue
    left empty is the saved Release Catalog `pressfleet-catalog`. `levels` (security, minor, major; see the
    update policy) takes only releases of those levels, each component's newest of them; left empty, the
    newest release of each. `dry_run` lists the updates and changes nothing. While an update runs the host keeps
    a record of it; a run that was cut half-way (a dropped connection, a killed worker) is found by the next
    update of the site, which first rolls it back to that run's proven backup.
    """
    log = get_run_logger()
    cat = load_catalog(catalog)  # refused before anything runs when there is none
    kinds = [KIND_OF[c] for c in components]
    config = site.config()
    server = server_of(site)
    store = storage_block(storage)
    row = {"site": site.name, "domain": config.domain, "state": "up to date", "updates": [], "backup": "",
           "proof": "", "before": "", "after": "", "reasons": [], "rollback_seconds": None, "seconds": 0.0}
    started = time.monotonic()
    with site_lock([config.name], "update-site", hosts=[server], logger=log), run_connections(), \
            maintenance([] if dry_run else [config.name], "update-site", log=log.warning):
        with connected(server) as conn:
            left = updates.underway(conn, config)
        if left is not None and not dry_run:
            row["recovered"] = finish_cut_update(site, store, server, left, encryption_key)
            log.warning("%s: %s", site.name, row["recovered"])
        with connected(server) as conn:
            if not dry_run:
                updates.ensure_bootstrap(conn)
            installed = updates.inventory(conn, config)
        pending = outdated(installed, cat, kinds) if levels is None else pending_at(installed, cat, levels, kinds)
        row["updates"] = [p.describe() for p in pending]
        if not pending or dry_run:
            row["state"] = "would update" if pending else "up to date"
            log.info("%s: %s", site.name, "; ".join(row["updates"]) or "up to date")
            return _finish(row, started)
        row["backup"], row["proof"] = proven_backup(site, store, server, scratch, encryption_key,
                                                    timedelta(minutes=proof_max_age_minutes), installed.core)
        log.info("%s: rollback point %s (%s)", site.name, row["backup"], row["proof"])
        with connected(server) as conn:
            paths = updates.sitemap_paths(conn, config, sitemap_urls)
            before = updates.check_site(conn, config, paths)
            old_core = updates.recorded_core(conn, config)
        shots = Screenshots(config.domain, server.address)
        shots.take("before")
        row["before"] = _pages(before)
        core_changed, done = False, []
        try:
            with connected(server) as conn:
                updates.mark_underway(conn, config, underway_record(row, old_core, pending, paths))
                for p in pending:
                    core_changed = core_changed or p.kind == "core"
                    done.append(updates.apply_update(conn, config, p))
                    log.info("%s: %s", site.name, done[-1])
                kept = _keep_active(conn, config, installed)
                updates.reload_php(conn, config)
                after = updates.check_site(conn, config, paths)
            after = replace(after, screenshot_difference=shots.difference())
            row["after"] = _pages(after)
            row["screenshots"] = shots.note
            row["reasons"] = regressions(before, after, screenshot_threshold=screenshot_threshold) + kept
        except Exception as exc:  # noqa: BLE001 - any failure half-way is rolled back below
            row["reasons"] = [f"the update stopped half-way: {exc}"]
        row["updates"] = done or row["updates"]
        if not row["reasons"]:
            row["state"] = "updated"
            core = next((p.release for p in pending if p.kind == "core"), None)
            if core is not None:
                record_release(site, core.url, core.sha256)
            with connected(server) as conn:
                updates.clear_underway(conn, config)
            return _finish(row, started)
        log.error("%s: %s; rolling back to backup %s", site.name, "; ".join(row["reasons"]), row["backup"])
        try:
            checks, fatals, row["rollback_seconds"] = roll_back(site, store, server, row["backup"], old_core, core_changed,
                                                        encryption_key, paths)
        except Exception as exc:  # noqa: BLE001
            row["state"] = "rollback failed"
            _finish(row, started)
            raise UpdateFailed(f"{site.name}: the update failed ({'; '.join(row['reasons'])}) and so did the "
                               f"rollback to backup {row['backup']}: {exc}") from None
        row["after"] = _pages(checks)
        with connected(server) as conn:
            updates.clear_underway(conn, config)  # rolled back: nothing is left half-way
        still = regressions(replace(before, fatals=fatals), checks)
        row["state"] = "rolled back" if not still else "rollback failed"
        _finish(row, started)
        verdict = ("rolled back to backup %s in %.1f s, and the site answers as before" % (row["backup"], row["rollback_seconds"])
                   if not still else f"rolled back, but the site still differs: {'; '.join(still)}")
        raise UpdateFailed(f"{site.name}: {'; '.join(row['reasons'])}; {verdict}")


def underway_record(row: dict, old_core, pending, paths: list[str]) -> dict:
    """What the host keeps while an update runs: enough for the next run to roll it back."""
    from prefect.runtime import flow_run

    return {"backup": row["backup"], "core_changed": any(p.kind == "core" for p in pending),
            "old_core": {"url": old_core.url, "sha256": old_core.sha256} if old_core is not None else None,
            "paths": paths, "updates": [p.describe() for p in pending], "run": str(flow_run.id or ""),
            "started": datetime.now(UTC).isoformat(timespec="seconds")}


def finish_cut_update(site: WordPressSite, storage, server: Server, left: dict, key_block) -> str:
    """An update of SITE that a cut run left half-way (its record on the host): files and database back to its
    proven backup, checked, the record removed. Raises (the record kept for the next run) if that fails."""
    from pressfleet.plan.wprelease import Recorded

    old_core = Recorded(**left["old_core"]) if left.get("old_core") else None
    checks, _, seconds = roll_back(site, storage, server, left["backup"], old_core, bool(left.get("core_changed")),
                                   key_block, list(left.get("paths") or ["/"]))
    broken = [p for p in checks.pages if not 200 <= p.status < 300]
    if broken:
        raise UpdateFailed(f"{site.name}: an update cut half-way (run {left.get('run') or '?'}) was rolled back to "
                           f"backup {left['backup']}, but {_pages(checks)}")
    with connected(server) as conn:
        updates.clear_underway(conn, site.config())
    return (f"an update cut half-way ({'; '.join(left.get('updates') or [])}, run {left.get('run') or '?'}, started "
            f"{left.get('started', '?')}) was rolled back to backup {left['backup']} in {seconds:.1f} s")


class Screenshots:
    """The home page before and after, taken on the control side; the diff image beside them. A screenshot that
    cannot be taken (no Chromium here, a page that never settles) is noted and judged by the other checks."""

    def __init__(self, domain: str, address: str) -> None:
        self.domain, self.address = domain, address
        self.shots: dict[str, bytes] = {}
        self.note = ""

    def take(self, when: str) -> None:
        try:
            shot = updates.screenshot(self.domain, self.address)
        except Exception as exc:  # noqa: BLE001 - the status and error-log checks still hold
            shot, self.note = None, f"no {when} screenshot: {str(exc).splitlines()[0][:200]}"
        if shot is None and not self.note:
            self.note = f"no screenshot: {updates.CHROMIUM} is not installed on this control machine"
        if shot is not None:
            self.shots[when] = shot

    def difference(self) -> float | None:
        self.take("after")
        if not {"before", "after"} <= set(self.shots):
            return None
        diff = compare(self.shots["before"], self.shots["after"])
        folder = self._folder()
        for name, data in (("before", self.shots["before"]), ("after", self.shots["after"]), ("diff", diff.diff_png)):
            (folder / f"{name}.png").write_bytes(data)
        self.note = f"{diff.share:.1%} of the home page's pixels changed (diff image {folder / 'diff.png'})"
        return diff.share

    def _folder(self):
        from prefect.runtime import flow_run

        from pressfleet.paths import private_dirs, state_dir

        return private_dirs(state_dir() / "reports" / "update-site" / self.domain / str(flow_run.get_id() or "local"))


def _keep_active(conn, config, installed) -> list[str]:
    """Activate again what was active; a plugin that cannot be (it fails to load) is a regression."""
    try:
        updates.keep_active(conn, config, installed)
        return []
    except Exception as exc:  # noqa: BLE001 - WordPress itself failed to load with the new code
        return [f"WordPress could not load to keep the active plugins active: {str(exc)[:300]}"]


def record_release(site: WordPressSite, url: str, sha256: str) -> None:
    """The site's block names the core release now installed, so re-provisioning keeps it (and restore-tests
    install it) rather than refusing the older one the block named."""
    site.release_url, site.release_sha256 = url, sha256
    name = getattr(site, "_block_document_name", None)
    if name and not getattr(site, "_is_anonymous", False):
        site.save(name, overwrite=True)


def _finish(row: dict, started: float) -> dict:
    row["seconds"] = round(time.monotonic() - started, 1)
    if row["state"] in ("updated", "rolled back", "rollback failed"):
        record_change(row["site"], "update-site", f"{row['state']}: {'; '.join(row['updates'])}")
    lines = [f"# Update of {row['site']}: {row['state']}", "",
             *[f"- {u}" for u in row["updates"]],
             *([f"- rollback point: backup {row['backup']} ({row['proof']})"] if row["backup"] else []),
             *([f"- before: {row['before']}"] if row["before"] else []),
             *([f"- after: {row['after']}"] if row["after"] else []),
             *([f"- screenshots: {row['screenshots']}"] if row.get("screenshots") else []),
             *[f"- **failed**: {r}" for r in row["reasons"]],
             *([f"- rollback took {row['rollback_seconds']} s"] if row["rollback_seconds"] is not None else []),
             f"- took {row['seconds']} s"]
    create_markdown_artifact(key="update-site", markdown="\n".join(lines), description=f"update-site {row['site']}")
    return row


def _host(site) -> str:
    s = server_of(site)
    return host_lock_name(s.address, s.port).removeprefix("pressfleet-host-")


def _run_wave_here(wave: list[WordPressSite], params: dict) -> list[dict]:
    """A wave in this process: its sites at once, each its own update-site run (the host limits hold them)."""
    def one(site):
        try:
            return update_site(site=site, **params)
        except Exception as exc:  # noqa: BLE001 - reported in the wave's table
            return {"site": site.name, "state": "failed", "reasons": [str(exc)], "updates": []}

    with ThreadPoolExecutor(max_workers=max(1, min(len(wave), 4))) as pool:
        futures = [pool.submit(copy_context().run, one, s) for s in wave]
        return [f.result() for f in futures]


@flow(name="update-sites")
def update_sites(
    sites: Optional[list[WordPressSite]] = None,
    select: list[str] = [],  # noqa: B006 - a form default, never mutated
    components: list[Component] = ["core", "plugins", "themes"],  # noqa: B006 - a form default, never mutated
    waves: str = "1,25%,100%",
    approve_waves: bool = False,
    catalog: Optional[ReleaseCatalog] = None,
    storage: Optional[AnyStorage] = None,
    encryption_key: Optional[Secret] = None,
    scratch: Optional[Server] = None,
    sitemap_urls: int = 5,
    levels: Optional[list[Level]] = None,
    deployment: Optional[str] = UPDATE_DEPLOYMENT,
) -> dict:
    """Update the fleet (or the picked sites) in waves, each site as `update-site` does.

    Sites: `sites`, or `select` (site names or domains, `tag:T`, `server:S`, `template:T`, `all`), or left
    both empty every saved site; a selector that matches nothing is refused before anything runs.
    `waves` gives each wave's cumulative reach: `1,25%,100%` updates one site (the canary), then up to a
    quarter of the fleet, then the rest. A wave in which any site failed (and was rolled back) stops the run:
    later waves never start and the run says which site and why. With `approve_waves` the run pauses after
    every wave but the last until a person chooses continue or stop in the Prefect UI. `levels` as for
    update-site (only releases of those levels). Each site is a child run
    of the `deployment` (shared by every worker); left empty, the sites run in this process.
    """
    log = get_run_logger()
    targets = sites if sites is not None else select_saved(select) if select else saved_sites()
    if not targets:
        return nothing_to_do("update-sites")
    plan_waves([s.name for s in targets], waves)  # bad waves: refused before any site is touched
    load_catalog(catalog)  # no catalogue: refused before any site is touched
    plan = plan_waves([s.name for s in targets], waves)
    by_name = {s.name: s for s in targets}
    params = {"components": list(components), "sitemap_urls": sitemap_urls,
              **({"levels": list(levels)} if levels is not None else {})}
    refs = {k: v for k, v in {"catalog": catalog, "storage": storage, "encryption_key": encryption_key,
                              "scratch": scratch}.items() if v is not None}
    rows, stopped = [], ""
    for number, names in enumerate(plan, 1):
        wave = [by_name[n] for n in names]
        log.info("wave %d of %d: %s", number, len(plan), ", ".join(names))
        if deployment:
            children = site_children(wave, common={**params, **{k: block_ref(v) for k, v in refs.items()}}, host_of=_host)
            outcomes = fan_out(f"update-sites-wave{number}", deployment, children, artifact_key="update-sites-wave")
            results = [{"site": o.label, "state": "updated" if o.ok else o.state.lower(), "reasons": [] if o.ok else [o.message],
                        "updates": []} for o in outcomes]
        else:
            results = _run_wave_here(wave, {**params, **refs})
        rows += [{**r, "wave": number} for r in results]
        failed = [r for r in results if r["state"] not in ("updated", "up to date")]
        if failed:
            stopped = (f"wave {number} stopped the update: " + "; ".join(
                f"{r['site']} {r['state']} ({'; '.join(r.get('reasons') or [])})" for r in failed)
                + (f"; waves {number + 1}-{len(plan)} did not start" if number < len(plan) else ""))
            break
        if approve_waves and number < len(plan):
            from prefect.flow_runs import pause_flow_run

            answer = pause_flow_run(wait_for_input=WaveDecision, timeout=24 * 3600)
            if answer.decision == "stop":
                stopped = f"stopped by a person after wave {number}: waves {number + 1}-{len(plan)} did not start"
                break
    table = [{"wave": r["wave"], "site": r["site"], "state": r["state"], "updates": "; ".join(r.get("updates") or []),
              "why": "; ".join(r.get("reasons") or [])} for r in rows]
    create_table_artifact(key="update-sites", table=table, description=stopped or f"{len(rows)} sites in {len(plan)} waves")
    if stopped:
        raise UpdateFailed(stopped)
    return {"waves": plan, "sites": rows}
