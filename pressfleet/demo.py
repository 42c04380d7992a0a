"""`make demo`: the local Prefect stack, a lab host, and the main job run through its deployment, as the UI would."""

from __future__ import annotations

import os
import time
from typing import Callable

from pressfleet import lab, stack


def _connect_prefect(cfg: stack.StackConfig) -> None:
    env = stack.prefect_env(cfg)
    for key in ("PREFECT_HOME", "PREFECT_API_URL", "PREFECT_UI_URL", "PREFECT_RESULTS_PERSIST_BY_DEFAULT"):
        os.environ[key] = env[key]


def block_ref(block) -> dict:
    """How a deployment parameter refers to a saved block (what the UI's block picker sends)."""
    return {"$ref": {"block_document_id": str(block._block_document_id)}}


def run_deployment_and_wait(name: str, parameters: dict, *, timeout: float = 900):
    """Trigger deployment NAME, wait for its end; return (flow_run, result). Raises if it did not complete."""
    from prefect.deployments import run_deployment

    flow_run = run_deployment(name, parameters=parameters, timeout=timeout)
    state = flow_run.state
    if state is None or not state.is_completed():
        raise RuntimeError(f"deployment {name} ended {state.name if state else 'without a state'}: {state.message if state else ''}")
    return flow_run, state.result()


def run(host_name: str = "web1", *, log: Callable[[str], None] = print) -> dict:
    started = time.monotonic()
    cfg = stack.StackConfig()
    status = stack.up(cfg, log=log)
    _connect_prefect(cfg)

    from blocks.server import Server
    from pressfleet.labblocks import save_lab_server_block

    t = time.monotonic()
    host = lab.up(host_name, log=log)
    block_name = save_lab_server_block(host)
    log(f"lab host {host.name} up at {host.address} (host key {host.fingerprint}); Server block {block_name!r} "
        f"[{time.monotonic() - t:.1f} s]")

    t = time.monotonic()
    server = Server.load(block_name)
    flow_run, facts = run_deployment_and_wait("host-facts/host-facts", {"server": block_ref(server)})
    log(f"host-facts ran through its deployment: flow run {flow_run.name} Completed [{time.monotonic() - t:.1f} s]")

    disks = ", ".join(f"{d.mount} {d.size_bytes / 2**30:.1f} GiB" for d in facts.disks[:3])
    print(
        f"\nPrefect UI:   {status.ui_url}\n"
        f"flow run:     {status.ui_url}/runs/flow-run/{flow_run.id}\n"
        f"host:         {facts.hostname} ({host.address}), {facts.os_pretty_name}, kernel {facts.kernel}\n"
        f"CPUs / RAM:   {facts.cpus} / {facts.mem_total_bytes / 2**30:.1f} GiB\n"
        f"disks:        {disks}\n"
        f"services:     {len(facts.services)} running ({', '.join(facts.services[:6])}...)\n"
        f"demo took {time.monotonic() - started:.1f} s; `make down` stops everything."
    )
    return {"flow_run_id": str(flow_run.id), "facts": facts}
