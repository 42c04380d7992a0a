"""Fleet figures (issue 10, "Benchmarks"), all from one run on this machine; results in results/fleet.json.

Five lab hosts (bf1..bf5), two sites on each, in this order:

1. **Fleet apply**: one fleet file (5 servers, 10 sites) applied by the apply-fleet flow (`pressfleet fleet apply`):
   wall time from pristine hosts. Goal: under 3 minutes.
2. **Re-run** of the same file with nothing to change: wall time, and whether it provisioned nothing. Goal: under
   10 s for the 5 hosts.
3. **A second site on a host**: after the fleet apply each host has two sites; the re-provision time of the first
   site of bf1 (what adding the second site costs the first: it should be seconds), and what it changed.
4. **Nightly backup plus restore-test of the 10 sites with two workers**: the backup-site flow over the saved
   sites and the restore-test flow over them, each split over two concurrent runs (see `two_workers` below:
   helper G's fan-out over Prefect workers was not on main when this was written; with it, this part should run
   the nightly deployment on two process workers instead).
5. **The baseline**: the same 10 sites (other domains) provisioned one after another by single provision runs on
   5 hosts booted again from the same template: total wall time against the fleet apply's.

Hosts boot from the pristine template (what a fleet apply meets on new servers); `PRESSFLEET_BENCH_FLEET_HOSTS=stack`
boots them from the lab's stack template instead (packages already installed), for a cheaper run. The machine's
load average and the lab hosts running are recorded: the lab shares 2 cores with whatever else runs.
`PRESSFLEET_BENCH_FLEET_PARTS=apply,rerun,second,backup,serial` picks parts (the first three always go together).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import yaml

from pressfleet.lab import hosts as lab

HOSTS = [f"bf{i}" for i in range(1, 6)]
TARGETS = {"fleet_apply_seconds_max": 180, "rerun_seconds_max": 10}
ALL_PARTS = ["apply", "rerun", "second", "backup", "serial"]


def _parts() -> list[str]:
    raw = os.environ.get("PRESSFLEET_BENCH_FLEET_PARTS", "")
    return [p for p in ALL_PARTS if p in raw.split(",")] if raw else ALL_PARTS


def _stack() -> bool:
    return os.environ.get("PRESSFLEET_BENCH_FLEET_HOSTS", "pristine") == "stack"


def _boot(names: list[str]) -> dict[str, lab.LabHost]:
    """Boot NAMES afresh from the chosen template (pristine, or the stack template)."""
    from tasks.base import stack_packages

    packages = stack_packages() if _stack() else None
    lab.shutdown_together(names)
    for name in names:
        lab.down(name)
    return {name: lab.up(name, log=lambda m: None, packages=packages) for name in names}


def _domains(host: str, zone: str) -> list[str]:
    return [f"{letter}{host[2:]}.{zone}" for letter in ("a", "b")]


def fleet_file(hosts: dict[str, lab.LabHost], release: dict, zone: str = "fleet.test") -> str:
    """The fleet file of HOSTS with two sites each, as an operator would write it."""
    servers = {name: {"address": h.address, "port": h.port, "user": h.user, "key_file": h.private_key_path,
                      "host_key": h.host_key} for name, h in hosts.items()}
    sites = [{"domain": d, "server": name, "template": "lab"} for name in hosts for d in _domains(name, zone)]
    doc = {"version": 1, "servers": servers,
           "templates": {"lab": {"admin_email": "admin@lab.test", "title": "pressfleet fleet bench",
                                 "tls_mode": "self-signed", "release_url": release["url"],
                                 "release_sha256": release["sha256"]}},
           "sites": sites}
    return yaml.safe_dump(doc, sort_keys=False)


def two_workers(calls: list) -> tuple[float, list]:
    """Run CALLS on two concurrent workers (threads, each taking the next call): wall time and outcomes."""
    queue, outcomes, lock = list(calls), [], threading.Lock()

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                call = queue.pop(0)
            try:
                outcomes.append(call())
            except Exception as exc:  # noqa: BLE001 - recorded as the outcome
                outcomes.append(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - started, outcomes


def run(write_result) -> None:
    from prefect.testing.utilities import prefect_test_harness

    parts = _parts()
    work = Path(tempfile.mkdtemp(prefix="pf-bench-fleet-"))
    results: dict = {"targets": TARGETS, "hosts_template": "stack" if _stack() else "pristine", "parts": parts,
                     "hosts": len(HOSTS), "sites": 2 * len(HOSTS)}
    try:
        with prefect_test_harness(server_startup_timeout=60):
            release = lab.ensure_mirror()
            if {"apply", "rerun", "second", "backup"} & set(parts):
                _fleet_parts(results, parts, work, release)
            if "serial" in parts:
                _serial(results, release)
        results["load_average"] = os.getloadavg()
        results["lab_hosts_running"] = len(lab.list_hosts())
        met = {}
        if "apply" in results:
            met["fleet_apply"] = results["apply"]["seconds"] <= TARGETS["fleet_apply_seconds_max"]
        if "rerun" in results:
            met["rerun"] = results["rerun"]["seconds"] <= TARGETS["rerun_seconds_max"]
        results["met"] = met
        if "apply" in results and "serial" in results:
            results["serial_over_fleet_apply"] = round(results["serial"]["seconds"] / results["apply"]["seconds"], 2)
        write_result("fleet", results)
    finally:
        lab.shutdown_together(HOSTS)
        for name in HOSTS:
            lab.down(name)
        shutil.rmtree(work, ignore_errors=True)


def _fleet_parts(results: dict, parts: list[str], work: Path, release: dict) -> None:
    from flows.apply_fleet import apply_fleet

    hosts = _boot(HOSTS)
    path = work / "fleet.yaml"
    path.write_text(fleet_file(hosts, release))
    t = time.monotonic()
    applied = apply_fleet(fleet_file=str(path))
    results["apply"] = {"seconds": round(time.monotonic() - t, 1), "failed": applied["failed"],
                        "provisioned": sum(len(v) for v in applied["provisioned"].values())}
    if "rerun" in parts:
        t = time.monotonic()
        again = apply_fleet(fleet_file=str(path))
        results["rerun"] = {"seconds": round(time.monotonic() - t, 1), "saved": again["saved"],
                            "provisioned": sum(len(v) for v in again["provisioned"].values())}
    if "second" in parts:
        _second_site(results, hosts)
    if "backup" in parts:
        _nightly(results, work)


def _second_site(results: dict, hosts: dict[str, lab.LabHost]) -> None:
    """Re-provision of the first site of bf1, which got its second site in the fleet apply."""
    from flows.provision_wordpress import provision_wordpress
    from pressfleet.backup.targets import saved_sites

    first = _domains("bf1", "fleet.test")[0]
    [site] = [s for s in saved_sites() if s.domain == first]
    t = time.monotonic()
    report = provision_wordpress(server=site.server, site=site)
    results["second_site"] = {"first_site_reprovision_seconds": round(time.monotonic() - t, 1),
                              "changed": {s["name"]: s["changed"] for s in report.steps if s["changed"]},
                              "checks_passed": all(c["passed"] for c in report.checks)}


def _nightly(results: dict, work: Path) -> None:
    """Backup then restore-test of every fleet site, over two concurrent workers (see the module's docstring)."""
    from blocks.storage import LocalStorage
    from flows.backup_site import backup_site
    from flows.restore_test import restore_test
    from pressfleet.backup.targets import saved_sites

    storage = LocalStorage(path=str(work / "store"), encryption="none")  # the benchmark measures plaintext
    sites = [s for s in saved_sites() if s.domain.endswith(".fleet.test")]
    backup_s, backups = two_workers([lambda s=s: backup_site(site=s, storage=storage, full=True) for s in sites])
    # each site's restore-test on its own host (a scratch site beside it), so no extra host is booted
    test_s, tests = two_workers([lambda s=s: restore_test(site=s, storage=storage, scratch=s.server) for s in sites])
    results["nightly"] = {
        "workers": "2 threads of this process (helper G's fan-out over Prefect workers not used)",
        "backup_seconds": round(backup_s, 1), "restore_test_seconds": round(test_s, 1),
        "sites_backed_up": sum(1 for b in backups if not isinstance(b, Exception)),
        "sites_verified": sum(1 for r in tests if not isinstance(r, Exception) and r and r[0].get("verified")),
        "errors": [str(o).splitlines()[0] for o in [*backups, *tests] if isinstance(o, Exception)][:5]}


def _serial(results: dict, release: dict) -> None:
    """The baseline: 10 single provisions one after another (other domains) on the 5 hosts booted again."""
    from flows.provision_wordpress import provision_wordpress
    from pressfleet.lab.blocks import server_for
    from tests.conftest import make_site

    hosts = _boot(HOSTS)
    each = []
    t = time.monotonic()
    for name, host in hosts.items():
        server = server_for(host)
        for domain in _domains(name, "single.test"):
            s = time.monotonic()
            provision_wordpress(server=server, site=make_site(name=domain.replace(".", "_"), domain=domain))
            each.append(round(time.monotonic() - s, 1))
    results["serial"] = {"seconds": round(time.monotonic() - t, 1), "each_seconds": each}
