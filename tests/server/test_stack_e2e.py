"""The local Prefect stack end to end: server, work pool, deploy, worker, a run and its result."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pressfleet.stack import control as stack
from pressfleet.paths import ROOT
from tests.server.conftest import make_config, pid_alive

pytestmark = [pytest.mark.server, pytest.mark.timeout(300)]


def test_up_brings_up_server_pool_and_worker(prefect_api):
    cfg, st = prefect_api.cfg, prefect_api.status
    assert st.healthy and st.api_url == cfg.api_url
    assert st.pids["server"] and pid_alive(st.pids["server"])
    assert st.pids["worker"] and pid_alive(st.pids["worker"])
    assert cfg.pid_file("server").read_text().strip() == str(st.pids["server"])
    # the watcher runs beside them and finishes rounds against this stack's API (an empty fleet here)
    assert st.pids["watcher"] and pid_alive(st.pids["watcher"])
    import json

    status_file = cfg.state / "watch" / "status.json"
    deadline, summary = time.monotonic() + 60, {}
    while time.monotonic() < deadline and summary.get("pid") != st.pids["watcher"]:
        time.sleep(0.5)
        summary = json.loads(status_file.read_text()) if status_file.exists() else {}
    assert summary["pid"] == st.pids["watcher"] and summary["round"] >= 1, summary
    # isolated from the demo stack
    assert cfg.port != 4200 and not str(cfg.home).startswith(str(ROOT))

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        pool = client.read_work_pool(cfg.work_pool)
        assert pool.type == "process"
        workers = client.read_workers_for_work_pool(cfg.work_pool)
        assert any(w.status.value == "ONLINE" for w in workers), workers
        block_types = {b.slug for b in client.read_block_types()}
    if stack.block_files(cfg):
        assert "server" in block_types  # blocks/server.py registered by up()


def test_run_deployment_completes_and_returns_value(prefect_api):
    from prefect.deployments import run_deployment

    t0 = time.monotonic()
    flow_run = run_deployment(
        "pf-test-add/pf-test-add", parameters={"a": 2, "b": 40}, timeout=120, poll_interval=0.5
    )
    elapsed = time.monotonic() - t0
    print(f"run_deployment -> {flow_run.state.type.value} in {elapsed:.1f} s")
    assert flow_run.state.is_completed(), flow_run.state
    value = flow_run.state.result()
    assert value["sum"] == 42
    # the pull step `set_working_directory: {{ $PRESSFLEET_ROOT }}` ran the code in this clone
    assert Path(value["cwd"]) == ROOT
    assert Path(value["pressfleet_root"]) == ROOT


def test_pull_step_placeholder_falls_back_to_the_workers_environment(prefect_api):
    """Deployed without PRESSFLEET_ROOT, the placeholder is stored and the worker's env fills it."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    cfg = prefect_api.cfg
    env = stack.prefect_env(cfg)
    del env["PRESSFLEET_ROOT"]
    res = subprocess.run(
        [sys.executable, "-m", "prefect", "deploy", "--all", "--no-prompt",
         "--prefect-file", str(cfg.prefect_file)],
        env=env, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    try:
        with get_client(sync_client=True) as client:
            dep = client.read_deployment_by_name("pf-test-add/pf-test-add")
        assert dep.pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $PRESSFLEET_ROOT }}"}}
        ]
        flow_run = run_deployment("pf-test-add/pf-test-add", timeout=120, poll_interval=0.5)
        assert flow_run.state.is_completed(), flow_run.state
        assert Path(flow_run.state.result()["cwd"]) == ROOT
    finally:
        stack.deploy(cfg)  # back to the deploy-time resolved path


def test_real_prefect_yaml_deploys_every_deployment(prefect_api):
    cfg = prefect_api.cfg
    from pressfleet.stack.deployments import compose_files

    project = compose_files(ROOT / "prefect.yaml", cfg.environment)  # prefect.yaml with deployments/ (schedules)
    wanted = {d["name"]: d for d in project["deployments"]}
    assert "host-facts" in wanted

    stack.deploy(cfg, ROOT / "prefect.yaml")

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        deployments = {d.name: d for d in client.read_deployments()}
    assert set(wanted) <= set(deployments), sorted(deployments)
    for name, spec in wanted.items():
        dep = deployments[name]
        assert dep.entrypoint == spec["entrypoint"]
        assert dep.work_pool_name == "pressfleet"
        assert dep.description and dep.description.strip() == " ".join(spec["description"].split())
        # `{{ $PRESSFLEET_ROOT }}` is resolved at deploy time from prefect_env(): this clone
        assert dep.pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
        ]
        crons = sorted(str(s.schedule.cron) for s in dep.schedules)
        assert crons == sorted(str(s["cron"]) for s in spec["schedules"]), (name, crons)
    host_facts = deployments["host-facts"]
    assert "server" in host_facts.parameter_openapi_schema["properties"]
    backup = deployments["nightly-backup"].parameter_openapi_schema["properties"]
    assert {"site", "storage", "encryption_key", "full_every_days"} <= set(backup)
    assert deployments["fleet-backup"].schedules and deployments["ship-binlogs"].schedules
    assert not deployments["nightly-backup"].schedules  # run per site by fleet-backup


def test_up_twice_reuses_processes(prefect_api):
    cfg, first = prefect_api.cfg, prefect_api.status
    t0 = time.monotonic()
    again = stack.up(cfg)
    print(f"second up() in {time.monotonic() - t0:.1f} s")
    assert again.pids == first.pids
    assert again.healthy


def test_stale_or_foreign_pid_files_are_removed_not_killed(prefect_api, tmp_path):
    live = prefect_api.cfg
    cfg = make_config(tmp_path)
    cfg.run_dir.mkdir(parents=True)
    # a PID that is not a prefect process at all
    sleeper = subprocess.Popen(["sleep", "60"])
    # a prefect process, but another stack's (the session stack's server)
    cfg.pid_file("worker").write_text(f"{sleeper.pid}\n")
    cfg.pid_file("server").write_text(f"{prefect_api.status.pids['server']}\n")
    try:
        st = stack.status(cfg)
        assert st.pids == {"server": None, "worker": None, "watcher": None} and not st.healthy
        cfg.pid_file("worker").write_text(f"{sleeper.pid}\n")
        cfg.pid_file("server").write_text(f"{prefect_api.status.pids['server']}\n")
        assert stack.down(cfg) == {}
        assert not cfg.pid_file("worker").exists() and not cfg.pid_file("server").exists()
        assert sleeper.poll() is None
        assert stack.healthy(live) and pid_alive(prefect_api.status.pids["server"])
        # a PID that no longer exists
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        cfg.pid_file("server").write_text(f"{gone.pid}\n")
        assert stack.down(cfg) == {} and not cfg.pid_file("server").exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_up_refuses_a_port_it_does_not_own(prefect_api, tmp_path):
    cfg = make_config(tmp_path, port=prefect_api.cfg.port)
    with pytest.raises(stack.StackError, match="already in use"):
        stack.start_server(cfg)
    assert not cfg.pid_file("server").exists()


def test_down_stops_everything_and_up_restarts_on_same_db(prefect_api):
    cfg = prefect_api.cfg
    before = stack.status(cfg).pids
    t0 = time.monotonic()
    stopped = stack.down(cfg)
    print(f"down() in {time.monotonic() - t0:.1f} s")
    assert stopped == {name: pid for name, pid in before.items() if pid}
    assert set(stopped) >= {"server", "worker"}
    assert not any(pid_alive(p) for p in stopped.values())
    assert not cfg.pid_file("server").exists() and not cfg.pid_file("worker").exists()
    assert not stack.healthy(cfg)
    assert stack.status(cfg).pids == {"server": None, "worker": None, "watcher": None}
    assert stack.down(cfg) == {}  # idempotent

    # bring it back for the tests that follow (UI); the database keeps the deployments
    t0 = time.monotonic()
    st = stack.up(cfg, deploy_flows=False)
    print(f"up() after down() in {time.monotonic() - t0:.1f} s")
    assert st.healthy and st.pids["server"] not in before.values()
    prefect_api.status = st
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        names = {d.name for d in client.read_deployments()}
    assert "pf-test-add" in names
