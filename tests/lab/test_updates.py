"""Safe updates on real lab hosts (issue 11): four sites on WordPress 6.1.9 (Debian 12's) updated to Debian 13's
release, with akismet and the twentytwentythree theme, in two waves; then a plugin release that fatals, written by
this test, rolled back on the canary while the second wave never starts.

The catalogue is the lab mirror's (real releases only, `pressfleet.lab.hosts.ensure_catalogue`); the test's own
plugin is added as catalogue entries. The sites are on the session's two stack hosts (two per host); every
restore-test runs on a third stack host given as the scratch server. The tests run in order on the same sites.
"""

from __future__ import annotations

import io
import subprocess
import zipfile

import pytest

from pressfleet.lab import hosts as lab
from pressfleet.ssh.remote import run
from tests.conftest import TEST_PREFIX, connect_lab, make_site

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1500)]

SITES = [(f"u{i}", f"u{i}.lab.test") for i in range(1, 5)]
PLUGIN = "pf-canary"
GOOD = f"""<?php
/**
 * Plugin Name: pressfleet canary
 * Version: {{version}}
 */
function pf_canary_footer() {{ echo '<!-- pf-canary {{version}} -->'; }}
add_action('wp_footer', 'pf_canary_footer');
"""
FATAL = GOOD + "pf_canary_this_function_does_not_exist();\n"
# answers 200 with no PHP error, but paints every page black: only the screenshot check can see it
BLACK = GOOD + "add_action('wp_head', function () { echo '<style>*{background:#000 !important;color:#000 !important}</style>'; });\n"


def _plugin_zip(version: str, body: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{PLUGIN}/{PLUGIN}.php", body.replace("{version}", version))
    return buf.getvalue()


_publish = lab.publish_component  # a file of this module's on the lab mirror: its catalogue entry's url and sha256


def https_status(host, domain: str, path: str = "/") -> str:
    return subprocess.run(["curl", "-ksS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30",
                           "--resolve", f"{domain}:443:{host.address}", f"https://{domain}{path}"],
                          capture_output=True, text=True, timeout=60).stdout


@pytest.fixture(scope="module")
def fleet(stack_hosts, lab_pool, prefect_harness, tmp_path_factory):
    """Four sites provisioned on 6.1.9 (two per stack host, the hosts in parallel), each with the test's plugin
    1.0 installed and active and a post written; a local storage; the lab catalogue; a scratch server."""
    from concurrent.futures import ThreadPoolExecutor
    from contextvars import copy_context

    from blocks.catalog import ReleaseCatalog
    from blocks.storage import LocalStorage
    from flows.provision_wordpress import provision_wordpress
    from pressfleet.lab.blocks import server_for
    from pressfleet.updates.catalog import load_file
    from tasks import updates
    from tasks.wordpress import bootstrap

    lab_catalogue = lab.ensure_catalogue()
    good = _publish(f"{TEST_PREFIX}{PLUGIN}.1.0.zip", _plugin_zip("1.0", GOOD))
    servers = [server_for(h) for h in stack_hosts]
    sites = []
    for i, (name, domain) in enumerate(SITES):
        site = make_site(name=name, domain=domain, server=servers[i % 2], tags=["canary"] if i == 0 else ["wave"])
        sites.append((stack_hosts[i % 2], site))

    def provision_host(index: int) -> None:
        for host, site in sites[index::2]:
            provision_wordpress(server=site.server, site=site)
            conn = connect_lab(host)
            try:
                config = site.config()
                updates.ensure_bootstrap(conn)
                updates.install_component(conn, config, "plugin", PLUGIN, good["url"], good["sha256"])
                bootstrap(conn, config, "activate", {"plugins": [PLUGIN]})
                run(conn, ["runuser", "-u", config.user, "--", "php", "-r",
                           f"define('ABSPATH', '{config.web_root}/'); $_SERVER['HTTP_HOST'] = '{config.domain}';"
                           "require ABSPATH . 'wp-load.php'; wp_insert_post(['post_title' => 'Written before the "
                           "update', 'post_status' => 'publish']);"])
            finally:
                conn.close()

    with ThreadPoolExecutor(2) as pool:
        for f in [pool.submit(copy_context().run, provision_host, i) for i in range(2)]:
            f.result()
    scratch = server_for(lab_pool.get("s3", stack=True))
    storage = LocalStorage(path=str(tmp_path_factory.mktemp("update-backups")), encryption="none")
    entries = [r.__dict__ for r in load_file(lab_catalogue).releases]
    yield {"sites": sites, "storage": storage, "scratch": scratch,
           "catalog": ReleaseCatalog(source="file", file=str(lab_catalogue)),
           "releases": load_file(lab_catalogue), "entries": entries, "good": good}


def _inventory(host, site):
    from tasks import updates

    conn = connect_lab(host)
    try:
        return updates.inventory(conn, site.config())
    finally:
        conn.close()


def test_four_sites_are_updated_in_two_waves_with_a_proven_backup_each(fleet):
    from flows.update_sites import update_sites
    from pressfleet.backup.catalog import list_backups

    releases = fleet["releases"]
    core = releases.newest("core", "wordpress").version
    before = {site.name: _inventory(host, site) for host, site in fleet["sites"]}
    assert {i.core for i in before.values()} == {"6.1.9"}
    assert core != "6.1.9"

    result = update_sites(sites=[s for _, s in fleet["sites"]], waves="2,100%", catalog=fleet["catalog"],
                          storage=fleet["storage"], scratch=fleet["scratch"], deployment=None)

    assert result["waves"] == [["u1", "u2"], ["u3", "u4"]]
    assert {r["site"]: r["state"] for r in result["sites"]} == {n: "updated" for n, _ in SITES}, result["sites"]
    for host, site in fleet["sites"]:
        now = _inventory(host, site)
        assert now.core == core
        assert now.plugins["akismet"] == releases.newest("plugin", "akismet").version
        assert now.themes["twentytwentythree"] == releases.newest("theme", "twentytwentythree").version
        assert now.plugins[PLUGIN] == "1.0" and PLUGIN in now.active_plugins  # not in the catalogue: left alone
        assert set(now.active_plugins) >= set(before[site.name].active_plugins)
        assert https_status(host, site.domain) == "200"
        assert site.release_sha256 == releases.newest("core", "wordpress").sha256  # the block names the new core
        [proof] = list(list_backups(fleet["storage"].store(), site.name))
        assert proof.verified and proof.manifest.wordpress_version == "6.1.9"  # proven before the update
        row = next(r for r in result["sites"] if r["site"] == site.name)
        assert any(u.startswith("WordPress 6.1.9 -> ") for u in row["updates"]), row
        assert "of the home page's pixels changed" in row["screenshots"], row  # both screenshots were taken
        print(site.name, row["screenshots"], row["seconds"], "s")


def test_a_plugin_release_that_fatals_is_rolled_back_and_the_next_wave_never_starts(fleet):
    from blocks.catalog import ReleaseCatalog
    from flows.update_sites import UpdateFailed, update_sites
    from pressfleet.backup.catalog import list_backups

    bad = _publish(f"{TEST_PREFIX}{PLUGIN}.2.0.zip", _plugin_zip("2.0", FATAL))
    catalog = ReleaseCatalog(source="entries", entries=[
        *fleet["entries"], {"kind": "plugin", "slug": PLUGIN, "version": "1.0", **fleet["good"]},
        {"kind": "plugin", "slug": PLUGIN, "version": "2.0", **bad}])
    counts = {s.name: len(list(list_backups(fleet["storage"].store(), s.name))) for _, s in fleet["sites"]}

    with pytest.raises(UpdateFailed) as failed:
        update_sites(sites=[s for _, s in fleet["sites"]], components=["plugins"], waves="1,100%", catalog=catalog,
                     storage=fleet["storage"], scratch=fleet["scratch"], deployment=None)

    message = str(failed.value)
    assert "wave 1 stopped the update" in message and "waves 2-2 did not start" in message, message
    assert "u1" in message and "rolled back to backup" in message and "answers as before" in message, message
    assert "answered 500" in message or "fatal" in message.lower(), message
    for host, site in fleet["sites"]:
        now = _inventory(host, site)
        assert now.plugins[PLUGIN] == "1.0" and PLUGIN in now.active_plugins, (site.name, now)
        assert https_status(host, site.domain) == "200"
        after = len(list(list_backups(fleet["storage"].store(), site.name)))
        # the canary took a fresh, proven backup (the core changed since the last one); the others were not touched
        assert after == counts[site.name] + (1 if site.name == "u1" else 0), (site.name, counts, after)


def test_a_release_that_only_looks_broken_is_caught_by_the_screenshot_and_rolled_back(fleet):
    from blocks.catalog import ReleaseCatalog
    from flows.update_sites import UpdateFailed, update_site

    host, site = fleet["sites"][1]
    black = _publish(f"{TEST_PREFIX}{PLUGIN}.3.0.zip", _plugin_zip("3.0", BLACK))
    catalog = ReleaseCatalog(source="entries", entries=[{"kind": "plugin", "slug": PLUGIN, "version": "3.0", **black}])

    with pytest.raises(UpdateFailed) as failed:
        update_site(site=site, components=["plugins"], catalog=catalog, storage=fleet["storage"],
                    scratch=fleet["scratch"])

    message = str(failed.value)
    assert "the home page looks different" in message and "answers as before" in message, message
    assert "answered" not in message and "fatal" not in message.lower(), message  # nothing else noticed it
    assert _inventory(host, site).plugins[PLUGIN] == "1.0"
    assert https_status(host, site.domain) == "200"


def test_the_overview_lists_every_site_after_a_collection_round_and_chromium_finds_them(fleet):
    from playwright.sync_api import sync_playwright

    from flows.check_updates import check_updates
    from flows.collect_metrics import collect_metrics
    from flows.fleet_overview import ARTIFACT_KEY, overview_path
    from prefect.artifacts import Artifact
    from tasks.updates import CHROMIUM

    sites = [s for _, s in fleet["sites"]]
    core = fleet["releases"].newest("core", "wordpress").version
    rows = check_updates(sites=sites, catalog=fleet["catalog"])
    assert [r["pending"] for r in rows] == [[]] * len(sites), rows  # all four were updated above
    overview_path().unlink(missing_ok=True)

    collect_metrics(servers=list({s.server.address: s.server for s in sites}.values()), sites=sites,
                    storage=fleet["storage"])

    artifact = Artifact.get(ARTIFACT_KEY)
    assert artifact is not None and all(s.domain in artifact.data for s in sites), artifact
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(overview_path().as_uri())
            found = {r.get_attribute("data-site"): r.inner_text() for r in page.query_selector_all("tr.site")}
        finally:
            browser.close()
    assert set(found) == {s.domain for s in sites}, found
    for s in sites:
        cells = found[s.domain]
        assert core in cells and "up to date" in cells and "verified" in cells, cells
        assert "update-site" in cells, cells  # the last run that changed it


def test_bulk_operations_report_every_site_and_a_failed_one_fails_the_run_after_the_others(fleet):
    from flows.bulk import AdminUser, BulkFailed, bulk
    from prefect.artifacts import Artifact
    from tests.conftest import unreachable_server

    sites = [s for _, s in fleet["sites"]]
    rows = bulk(operation="set", sites=sites, setting="wp:blogdescription=Managed by pressfleet")
    assert [r["state"] for r in rows] == ["done"] * 4 and all("blogdescription set" in r["detail"] for r in rows), rows
    again = bulk(operation="set", sites=sites[:1], setting="wp:blogdescription=Managed by pressfleet")
    assert "already" in again[0]["detail"], again  # a second run changes nothing

    added = bulk(operation="admin-user", sites=sites[:2], admin=AdminUser(login="ops2", email="ops2@lab.test"))
    assert all(r["detail"].startswith("added administrator ops2") for r in added), added
    removed = bulk(operation="admin-user", sites=sites[:2], admin=AdminUser(action="remove", login="ops2"))
    assert all(r["detail"] == "removed ops2 (posts to admin)" for r in removed), removed

    ghost = make_site(name="ghost", domain="ghost.lab.test", server=unreachable_server())
    with pytest.raises(BulkFailed) as failed:
        bulk(operation="purge-cache", sites=[*sites, ghost])
    assert "1 of 5 sites failed: ghost:" in str(failed.value), failed.value
    table = Artifact.get("bulk")
    assert table is not None and table.data.count('"done"') == 4 and "ghost" in table.data, table


def test_a_site_template_reaches_every_site_made_from_it_and_a_site_keeps_its_own_options(fleet):
    from blocks.catalog import ReleaseCatalog
    from blocks.template import SiteTemplate
    from flows.bulk import bulk
    from tests.conftest import save_copy

    (h3, u3), (h4, u4) = fleet["sites"][2], fleet["sites"][3]
    catalog_block = f"{TEST_PREFIX}catalog"
    ReleaseCatalog(source="file", file=fleet["catalog"].file).save(catalog_block, overwrite=True)
    template = f"{TEST_PREFIX}shop"
    SiteTemplate(options={"page_cache_ttl_s": 600}, themes=["twentytwentyfour"], tags=["shop"],
                 admins=[{"login": "shopops", "email": "shopops@lab.test"}],
                 catalog=catalog_block).save(template, overwrite=True)
    own = u4.model_copy(update={"page_cache_ttl_s": 1200})
    made = [save_copy(u3.model_copy(update={"template": template}), f"{TEST_PREFIX}site-u3"),
            save_copy(own.model_copy(update={"template": template, "overrides": ["page_cache_ttl_s"]}),
                      f"{TEST_PREFIX}site-u4")]

    def ttl(host, site) -> str:
        conn = connect_lab(host)
        try:
            vhost = run(conn, ["cat", site.config().nginx_vhost_path]).stdout
        finally:
            conn.close()
        return next(line.split()[-1] for line in vhost.splitlines() if "fastcgi_cache_valid 200 301" in line)

    assert ttl(h3, u3) == ttl(h4, u4) == "3600s;"  # as provisioned, before they were made from the template
    rows = bulk(operation="reprovision", select=[f"template:{template}"])
    assert sorted(r["site"] for r in rows) == ["u3", "u4"] and all(r["state"] == "done" for r in rows), rows
    assert ttl(h3, u3) == "600s;" and ttl(h4, u4) == "1200s;"  # the template's, but u4 sets its own
    for host, site in ((h3, u3), (h4, u4)):
        assert _inventory(host, site).themes["twentytwentyfour"] == "1.3"
    from flows.bulk import AdminUser

    again = bulk(operation="admin-user", sites=[u3, u4], admin=AdminUser(login="shopops", email="shopops@lab.test"))
    assert [r["detail"] for r in again] == ["shopops is already an administrator"] * 2, again  # the template's

    assert {s.name for s in made} == {"u3", "u4"}


def test_the_update_policy_installs_a_security_release_itself_and_asks_a_person_about_a_major_one(fleet):
    """auto-update on u1 (the default policy) and u2 (its own: security releases never): the plugin's security
    release goes onto u1 alone while the run pauses for approval of its major release; approved in the run's
    input (as the Prefect UI sends it), the major release goes onto both."""
    from blocks.catalog import ReleaseCatalog
    from flows.auto_update import auto_update
    from prefect.artifacts import Artifact
    from prefect.flow_runs import resume_flow_run
    from pressfleet.updates.policy import UpdatePolicy

    (h1, u1), (h2, u2) = fleet["sites"][:2]
    fix = _publish(f"{TEST_PREFIX}{PLUGIN}.1.0.1.zip", _plugin_zip("1.0.1", GOOD))
    major = _publish(f"{TEST_PREFIX}{PLUGIN}.4.0.zip", _plugin_zip("4.0", GOOD))
    catalog = ReleaseCatalog(source="entries", entries=[
        *fleet["entries"], {"kind": "plugin", "slug": PLUGIN, "version": "1.0", **fleet["good"]},
        {"kind": "plugin", "slug": PLUGIN, "version": "1.0.1", "security": True, **fix},
        {"kind": "plugin", "slug": PLUGIN, "version": "4.0", **major}])
    strict = u2.model_copy(update={"update_policy": UpdatePolicy(security="never")})
    box: dict = {}
    worker = _in_thread(lambda: auto_update(sites=[u1, strict], waves="100%", catalog=catalog, storage=fleet["storage"],
                                            scratch=fleet["scratch"], deployment=None, approval_timeout_minutes=15), box)
    paused = [_paused_run("auto-update", worker, box)]
    # while it waits: the security release is on u1 only, the major release on neither
    assert _inventory(h1, u1).plugins[PLUGIN] == "1.0.1" and _inventory(h2, u2).plugins[PLUGIN] == "1.0"
    asked = Artifact.get("auto-update-approval")
    # asked as the sites are now: u1 from the security release it just got, u2 from the release it kept
    assert asked is not None and f"plugin {PLUGIN} 1.0.1 -> 4.0" in asked.data and f"{PLUGIN} 1.0 -> 4.0" in asked.data, asked.data

    resume_flow_run(paused[0].id, run_input={"decision": "approve"})
    worker.join(600)
    assert "result" in box, box
    assert box["result"]["decision"] == "approve"
    for host, site in ((h1, u1), (h2, u2)):
        assert _inventory(host, site).plugins[PLUGIN] == "4.0"
        assert https_status(host, site.domain) == "200"


def _paused_run(flow_name: str, worker, box: dict):
    """The PAUSED run of FLOW_NAME that WORKER (a thread running it) waits in, within 10 minutes."""
    import time

    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowRunFilter

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and worker.is_alive():
        with get_client(sync_client=True) as client:
            paused = client.read_flow_runs(flow_filter=FlowFilter(name={"any_": [flow_name]}),
                                           flow_run_filter=FlowRunFilter(state={"type": {"any_": ["PAUSED"]}}))
        if paused:
            return paused[0]
        time.sleep(1)
    raise AssertionError(f"no paused {flow_name} run: {box}")


def _in_thread(call, box: dict):
    import threading
    from contextvars import copy_context

    def body() -> None:
        try:
            box["result"] = call()
        except Exception as exc:  # noqa: BLE001 - the test's assertions say what happened
            box["error"] = exc

    worker = threading.Thread(target=copy_context().run, args=(body,), daemon=True)
    worker.start()
    return worker


def test_waves_that_wait_for_approval_pause_and_a_person_stopping_them_stops_the_run(fleet):
    from flows.update_sites import UpdateFailed, update_sites
    from prefect.flow_runs import resume_flow_run

    sites = [s for _, s in fleet["sites"][2:]]
    box: dict = {}
    worker = _in_thread(lambda: update_sites(sites=sites, waves="1,100%", approve_waves=True, catalog=fleet["catalog"],
                                             storage=fleet["storage"], scratch=fleet["scratch"], deployment=None), box)
    run = _paused_run("update-sites", worker, box)
    assert "result" not in box and "error" not in box  # waiting after the first wave
    resume_flow_run(run.id, run_input={"decision": "stop"})
    worker.join(300)
    assert isinstance(box.get("error"), UpdateFailed), box
    assert "stopped by a person after wave 1: waves 2-2 did not start" in str(box["error"])


def test_an_update_cut_half_way_is_found_and_rolled_back_by_the_next_run(fleet):
    """A run that died after swapping in a plugin's new files (its record left on the host, as mark_underway
    writes it) is rolled back to its backup by the next update of the site before anything else."""
    from blocks.catalog import ReleaseCatalog
    from flows.bulk import bulk
    from flows.update_sites import underway_record, update_site
    from pressfleet.backup.catalog import list_backups
    from pressfleet.updates.plan import Pending
    from pressfleet.updates.catalog import release
    from tasks import updates

    host, site = fleet["sites"][3]
    config = site.config()
    bulk(operation="backup", sites=[site], storage=fleet["storage"])
    backup = list(list_backups(fleet["storage"].store(), site.name))[-1].manifest.backup_id
    half = _publish(f"{TEST_PREFIX}{PLUGIN}.5.0.zip", _plugin_zip("5.0", FATAL))
    conn = connect_lab(host)
    try:
        old_core = updates.recorded_core(conn, config)
        new = release({"kind": "plugin", "slug": PLUGIN, "version": "5.0", **half})
        updates.mark_underway(conn, config, underway_record({"backup": backup}, old_core,
                                                            [Pending("plugin", PLUGIN, "1.0", new)], ["/"]))
        updates.install_component(conn, config, "plugin", PLUGIN, half["url"], half["sha256"])  # ...and it died here
    finally:
        conn.close()
    conn = connect_lab(host)
    try:  # the new files are in place (PHP-FPM, not reloaded, may still run the old ones for a while)
        text = run(conn, ["cat", f"{config.web_root}/wp-content/plugins/{PLUGIN}/{PLUGIN}.php"]).stdout
    finally:
        conn.close()
    assert "Version: 5.0" in text

    only_old = ReleaseCatalog(source="entries", entries=[{"kind": "plugin", "slug": PLUGIN, "version": "1.0", **fleet["good"]}])
    row = update_site(site=site, components=["plugins"], catalog=only_old, storage=fleet["storage"],
                      scratch=fleet["scratch"])
    assert f"rolled back to backup {backup}" in row["recovered"] and f"{PLUGIN} 1.0 -> 5.0" in row["recovered"], row
    assert row["state"] == "up to date", row
    assert _inventory(host, site).plugins[PLUGIN] == "1.0"
    assert https_status(host, site.domain, "/?pf=rolled-back") == "200"
    conn = connect_lab(host)
    try:
        assert updates.underway(conn, config) is None  # the record is gone
    finally:
        conn.close()
