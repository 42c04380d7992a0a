"""WordPress network figures (issue 12, "Measure and report"); results in results/multisite.json.

One lab host from the stack template (bn1) carries a subdirectory network on WordPress 6.1.9 with ACME
certificates from pebble (a real ACME server, tests/acme.py), then:

1. **Subsite creation**: 20 subsites added one after another by the network-add-site flow (each proved: 200 with
   its title over HTTPS); each one's time, their median and the slowest.
2. **Domain mapping**: one subsite mapped by the network-map-domain flow to a domain pointed at the host in
   pebble's DNS: the DNS check, the certificate over HTTP-01, the vhost and the proofs, end to end.
3. **A network of 20 subsites backed up** (the backup-site flow, full, local storage) and **one subsite restored
   alone** (restore-site with part subsite:N): each one's time, the backup's size and the tables the restore swapped.

Flows run in this process against a temporary Prefect API. The machine's load is recorded: the lab shares 2 cores.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

from pressfleet.lab import hosts as lab

HOST = "bn1"
SUBSITES = 20
DOMAIN = "net.bench.test"
MAPPED = "mapped.example.test"


def run(write_result) -> None:
    from prefect.testing.utilities import prefect_test_harness

    from tasks.base import stack_packages

    state = tempfile.mkdtemp(prefix="pressfleet-bench-multisite-")
    os.environ["PRESSFLEET_STATE"] = state
    lab.down(HOST)
    host = lab.up(HOST, log=lambda m: None, packages=stack_packages())
    try:
        with prefect_test_harness(server_startup_timeout=60):
            write_result("multisite", _measure(host, state))
    finally:
        lab.down(HOST)


def _measure(host, state: str) -> dict:
    from pathlib import Path

    from blocks.site import WordPressSite
    from blocks.storage import LocalStorage
    from flows.backup_site import backup_site
    from flows.network_add_site import network_add_site
    from flows.network_map_domain import network_map_domain
    from flows.provision_wordpress import provision_wordpress
    from flows.restore_site import restore_site
    from pressfleet.lab.blocks import server_for
    from tests.acme import BIND, DNS_PORT, Pebble

    release = lab.ensure_mirror()
    load_before = os.getloadavg()[0]
    pebble_dir = Path(state) / "pebble"
    pebble_dir.mkdir()
    pebble = Pebble(pebble_dir).start()
    try:
        pebble.add_a(DOMAIN, host.address)
        pebble.add_a(MAPPED, host.address)
        server = server_for(host)
        site = WordPressSite(name="benchnet", domain=DOMAIN, admin_email="admin@lab.test", title="bench network",
                             multisite="subdirectory", tls_mode="acme", acme_server=pebble.directory_url,
                             acme_ca_bundle=pebble.ca_pem, release_url=release["url"],
                             release_sha256=release["sha256"], server=server)
        site.save("bench-benchnet", overwrite=True)
        t0 = time.monotonic()
        provision_wordpress(server=server, site=site, verify=False)
        provision_s = time.monotonic() - t0

        create = []
        made = {}
        for i in range(1, SUBSITES + 1):
            t = time.monotonic()
            made[i] = network_add_site(network=site, slug=f"sub{i:02d}", title=f"Bench subsite {i}")
            create.append(time.monotonic() - t)

        t = time.monotonic()
        mapping = network_map_domain(network=site, subsite="sub01", domain=MAPPED, block_name="bench-benchnet",
                                     resolver=f"{BIND}:{DNS_PORT}")
        map_s = time.monotonic() - t
        site = WordPressSite.load("bench-benchnet")

        folder = Path(state) / "backups"
        folder.mkdir()
        storage = LocalStorage(path=str(folder), encryption="none")
        t = time.monotonic()
        [backup] = backup_site(site=site, storage=storage, full=True)
        backup_s = time.monotonic() - t
        target = made[SUBSITES]["blog_id"]
        t = time.monotonic()
        restored = restore_site(site=site, storage=storage, backup_id=backup["backup"], parts=[f"subsite:{target}"])
        restore_s = time.monotonic() - t
        backup_bytes = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    finally:
        pebble.stop()
    return {
        "host": HOST, "wordpress": release["version"], "subsites": SUBSITES,
        "provision_network_s": round(provision_s, 1),
        "create_subsite_s": {"median": round(statistics.median(create), 2), "max": round(max(create), 2),
                             "min": round(min(create), 2), "each": [round(x, 2) for x in create]},
        "map_domain_with_certificate_s": round(map_s, 2), "map_domain_steps": mapping["steps"],
        "backup_network_s": round(backup_s, 2), "backup_bytes": backup_bytes, "backup_kind": backup["kind"],
        "restore_one_subsite_s": round(restore_s, 2), "restored": restored["restored"],
        "restore_flow_seconds": restored["seconds"],
        "load_average_before": round(load_before, 2), "load_average_after": round(os.getloadavg()[0], 2),
    }
