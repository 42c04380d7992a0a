"""`make demo`: the local Prefect stack, a lab host, and the main job run through its deployment, as the UI would."""

from __future__ import annotations

import time
from typing import Callable

from pressfleet.lab import hosts as lab
from pressfleet.stack import control as stack


def block_ref(block) -> dict:
    """How a deployment parameter refers to a saved block (what the UI's block picker sends)."""
    return {"$ref": {"block_document_id": str(block._block_document_id)}}


def run_deployment_and_wait(name: str, parameters: dict, *, timeout: float = 900):
    """Trigger deployment NAME, wait for its end; return (flow_run, result). Raises if it did not complete."""
    import time

    from prefect.deployments import run_deployment

    for attempt in range(4):
        flow_run = run_deployment(name, parameters=parameters, timeout=timeout)
        state = flow_run.state
        # A scheduled run of the same deployment (collect-metrics every 5 minutes, limit 1, CANCEL_NEW) holds
        # the slot: the demo's run was cancelled, not failed. It waits for that run and asks again.
        if state is not None and state.is_cancelled() and "concurrency" in (state.message or "").lower() and attempt < 3:
            time.sleep(15)
            continue
        break
    if state is None or not state.is_completed():
        raise RuntimeError(f"deployment {name} ended {state.name if state else 'without a state'}: {state.message if state else ''}")
    return flow_run, state.result()


DEMO_DOMAIN = "blog.lab.test"


def run(host_name: str = "web1", *, log: Callable[[str], None] = print) -> dict:
    started = time.monotonic()
    cfg = stack.StackConfig()
    status = stack.up(cfg, log=log)
    stack.use_in_this_process(cfg, api=True)

    from blocks.server import Server
    from pressfleet.lab.blocks import save_lab_server_block

    t = time.monotonic()
    host = lab.up(host_name, log=log)
    block_name = save_lab_server_block(host)
    log(f"lab host {host.name} up at {host.address} (host key {host.fingerprint}); Server block {block_name!r} "
        f"[{time.monotonic() - t:.1f} s]")

    t = time.monotonic()
    server = Server.load(block_name)
    flow_run, facts = run_deployment_and_wait("host-facts/host-facts", {"server": block_ref(server)})
    log(f"host-facts ran through its deployment: flow run {flow_run.name} Completed [{time.monotonic() - t:.1f} s]")

    from blocks.site import WordPressSite
    from pressfleet.fleet import sites
    from pressfleet.fleet.secrets import secret_block_name

    t = time.monotonic()
    release = lab.ensure_mirror()
    name = sites.claim_site_name(DEMO_DOMAIN, None, sites.saved_sites())[0]  # blog_lab_test, or as saved before
    try:  # a demo run before may have updated core: the block names the release installed now
        saved = WordPressSite.load(sites.site_block_name(name))
        release = {"url": saved.release_url, "sha256": saved.release_sha256}
    except ValueError:
        pass
    site = WordPressSite(
        name=name, domain=DEMO_DOMAIN, admin_email=f"admin@{DEMO_DOMAIN}",
        title="pressfleet demo", tls_mode="self-signed", release_url=release["url"], release_sha256=release["sha256"],
        server=server,
    )
    site.save(sites.site_block_name(site.name), overwrite=True)
    site = WordPressSite.load(sites.site_block_name(site.name))
    prov_run, report = run_deployment_and_wait(
        "provision-wordpress/provision-wordpress", {"server": block_ref(server), "site": block_ref(site)})
    log(f"provision-wordpress ran through its deployment: flow run {prov_run.name} Completed, "
        f"{'changed' if report.changed else 'nothing to change'} [{time.monotonic() - t:.1f} s]")

    from pressfleet.backup.targets import default_storage, ensure_key_block

    t = time.monotonic()
    key_note = ensure_key_block()  # backups are encrypted: a run without a key is refused
    log(key_note)
    storage = default_storage()
    backup_run, [backup] = run_deployment_and_wait(
        "backup-site/nightly-backup", {"site": block_ref(site), "storage": block_ref(storage)})
    log(f"backup-site ran through its deployment: {backup['kind']} backup {backup['backup']}, "
        f"{backup['bytes'] / 2**20:.1f} MiB in {backup['seconds']:.1f} s [{time.monotonic() - t:.1f} s]")
    t = time.monotonic()
    test_run, [proof] = run_deployment_and_wait(
        "restore-test/nightly-restore-test", {"site": block_ref(site), "storage": block_ref(storage)})
    log(f"restore-test ran through its deployment: backup {proof['backup']} verified on {proof['target']} "
        f"in {proof['seconds']:.1f} s [{time.monotonic() - t:.1f} s]")

    from blocks.catalog import DEFAULT_CATALOG_BLOCK, ReleaseCatalog

    t = time.monotonic()
    ReleaseCatalog(source="file", file=str(lab.ensure_catalogue())).save(DEFAULT_CATALOG_BLOCK, overwrite=True)
    check_run, [row] = run_deployment_and_wait("check-updates/check-updates", {"sites": [block_ref(site)]})
    pending = row["pending"]
    log(f"check-updates ran through its deployment: {'; '.join(pending) or 'up to date'} "
        f"(catalogue: Release Catalog block {DEFAULT_CATALOG_BLOCK!r}, the lab mirror's real releases) "
        f"[{time.monotonic() - t:.1f} s]")
    update_line = f"{DEMO_DOMAIN} is up to date with the catalogue"
    if pending:
        t = time.monotonic()
        update_run, _ = run_deployment_and_wait(
            "update-sites/update-sites", {"sites": [block_ref(site)], "waves": "1", "storage": block_ref(storage)},
            timeout=1800)
        update_line = f"{status.ui_url}/runs/flow-run/{update_run.id} ({'; '.join(pending)})"
        log(f"update-sites ran through its deployment: {'; '.join(pending)} [{time.monotonic() - t:.1f} s]")

    from flows.fleet_overview import overview_path
    from pressfleet.analysis.demo import fill

    t = time.monotonic()
    collect_run, collected = run_deployment_and_wait(
        "collect-metrics/collect-metrics", {"servers": [block_ref(server)], "sites": [block_ref(site)], "storage": block_ref(storage)})
    filled = fill()
    fc_run, forecast = run_deployment_and_wait("forecast-capacity/forecast-capacity", {})
    log(f"collect-metrics ran through its deployment ({collected.stored} points stored from {host.name}); "
        f"metrics store {filled['url']}: {filled['written']} generated points written "
        f"({'already there' if filled['already'] else 'new'}); forecast-capacity ran through its deployment "
        f"[{time.monotonic() - t:.1f} s]")

    t = time.monotonic()
    alert = alert_demo(cfg, server, site, log=log)
    log(f"alerts: nginx stopped on {host.name}, the site-down mail arrived {alert['fired_after']:.0f} s later; "
        f"nginx started, the resolved mail {alert['resolved_after']:.0f} s after that [{time.monotonic() - t:.1f} s]")

    disks = ", ".join(f"{d.mount} {d.size_bytes / 2**30:.1f} GiB" for d in facts.disks[:3])
    passed = sum(1 for c in report.checks if c["passed"])
    print(
        f"\nPrefect UI:   {status.ui_url}\n"
        f"host-facts:   {status.ui_url}/runs/flow-run/{flow_run.id}\n"
        f"host:         {facts.hostname} ({host.address}), {facts.os_pretty_name}, kernel {facts.kernel}\n"
        f"CPUs / RAM:   {facts.cpus} / {facts.mem_total_bytes / 2**30:.1f} GiB; disks: {disks}\n"
        f"provision:    {status.ui_url}/runs/flow-run/{prov_run.id} ({passed}/{len(report.checks)} checks passed)\n"
        f"site:         {report.site_url}  (from this machine: "
        f"curl -k --resolve {DEMO_DOMAIN}:443:{host.address} {report.site_url})\n"
        f"admin:        {site.admin_user}; password in Secret block {secret_block_name(site.name, 'admin-password')!r}\n"
        f"backup:       {status.ui_url}/runs/flow-run/{backup_run.id} ({backup['kind']} {backup['backup']} in "
        f"{storage.path}); verified by {status.ui_url}/runs/flow-run/{test_run.id}\n"
        f"{key_note}\n"
        f"updates:      {update_line}\n"
        f"forecast:     {status.ui_url}/runs/flow-run/{fc_run.id}; report {forecast.markdown}\n"
        f"overview:     {overview_path()} (artifact 'fleet-overview'; `.venv/bin/pressfleet status` in a terminal)\n"
        f"alerts:       the watcher (pid {stack.status(cfg).pids.get('watcher')}) mails {alert['to']} through the "
        f"local mailbox; mails in {alert['folder']}; `.venv/bin/pressfleet alerts list`\n"
        f"demo took {time.monotonic() - started:.1f} s; `make down` stops everything."
    )
    return {"flow_run_id": str(flow_run.id), "facts": facts, "provision_run_id": str(prov_run.id), "report": report,
            "backup": backup, "restore_test": proof, "forecast": forecast.markdown}


DEMO_MAIL_TO = "ops@lab.test"


def alert_demo(cfg, server, site, *, log: Callable[[str], None] = print, timeout: float = 180) -> dict:
    """The watcher's round trip on the demo site: a mailbox on this machine (port PRESSFLEET_DEMO_SMTP_PORT, else
    8025; mails kept in `<state>/mail`) as the `demo-mailbox` email channel of the default policy's level 1;
    nginx stopped on the host until the site-down mail arrives (printed), started again until the resolved mail
    arrives (printed). Returns the seconds each took."""
    import os

    from blocks.channels import EmailChannel
    from pressfleet.paths import private_dirs, state_dir
    from pressfleet.ssh import remote
    from pressfleet.stack.mailbox import read_mail
    from pressfleet.watch import config
    from pressfleet.watch.watcher import read_status

    port = int(os.environ.get("PRESSFLEET_DEMO_SMTP_PORT", "8025"))
    folder = state_dir() / "mail"
    private_dirs(folder)
    stack.start_mailbox(cfg, port, folder)
    EmailChannel(to=[DEMO_MAIL_TO], smtp_host="127.0.0.1", smtp_port=port, security="none").save(
        "demo-mailbox", overwrite=True)
    config.join_default("email-channel/demo-mailbox")
    config.sync()
    pid = stack.start_watcher(cfg)
    domain = site.config().domain

    def wait(pred, what: str) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = [m for m in read_mail(folder, since) if pred(m)]
            if got:
                return got[0]
            time.sleep(1)
        raise RuntimeError(f"no {what} mail within {timeout:.0f} s (the watcher's log: {cfg.log_file(stack.WATCHER)})")

    from pressfleet.alerts.store import AlertStore

    def ready() -> bool:  # this watcher's round saw the site up, and no alert of it is still healing
        st = read_status() or {}
        healthy = domain in st.get("watched", ()) and domain not in st.get("down", ()) and st.get("pid") == pid
        return healthy and not [a for a in AlertStore().alerts() if a.resource == f"pressfleet.site.{site.name}"
                                and a.rule == "site-down"]

    deadline = time.monotonic() + 150  # the next round loads the site just saved; an old alert resolves in 55 s
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the watcher (pid {pid}) has not seen {domain} healthy: {cfg.log_file(stack.WATCHER)}")
        time.sleep(1)
    ended = AlertStore().end_silences_of("site", site.name)  # the update's window: over, for the demo
    if ended:
        log(f"alerts: ended {ended} maintenance silence(s) of {site.name} (the update's, in its grace period)")
    since = time.time()
    with server.connect() as conn:
        remote.run(conn, ["systemctl", "stop", "nginx"], timeout=60)
        try:
            log(f"alerts: nginx stopped on {server.address}; waiting for the watcher's site-down mail")
            fired = wait(lambda m: "site-down" in m["subject"] and domain in m["subject"]
                         and not m["subject"].startswith("[RESOLVED]"), "site-down")
        finally:
            remote.run(conn, ["systemctl", "start", "nginx"], timeout=60)
    up_at = time.time()
    print(f"\n--- mail to {fired['to']} ---\nSubject: {fired['subject']}\n{fired['body']}\n", flush=True)
    log("alerts: nginx started again; waiting for the resolved mail (after 55 s of health)")
    resolved = wait(lambda m: m["subject"].startswith("[RESOLVED]") and domain in m["subject"], "resolved")
    print(f"\n--- mail to {resolved['to']} ---\nSubject: {resolved['subject']}\n{resolved['body']}\n", flush=True)
    return {"fired_after": fired["at"] - since, "resolved_after": resolved["at"] - up_at, "folder": str(folder),
            "to": DEMO_MAIL_TO}


def fill_and_forecast(store_url: str | None = None) -> dict:
    """Fill the store with generated history (idempotent) and run the forecast-capacity flow.

    Returns where the report is: {"report": markdown path, "directory", "charts", "attention": [...],
    "written": points newly stored, "store": URL}.
    """
    from pressfleet.analysis.demo import fill

    filled = fill(store_url)
    from flows.forecast_capacity import forecast_capacity

    res = forecast_capacity(store_url=store_url)
    return {"report": res.markdown, "directory": res.directory, "charts": res.charts,
            "attention": [f"{r.host} {r.resource}: {r.status}: {r.advice}" for r in res.attention],
            "written": filled["written"], "store": filled["url"]}
