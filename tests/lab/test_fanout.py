"""Many workers, one fleet (issue 10): one nightly backup of 6 sites on 3 hosts shared by two workers.

The Prefect server runs on PostgreSQL (tests/pg.py's private cluster), with TWO process workers on the pool,
each with its own PREFECT_HOME (as two control machines would have) and at most 3 runs at once. The fleet:
the session's shared host (2 sites, `shared_host`) and the two stack-template hosts (`stack_hosts`), 2 sites
provisioned on each (the two hosts in parallel). Every Server block says `max_operations: 1`, so the two sites
of a host must be backed up one after the other whichever worker takes them. One run of the `fleet-backup`
deployment (what the 02:30 schedule starts, with no parameters) must: complete; have started one child run of
backup-site per site, run by both workers; leave each site exactly one backup in storage; and no host may have
had two backups at once (the manifests' start and end times, taken inside the locks, never overlap per host).
"""

from __future__ import annotations

import contextvars
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pressfleet.paths import ROOT
from pressfleet.stack import control as stack
from tests.conftest import make_site
from tests.pg import running_cluster
from tests.server.conftest import api_settings, make_config, pid_alive

pytestmark = [pytest.mark.postgres, pytest.mark.lab, pytest.mark.timeout(1500)]

WORKERS = ("pg-fleet-w1", "pg-fleet-w2")
NEW_SITES = (("f1_lab_test", "f1.lab.test"), ("f2_lab_test", "f2.lab.test"))  # on each of the two stack hosts


def _start_worker(cfg, name: str, log_path) -> subprocess.Popen:
    """A process worker of the pool with cfg's PREFECT_HOME, at most 3 runs at once (stopped by PID)."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [str(ROOT / ".venv/bin/prefect"), "worker", "start", "--pool", cfg.work_pool, "--type", "process",
             "--name", name, "--limit", "3"],
            env=stack.prefect_env(cfg), cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)


def _wait_online(client, pool: str, names, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        online = {w.name for w in client.read_workers_for_work_pool(pool) if w.status.value == "ONLINE"}
        if set(names) <= online:
            return
        time.sleep(0.5)
    raise AssertionError(f"workers {names} did not come online in {timeout:.0f} s")


def _worker_logs(*cfgs, lines: int = 200) -> str:
    """The last lines of each worker's log (where the child runs' own logs and tracebacks are), for a failure."""
    out = []
    for c in cfgs:
        path = c.run_dir / "worker.log"
        text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else ["(no log)"]
        out.append(f"--- {path}\n" + "\n".join(text))
    return "\n".join(out)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_one_nightly_backup_is_shared_by_two_workers_and_no_host_goes_over_its_limit(
        shared_host, stack_hosts, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
    from prefect.deployments import run_deployment

    from blocks.server import Server
    from blocks.site import WordPressSite
    from blocks.storage import LocalStorage
    from flows.provision_wordpress import provision_wordpress
    from pressfleet.backup.catalog import list_backups
    from pressfleet.backup.targets import DEFAULT_STORAGE_BLOCK
    from pressfleet.fleet.children import most_at_once
    from pressfleet.fleet.locks import host_lock_name
    from pressfleet.lab.blocks import server_for

    timings: dict[str, float] = {}
    t_setup = time.monotonic()
    workers: list[subprocess.Popen] = []
    with running_cluster("prefect", ["prefect"]) as pg:
        cfg = make_config(tmp_path / "control-1", database_url=pg.url("asyncpg"), prefect_file=ROOT / "prefect.yaml")
        cfg2 = make_config(tmp_path / "control-2", database_url=pg.url("asyncpg"), port=cfg.port,
                           prefect_file=ROOT / "prefect.yaml")
        try:
            t0 = time.monotonic()
            stack.start_server(cfg)
            stack.ensure_work_pool(cfg)
            path = stack.deployment_file(cfg)
            stack.run_prefect(cfg, "deploy", "--prefect-file", str(path), "--name", "fleet-backup",
                              "--name", "nightly-backup", "--name", "fleet-collect-metrics", "--name", "collect-host-metrics",
                              "--no-prompt")
            for c, name in zip((cfg, cfg2), WORKERS):
                c.run_dir.mkdir(parents=True, exist_ok=True)
                workers.append(_start_worker(c, name, c.run_dir / "worker.log"))
            timings["server on postgres, deploy, 2 workers started"] = time.monotonic() - t0

            with api_settings(cfg, tmp_path / "client-home"):
                # the fleet's blocks, in this Prefect server: 3 hosts allowing 1 operation each, 6 sites
                t0 = time.monotonic()
                store_dir = tmp_path / "backups"
                store_dir.mkdir()
                storage = LocalStorage(path=str(store_dir), encryption="none")
                storage.save(DEFAULT_STORAGE_BLOCK, overwrite=True)  # what the schedule's run uses
                servers = []
                for name, base in (("pg-srv-shared", shared_host.server),
                                   *((f"pg-srv-{h.name}", server_for(h)) for h in stack_hosts)):
                    server = Server(**{**base.model_dump(), "max_operations": 1})
                    server.save(name, overwrite=True)
                    servers.append(Server.load(name))
                for site in (shared_host.one.site, shared_host.two.site):
                    block = WordPressSite(**{**site.model_dump(exclude={"server"}), "server": servers[0]})
                    block.save(f"pg-site-{site.name.replace('_', '-')}", overwrite=True)

                # the site blocks first, here: make_site readies the lab's WordPress mirror, which two threads at
                # once could rebuild under each other's download
                planned = {i: [make_site(name=f"f{i}{j}_lab_test", domain=f"f{i}{j}.lab.test",
                                         title=f"pressfleet fleet f{i}{j}", server=servers[i]) for j in (1, 2)]
                           for i in (1, 2)}

                def provision_host(i: int, server) -> list[str]:
                    for site in planned[i]:
                        provision_wordpress(server=server, site=site)
                        site.save(f"pg-site-{site.name.replace('_', '-')}", overwrite=True)
                    return [site.name for site in planned[i]]

                with ThreadPoolExecutor(2) as pool:  # each thread in this test's Prefect settings
                    futures = [pool.submit(contextvars.copy_context().run, provision_host, i, s)
                               for i, s in ((1, servers[1]), (2, servers[2]))]
                    new_sites = [n for f in futures for n in f.result()]
                timings["4 sites provisioned on 2 hosts in parallel"] = time.monotonic() - t0

                with get_client(sync_client=True) as client:
                    _wait_online(client, cfg.work_pool, WORKERS)
                timings["setup in all"] = time.monotonic() - t_setup

                # the nightly backup, as its schedule starts it (no parameters)
                t0 = time.monotonic()
                parent = run_deployment("fleet-backup/fleet-backup", timeout=900, poll_interval=2)
                timings["fleet-backup run"] = time.monotonic() - t0
                assert parent.state.is_completed(), (parent.state, _worker_logs(cfg, cfg2))

                # a metrics round over the same workers: one child per server
                t0 = time.monotonic()
                collect_parent = run_deployment("fleet-collect-metrics/fleet-collect-metrics", timeout=300,
                                                poll_interval=2)
                timings["fleet-collect-metrics run"] = time.monotonic() - t0
                assert collect_parent.state.is_completed(), (collect_parent.state, _worker_logs(cfg, cfg2))

                with get_client(sync_client=True) as client:
                    collect_children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                        tags=FlowRunFilterTags(all_=["fleet-child", "fleet-collect-metrics"])))
                    children = client.read_flow_runs(
                        flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["fleet-child", "fleet-backup"])))
                    artifacts = client.read_artifacts()
                    limits = {h: client.read_global_concurrency_limit_by_name(host_lock_name(s.address, s.port))
                              for h, s in zip(("shared", "s1", "s2"), servers)}
        finally:
            for proc in workers:
                _stop(proc)
            stack.down(cfg)
    for proc in workers:
        assert not pid_alive(proc.pid)
    print({k: round(v, 1) for k, v in timings.items()})

    all_sites = sorted([shared_host.one.site.name, shared_host.two.site.name, *new_sites])
    assert len(all_sites) == 6 and len(set(all_sites)) == 6

    # one child run of backup-site per site, each completed, in this one nightly run
    assert len(children) == 6, [c.name for c in children]
    assert all(c.state.is_completed() for c in children), [(c.name, c.state) for c in children]
    assert all(c.parent_task_run_id is not None for c in children)  # sub-runs of the parent
    table = next(a for a in artifacts if a.key == "fleet-backup" and a.flow_run_id == parent.id)
    rows = table.data if isinstance(table.data, list) else __import__("json").loads(table.data)
    assert sorted(r["child"] for r in rows) == all_sites
    assert all(r["state"] == "COMPLETED" for r in rows)
    # both workers ran children (the label each worker gives the runs it takes, and the parent's table)
    assert {c.labels.get("prefect.worker.name") for c in children} == set(WORKERS), [c.labels for c in children]
    assert {r["worker"] for r in rows} == set(WORKERS), rows

    # every site backed up exactly once; no host had two backups at once (its limit is 1)
    store = LocalStorage(path=str(store_dir), encryption="none").store()
    by_host: dict[str, list] = {}
    for name in all_sites:
        backups = list_backups(store, name)
        assert len(backups) == 1, (name, backups, backups.problems)
        m = backups[0].manifest
        host = {"f1": "s1", "f2": "s2"}.get(name[:2], "shared")
        by_host.setdefault(host, []).append((m.started_at, m.ended_at))
    assert {h: len(v) for h, v in by_host.items()} == {"shared": 2, "s1": 2, "s2": 2}
    for host, spans in by_host.items():
        assert most_at_once(spans) <= 1, (host, spans)
    assert all(limit.limit == 1 and limit.active_slots == 0 for limit in limits.values()), limits
    # the metrics round: one completed child per server, each with its one server up
    assert sorted(c.parameters["servers"][0]["$ref"]["block_document_id"] for c in collect_children) == sorted(
        str(s._block_document_id) for s in servers)
    assert all(c.state.is_completed() for c in collect_children), [(c.name, c.state) for c in collect_children]
    rounds = [a for a in artifacts if a.key == "collect-metrics" and a.flow_run_id in {c.id for c in collect_children}]
    assert len(rounds) == 3 and all(": 1 of 1 servers up" in (a.description or "") for a in rounds), rounds
    print("backups at once over the fleet:", most_at_once([s for v in by_host.values() for s in v]))
