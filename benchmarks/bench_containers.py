"""Site code and container figures (issue 15); results in results/containers.json.

Measured now: **deploys of a site-code release**. One lab host from the stack template (bk1) with one site;
the pf-hello plugin repository (tests/sitecode.py: Composer path repository, PHPUnit tests) deployed 10 times
(a new commit each time) by the deploy-site-code flow, while a probe on the control side GETs the home page
every 200 ms through the host's firewall: each deploy's total time, the switch itself (both links and PHP-FPM's
graceful reload), and every probe answer that was not 200 (goal: none). Then a rollback by hand, timed the same.

**Images**: the build-images flow into an empty podman storage (cold: no layer cached; the lab's apt proxy has
the packages, so this is build time, not download time), then again with its layers cached; each image's size
and layers against the naive single-stage build of the same packages and release.

Not measured yet (container sites of issue 15 are not built): container site provisioning and req/s against a
host site. The file says so.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from pressfleet.lab import hosts as lab

HOST = "bk1"
DEPLOYS = 10
DOMAIN = "code.bench.test"


def run(write_result) -> None:
    from prefect.testing.utilities import prefect_test_harness

    from tasks.base import stack_packages

    state = tempfile.mkdtemp(prefix="pressfleet-bench-containers-")
    os.environ["PRESSFLEET_STATE"] = state
    lab.down(HOST)
    host = lab.up(HOST, log=lambda m: None, packages=stack_packages())
    try:
        with prefect_test_harness(server_startup_timeout=60):
            images = _images()
            write_result("containers", {**_measure(host, Path(state)), "images": images})
    finally:
        lab.down(HOST)


def _images() -> dict:
    from flows.build_images import build_images

    release = lab.ensure_mirror()
    load_before = os.getloadavg()[0]
    t0 = time.monotonic()
    cold = build_images(release_url=release["url"], release_sha256=release["sha256"], naive=True)
    cold_s = round(time.monotonic() - t0, 1)
    t0 = time.monotonic()
    warm = build_images(release_url=release["url"], release_sha256=release["sha256"], naive=True)
    warm_s = round(time.monotonic() - t0, 1)
    rows = {}
    for b, w in zip(cold["images"], warm["images"]):
        rows[b["name"]] = {"ref": b["ref"], "size_mb": b["size_mb"], "layers": b["layers"], "user": b["user"] or "root",
                           "packages": len(b["packages"]), "build_cold_s": b["seconds"], "build_cached_s": w["seconds"]}
    optimized = rows["php"]["size_mb"] + rows["nginx"]["size_mb"]
    return {"wordpress_version": cold["wordpress_version"], "images": rows,
            "optimized_total_mb": round(optimized, 1), "naive_mb": rows["naive"]["size_mb"],
            "optimized_vs_naive": round(optimized / rows["naive"]["size_mb"], 3),
            "flow_cold_s": cold_s, "flow_cached_s": warm_s, "load_before": round(load_before, 2),
            "base": cold["base"], "note": "cold = empty podman storage; the lab's apt proxy already holds the packages"}


def _measure(host, state: Path) -> dict:
    from blocks.site import WordPressSite
    from flows.deploy_site_code import deploy_site_code, rollback_site_code
    from flows.provision_wordpress import provision_wordpress
    from pressfleet.fleet.sites import site_block_name
    from pressfleet.lab.blocks import server_for
    from tests.sitecode import Probe, commit, plugin_repo, write_release

    release = lab.ensure_mirror()
    server = server_for(host)
    site = WordPressSite(name="benchcode", domain=DOMAIN, admin_email="admin@lab.test", title="bench code",
                         tls_mode="self-signed", release_url=release["url"], release_sha256=release["sha256"],
                         server=server)
    site.save(site_block_name("benchcode"), overwrite=True)
    provision_wordpress(server=server, site=site, verify=False)
    repo = plugin_repo(state / "repos")
    load_before = os.getloadavg()[0]
    totals, switches, probes = [], [], []
    deploy_site_code(site="benchcode", repo=str(repo), ref="v1", activate=True)
    for i in range(DEPLOYS):
        write_release(repo, f"5.0.{i}", f"bench {i}")
        commit(repo, f"bench {i}")
        with Probe(DOMAIN, host.address) as probe:
            t0 = time.monotonic()
            r = deploy_site_code(site="benchcode", repo=str(repo), ref="main")
            totals.append(round(time.monotonic() - t0, 2))
        switches.append(r["switch_seconds"])
        probes.append(probe.codes)
    with Probe(DOMAIN, host.address) as probe:
        t0 = time.monotonic()
        back = rollback_site_code(site="benchcode")
        rollback_s = round(time.monotonic() - t0, 2)
    failed = [c for codes in probes for c in codes if c != "200"]
    return {
        "site_code_deploy": {
            "deploys": DEPLOYS,
            "total_seconds": totals,
            "total_median_s": statistics.median(totals),
            "switch_seconds": switches,
            "switch_median_s": statistics.median(switches),
            "probe_requests": sum(len(c) for c in probes),
            "probe_failed": len(failed),
            "probe_failed_codes": sorted(set(failed)),
            "goal_probe_failed": 0,
            "rollback_total_s": rollback_s,
            "rollback_switch_s": back["switch_seconds"],
            "rollback_probe_failed": len([c for c in probe.codes if c != "200"]),
            "what": "pf-hello plugin (Composer path repository), 200 ms probe through the host's firewall",
        },
        "container_site": {"measured": False, "why": "container sites of issue 15 are not built yet"},
        "load_before": round(load_before, 2),
    }
