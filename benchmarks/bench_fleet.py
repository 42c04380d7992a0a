"""Fleet figures (issue 10, "Benchmarks"), all from one run on this machine; results in results/fleet.json.

Five lab hosts (bf1..bf5), two sites on each, in this order:

1. **Fleet apply**: one fleet file (5 servers, 10 sites) applied by the apply-fleet flow (`pressfleet fleet apply`):
   wall time from pristine hosts. Goal: under 3 minutes.
2. **Re-run** of the same file with nothing to change: wall time, and whether it provisioned nothing. Goal: under
   10 s for the 5 hosts.
3. **A second site on a host**: after the fleet apply each host has two sites; the re-provision time of the first
   site of bf1 (what adding the second site costs the first: it should be seconds), and what it changed.
4. **Nightly backup plus restore-test of the 10 sites with two workers**: one run each of the `fleet-backup` and
   `fleet-restore-test` deployments (what the nightly schedules start, no parameters: every saved site, the
   default storage, a fresh lab scratch host per site), their children shared by two process workers with PREFECT_HOMEs
   of their own, as two control machines would run them.
5. **The baseline**: the same 10 sites (other domains) provisioned one after another by single provision runs on
   5 hosts booted again from the same template: total wall time against the fleet apply's.

Hosts boot from the pristine template (what a fleet apply meets on new servers); `PRESSFLEET_BENCH_FLEET_HOSTS=stack`
boots them from the lab's stack template instead (packages already installed), for a cheaper run. The machine's
load average and the lab hosts running are recorded: the lab shares 2 cores with whatever else runs. Everything
runs against one Prefect server on PostgreSQL (tests/pg.py's private cluster), started and stopped here.
`PRESSFLEET_BENCH_FLEET_PARTS=apply,rerun,second,backup,serial` picks parts (the first three always go together).
"""

from __future__ import annotations

import contextlib
import os
import signal
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

# The benchmark's hosts live in the tests' lab namespace (bridge pftestbr), never the operator's lab.
os.environ.setdefault("PRESSFLEET_LAB_NAMESPACE", "test")

from pressfleet.lab import hosts as lab  # noqa: E402

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


WORKERS = ("bench-fleet-w1", "bench-fleet-w2")


@contextlib.contextmanager
def prefect_server(work: Path):
    """A Prefect server on PostgreSQL with the pressfleet work pool, this process's client pointed at it; yields
    the configs of two control machines (one server, two PREFECT_HOMEs)."""
    from pressfleet.paths import ROOT
    from pressfleet.stack import control as stack
    from tests.pg import running_cluster
    from tests.server.conftest import api_settings, make_config

    with running_cluster("prefect", ["prefect"], log=lambda m: None) as pg:
        cfg = make_config(work / "control-1", database_url=pg.url("asyncpg"), prefect_file=ROOT / "prefect.yaml")
        cfg2 = make_config(work / "control-2", database_url=pg.url("asyncpg"), port=cfg.port,
                           prefect_file=ROOT / "prefect.yaml")
        try:
            stack.start_server(cfg)
            stack.ensure_work_pool(cfg)
            with api_settings(cfg, work / "client-home"):
                yield cfg, cfg2
        finally:
            stack.down(cfg)


def start_workers(configs) -> list[subprocess.Popen]:
    """One process worker per config (its own PREFECT_HOME), at most 3 runs each; stopped by PID."""
    from pressfleet.paths import ROOT
    from pressfleet.stack import control as stack

    procs = []
    for cfg, name in zip(configs, WORKERS):
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        with open(cfg.run_dir / "worker.log", "ab") as log:
            procs.append(subprocess.Popen(
                [str(ROOT / ".venv/bin/prefect"), "worker", "start", "--pool", cfg.work_pool, "--type", "process",
                 "--name", name, "--limit", "3"],
                env=stack.prefect_env(cfg), cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True))
    return procs


def stop_workers(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def run(write_result) -> None:
    parts = _parts()
    work = Path(tempfile.mkdtemp(prefix="pf-bench-fleet-"))
    results: dict = {"targets": TARGETS, "hosts_template": "stack" if _stack() else "pristine", "parts": parts,
                     "hosts": len(HOSTS), "sites": 2 * len(HOSTS)}
    try:
        with prefect_server(work) as configs:
            release = lab.ensure_mirror()
            if {"apply", "rerun", "second", "backup"} & set(parts):
                _fleet_parts(results, parts, work, release, configs)
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
        if os.environ.get("PRESSFLEET_BENCH_FLEET_PARTS"):  # a partial run keeps the other parts' last figures
            from benchmarks.run import RESULTS

            with contextlib.suppress(OSError, ValueError):
                import json

                last = json.loads((RESULTS / "fleet.json").read_text())
                for key in ("apply", "rerun", "second_site", "nightly", "serial"):
                    if key in last and key not in results:
                        results[key] = {"measured_at": last.get("measured_at"), **last[key]}  # its own first
        write_result("fleet", results)
    finally:
        lab.shutdown_together(HOSTS)
        for name in HOSTS:
            lab.down(name)
        shutil.rmtree(work, ignore_errors=True)


def _fleet_parts(results: dict, parts: list[str], work: Path, release: dict, configs) -> None:
    from flows.apply_fleet import apply_fleet

    hosts = _boot(HOSTS)
    path = work / "fleet.yaml"
    path.write_text(fleet_file(hosts, release))
    t = time.monotonic()
    try:
        applied = apply_fleet(fleet_file=str(path))
    except Exception as exc:  # noqa: BLE001 - a host that failed: recorded, and the re-run below completes it
        applied = {"failed": str(exc).splitlines()[0], "provisioned": {}}
    results["apply"] = {"seconds": round(time.monotonic() - t, 1), "failed": applied["failed"],
                        "provisioned": sum(len(v) for v in applied["provisioned"].values())}
    if "rerun" in parts:
        t = time.monotonic()
        again = apply_fleet(fleet_file=str(path))
        results["rerun"] = {"seconds": round(time.monotonic() - t, 1), "saved": again["saved"],
                            "provisioned": sum(len(v) for v in again["provisioned"].values())}
    for part, measure in (("second", lambda: _second_site(results, hosts)),
                          ("backup", lambda: _nightly(results, work, configs))):
        if part in parts:
            try:
                measure()
            except Exception as exc:  # noqa: BLE001 - the other parts still report
                results.setdefault("errors", {})[part] = str(exc).splitlines()[0][:500]


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


def _nightly(results: dict, work: Path, configs) -> None:
    """One nightly backup and one nightly restore-test of every saved (fleet) site, shared by two workers."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
    from prefect.deployments import run_deployment

    from blocks.storage import LocalStorage
    from pressfleet.backup.targets import DEFAULT_STORAGE_BLOCK
    from pressfleet.stack import control as stack

    cfg = configs[0]
    (work / "store").mkdir(mode=0o700, exist_ok=True)  # local storage refuses a missing folder (an unmounted disk)
    LocalStorage(path=str(work / "store"), encryption="none").save(DEFAULT_STORAGE_BLOCK, overwrite=True)
    stack.run_prefect(cfg, "deploy", "--prefect-file", str(stack.deployment_file(cfg)), "--name", "fleet-backup",
                      "--name", "nightly-backup", "--name", "fleet-restore-test", "--name", "nightly-restore-test",
                      "--no-prompt")
    workers = start_workers(configs)
    out: dict = {"workers": list(WORKERS)}
    try:
        for key, deployment, tag in (("backup", "fleet-backup/fleet-backup", "fleet-backup"),
                                     ("restore_test", "fleet-restore-test/fleet-restore-test", "fleet-restore-test")):
            t = time.monotonic()
            parent = run_deployment(deployment, timeout=3600, poll_interval=2)
            out[f"{key}_seconds"] = round(time.monotonic() - t, 1)
            with get_client(sync_client=True) as client:
                children = client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["fleet-child", tag])))
            out[key] = {"state": parent.state.type.value, "children": len(children),
                        "children_completed": sum(1 for c in children if c.state.is_completed()),
                        "by_worker": {w: sum(1 for c in children if c.labels.get("prefect.worker.name") == w)
                                      for w in WORKERS},
                        "failures": sorted({(c.state.message or c.state.type.value)[:300] for c in children
                                            if not c.state.is_completed()})[:3]}
    finally:
        stop_workers(workers)
    results["nightly"] = out


def _serial(results: dict, release: dict) -> None:
    """The baseline: 10 single provisions one after another (other domains) on the 5 hosts booted again."""
    from blocks.site import WordPressSite
    from flows.provision_wordpress import provision_wordpress
    from pressfleet.lab.blocks import server_for

    hosts = _boot(HOSTS)
    each = []
    t = time.monotonic()
    for name, host in hosts.items():
        server = server_for(host)
        for domain in _domains(name, "single.test"):
            s = time.monotonic()
            site = WordPressSite(name=domain.replace(".", "_"), domain=domain, admin_email="admin@lab.test",
                                 title="pressfleet single bench", tls_mode="self-signed", release_url=release["url"],
                                 release_sha256=release["sha256"])
            provision_wordpress(server=server, site=site)
            each.append(round(time.monotonic() - s, 1))
    results["serial"] = {"seconds": round(time.monotonic() - t, 1), "each_seconds": each}
