"""The stack as `make demo` starts it, in a private state folder (issue 9, items 15, 17 and 22).

One stack for the module: PRESSFLEET_STATE is a temporary folder (never the operator's .state/), the stack's
home and run dir are the defaults inside it, and the project's own prefect.yaml is deployed with deployments/
(environment lab), as `make demo` does. Then:

- item 22: the deployments the server holds carry exactly the schedules and parameters of deployments/;
- item 17: collect-metrics run through its deployment by the worker, with no Server block saved, completes and
  says "no servers yet";
- item 15: after a secret block is saved, a local backup object written and that run, nothing under the state
  folder is readable, writable or searchable by group or others (Prefect's database and logs, results, the
  metrics store, backups); and a folder and a file left open before start-up were closed by it.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from pressfleet.stack import deployments
from pressfleet.stack import control as stack
from pressfleet.paths import ROOT
from tests.server.conftest import api_settings, free_port, pid_alive

pytestmark = [pytest.mark.server, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def demo_like_stack(tmp_path_factory):
    base = tmp_path_factory.mktemp("state-modes")
    state = base / "state"
    (state / "old-reports").mkdir(parents=True, mode=0o755)
    os.chmod(state / "old-reports", 0o755)
    (state / "old-reports" / "r.md").write_text("left by an older version\n")
    os.chmod(state / "old-reports" / "r.md", 0o644)
    saved = {k: os.environ.get(k) for k in ("PRESSFLEET_STATE", "PRESSFLEET_ENV", "PRESSFLEET_METRICS_URL")}
    os.environ["PRESSFLEET_STATE"] = str(state)
    os.environ.pop("PRESSFLEET_ENV", None)
    os.environ.pop("PRESSFLEET_METRICS_URL", None)
    cfg = stack.StackConfig(port=free_port(), database_url=None)
    assert cfg.home == state / "prefect" and cfg.prefect_file == ROOT / "prefect.yaml"
    try:
        st = stack.up(cfg, log=lambda m: print(f"[state-modes stack] {m}"))
        with api_settings(cfg, base / "client-home"):
            yield cfg, st, state
    finally:
        pids = [p for p in stack.status(cfg).pids.values() if p]
        stack.down(cfg)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        assert not [p for p in pids if pid_alive(p)]


def open_modes(root: Path) -> list[str]:
    bad = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [""] + dirnames + filenames:
            p = os.path.join(dirpath, name) if name else dirpath
            st = os.lstat(p)
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o077:
                bad.append(f"{oct(st.st_mode & 0o777)} {os.path.relpath(p, root)}")
    return bad


def test_the_deployed_schedules_and_parameters_come_from_deployments_folder(demo_like_stack):
    from prefect.client.orchestration import get_client

    cfg, _, _ = demo_like_stack
    want = {d["name"]: d for d in deployments.compose_files(cfg.prefect_file, "lab")["deployments"]}
    with get_client(sync_client=True) as client:
        got = {d.name: d for d in client.read_deployments()}
    assert set(got) == set(want)
    scheduled = 0
    for name, d in want.items():
        crons = sorted((s.schedule.cron, s.schedule.timezone) for s in got[name].schedules)
        assert crons == sorted((s["cron"], s["timezone"]) for s in d["schedules"]), name
        scheduled += bool(crons)
        for key, value in (d.get("parameters") or {}).items():
            assert got[name].parameters.get(key) == value, (name, key)
    import yaml

    listed = yaml.safe_load((deployments.deployments_dir(cfg.prefect_file) / "schedules.yaml").read_text())["schedules"]
    assert scheduled == len(listed) >= 15  # every deployment schedules.yaml lists (dr-drill and the copies the newest)
    assert got["check-updates"].schedules, "check-updates runs every morning"
    assert got["auto-update"].schedules, "auto-update applies the sites' update policies every morning"
    assert got["weekly-prune"].parameters["dry_run"] is False  # from deployments/lab.yaml
    pool_env = stack._api(cfg, "GET", f"/work_pools/{cfg.work_pool}")["base_job_template"]
    assert pool_env["variables"]["properties"]["env"]["default"] == {"PYTHONUNBUFFERED": "1"}  # work-pool.json


def test_collect_metrics_with_no_servers_completes_with_a_note(demo_like_stack):
    from prefect.deployments import run_deployment

    for _ in range(5):
        flow_run = run_deployment("collect-metrics/collect-metrics", timeout=300, poll_interval=1)
        # the deployment's own 5-minute schedule may have a round running: one at a time, so ours is cancelled
        if not (flow_run.state.is_cancelled() and "concurrency limit" in (flow_run.state.message or "")):
            break
        time.sleep(3)
    assert flow_run.state.is_completed(), flow_run.state
    summary = flow_run.state.result()
    assert summary.note == "no servers yet: nothing to do" and summary.hosts == []


def test_nothing_under_the_state_folder_is_open_to_group_or_others(demo_like_stack):
    from prefect.blocks.system import Secret

    from pressfleet.storage.local import LocalStore

    cfg, _, state = demo_like_stack
    Secret(value="not-for-others").save("hf-state-modes-secret", overwrite=True)
    (state / "backups").mkdir(mode=0o700, exist_ok=True)
    LocalStore(state / "backups").put_bytes("blog/backups/1/part.zst", b"wp-config.php and the database")
    assert (state / "prefect" / "prefect.db").is_file() and (state / "metrics.db").is_file()
    assert (state / "backups" / "blog" / "backups" / "1" / "part.zst").is_file()
    assert open_modes(state) == []
    assert stat.S_IMODE((state / "old-reports").stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "old-reports" / "r.md").stat().st_mode) == 0o600


def test_a_pool_with_another_template_gets_the_one_in_deployments_folder(demo_like_stack, tmp_path):
    """An existing pool (e.g. the operator's from before deployments/work-pool.json) is brought in line."""
    import json

    cfg, _, _ = demo_like_stack
    default = json.loads(stack.run_prefect(cfg, "work-pool", "get-default-base-job-template", "--type",
                                           "process").stdout)
    (tmp_path / "default.json").write_text(json.dumps(default))
    stack.run_prefect(cfg, "work-pool", "update", cfg.work_pool, "--base-job-template", str(tmp_path / "default.json"))

    def env_default():
        pool = stack._api(cfg, "GET", f"/work_pools/{cfg.work_pool}")
        return pool["base_job_template"]["variables"]["properties"]["env"].get("default")

    assert env_default() is None
    stack.ensure_work_pool(cfg)
    assert env_default() == {"PYTHONUNBUFFERED": "1"}
    assert stack._api(cfg, "GET", f"/work_pools/{cfg.work_pool}")["base_job_template"] == json.loads(
        cfg.pool_template.read_text())
