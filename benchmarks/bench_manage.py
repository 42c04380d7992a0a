"""Fleet management figures (issue 11, "Benchmarks"); results in results/manage.json.

Five lab hosts booted from the stack template (bm1..bm5), four sites on each (20), provisioned on WordPress 6.1.9
(Debian 12's). Then:

1. **Update in three waves**: the update-sites flow (in this process: `deployment=None`) with the lab's catalogue,
   waves `1,25%,100%`: core to Debian 13's release, akismet and twentytwentythree to theirs. Wall time (goal
   under 5 minutes), each site's own time, and every wave's.
2. **Downtime as a visitor sees it**: while the update runs, a probe per site requests its home page every 200 ms
   (HTTPS to the site's own host); every failed request (no answer, or a 5xx) is counted with its time (goal:
   not one).
3. **Rollback**: one site updated to a plugin release that fatals (written here, like the test's); the time from
   the failure to the site answering as before, as the flow measured it (goal under 60 s), and the whole run's.

Restore-tests run on a sixth stack host given as the scratch server. The machine's load is recorded: the lab
shares 2 cores with everything else.
"""

from __future__ import annotations

import http.client
import io
import os
import socket
import ssl
import tempfile
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context

os.environ.setdefault("PRESSFLEET_LAB_NAMESPACE", "test")

from pressfleet.lab import hosts as lab  # noqa: E402

HOSTS = [f"bm{i}" for i in range(1, 6)]
SCRATCH = "bm-scratch"
SITES_PER_HOST = 4
TARGETS = {"update_seconds_max": 300, "failed_requests_max": 0, "rollback_seconds_max": 60}


class _Probe(threading.Thread):
    """GET https://DOMAIN/ on ADDRESS every 200 ms until stopped; failures are kept with their time."""

    def __init__(self, domain: str, address: str) -> None:
        super().__init__(daemon=True)
        self.domain, self.address = domain, address
        self.stop = threading.Event()
        self.requests, self.failures, self.slowest = 0, [], 0.0
        self.context = ssl.create_default_context()
        self.context.check_hostname, self.context.verify_mode = False, ssl.CERT_NONE

    def _get(self) -> int:
        sock = socket.create_connection((self.address, 443), timeout=10)
        conn = http.client.HTTPSConnection(self.domain, 443, timeout=10)
        conn.sock = self.context.wrap_socket(sock, server_hostname=self.domain)
        try:
            conn.request("GET", "/", headers={"Host": self.domain})
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                status = self._get()
                if status >= 500:
                    self.failures.append((time.time(), status))
            except OSError as exc:
                self.failures.append((time.time(), type(exc).__name__))
            took = time.monotonic() - started
            self.requests += 1
            self.slowest = max(self.slowest, took)
            self.stop.wait(max(0.0, 0.2 - took))


def _fatal_plugin(version: str) -> bytes:
    body = (f"<?php\n/**\n * Plugin Name: pressfleet bench canary\n * Version: {version}\n */\n"
            + ("pf_bench_this_function_does_not_exist();\n" if version != "1.0" else ""))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("pf-bench/pf-bench.php", body)
    return buf.getvalue()


_publish = lab.publish_component  # a file of this module's on the lab mirror: its catalogue entry's url and sha256


def run(write_result) -> None:
    from prefect.testing.utilities import prefect_test_harness

    from tasks.base import stack_packages

    state = tempfile.mkdtemp(prefix="pressfleet-bench-manage-")
    os.environ["PRESSFLEET_STATE"] = state
    packages = stack_packages()
    lab.shutdown_together([*HOSTS, SCRATCH])
    for name in [*HOSTS, SCRATCH]:
        lab.down(name)
    hosts = {name: lab.up(name, log=lambda m: None, packages=packages) for name in [*HOSTS, SCRATCH]}
    try:
        with prefect_test_harness(server_startup_timeout=60):
            write_result("manage", _measure(hosts, state))
    finally:
        lab.shutdown_together(list(hosts))
        for name in hosts:
            lab.down(name)


def _measure(hosts: dict, state: str) -> dict:
    from blocks.catalog import ReleaseCatalog
    from blocks.site import WordPressSite
    from blocks.storage import LocalStorage
    from flows.provision_wordpress import provision_wordpress
    from flows.update_sites import UpdateFailed, update_site, update_sites
    from pressfleet.lab.blocks import server_for
    from pressfleet.updates.catalog import load_file
    from tasks import updates
    from tasks.common import connected
    from tasks.wordpress import bootstrap

    release = lab.ensure_mirror()
    catalogue = lab.ensure_catalogue()
    good = _publish("bench-pf-bench.1.0.zip", _fatal_plugin("1.0"))
    bad = _publish("bench-pf-bench.2.0.zip", _fatal_plugin("2.0"))
    servers = {name: server_for(hosts[name]) for name in HOSTS}
    sites = {name: [WordPressSite(name=f"m{name[2:]}{i}", domain=f"m{name[2:]}{i}.manage.test",
                                  admin_email="admin@lab.test", title="pressfleet manage bench",
                                  tls_mode="self-signed", release_url=release["url"], release_sha256=release["sha256"],
                                  server=servers[name]) for i in range(1, SITES_PER_HOST + 1)] for name in HOSTS}

    t0 = time.monotonic()

    def provision_host(name: str) -> None:
        for site in sites[name]:
            provision_wordpress(server=servers[name], site=site, verify=False)

    with ThreadPoolExecutor(len(HOSTS)) as pool:
        for f in [pool.submit(copy_context().run, provision_host, n) for n in HOSTS]:
            f.result()
    provision_seconds = time.monotonic() - t0
    every = [s for n in HOSTS for s in sites[n]]
    os.makedirs(os.path.join(state, "bench-backups"), mode=0o700)
    storage = LocalStorage(path=os.path.join(state, "bench-backups"), encryption="none")
    scratch = server_for(hosts[SCRATCH])
    catalog = ReleaseCatalog(source="file", file=str(catalogue))

    probes = [_Probe(s.domain, s.server.address) for s in every]
    for p in probes:
        p.start()
    load_before = os.getloadavg()[0]
    t1 = time.monotonic()
    result = update_sites(sites=every, waves="1,25%,100%", catalog=catalog, storage=storage, scratch=scratch,
                          deployment=None)
    update_seconds = time.monotonic() - t1
    load_after = os.getloadavg()[0]
    time.sleep(1)
    for p in probes:
        p.stop.set()
    for p in probes:
        p.join(15)
    states = {r["site"]: r["state"] for r in result["sites"]}
    per_site = sorted(r.get("seconds", 0.0) for r in result["sites"] if r.get("seconds") is not None)

    # rollback: the first site gets the bench plugin 1.0, then an update to 2.0, which fatals
    victim = every[0]
    with connected(victim.server) as conn:
        updates.install_component(conn, victim.config(), "plugin", "pf-bench", good["url"], good["sha256"])
        bootstrap(conn, victim.config(), "activate", {"plugins": ["pf-bench"]})
    entries = [r.__dict__ for r in load_file(catalogue).releases]
    fatal = ReleaseCatalog(source="entries", entries=[
        *entries, {"kind": "plugin", "slug": "pf-bench", "version": "2.0", **bad}])
    t2 = time.monotonic()
    rollback_message = ""
    try:
        update_site(site=victim, components=["plugins"], catalog=fatal, storage=storage, scratch=scratch)
    except UpdateFailed as exc:
        rollback_message = str(exc)
    rollback_run_seconds = time.monotonic() - t2
    import re

    m = re.search(r"rolled back to backup \S+ in ([0-9.]+) s", rollback_message)
    return {
        "sites": len(every), "hosts": len(HOSTS), "waves": [len(w) for w in result["waves"]],
        "provision_seconds": round(provision_seconds, 1),
        "update": {"seconds": round(update_seconds, 1), "states": sorted(set(states.values())),
                   "updated": sum(1 for v in states.values() if v == "updated"),
                   "per_site_seconds_median": per_site[len(per_site) // 2] if per_site else None,
                   "per_site_seconds_max": per_site[-1] if per_site else None,
                   "what": "core 6.1.9 -> Debian 13's release, akismet and twentytwentythree; each site: a backup, "
                           "its restore-test, checks and screenshots before and after"},
        "probe": {"interval_seconds": 0.2, "requests": sum(p.requests for p in probes),
                  "failed_requests": sum(len(p.failures) for p in probes),
                  "failures": [(p.domain, f) for p in probes for f in p.failures][:20],
                  "slowest_request_seconds": round(max(p.slowest for p in probes), 2)},
        "rollback": {"rolled_back": "answers as before" in rollback_message,
                     "rollback_seconds": float(m.group(1)) if m else None,
                     "run_seconds": round(rollback_run_seconds, 1)},
        "targets": TARGETS,
        "load_average": {"before_update": round(load_before, 2), "after_update": round(load_after, 2)},
        "lab_hosts_running": len(hosts),
    }
