"""Prefect tasks that look at one server."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.server import Server
from pressfleet.plan import facts
from pressfleet.ssh import remote
from tasks.common import connected

FACTS_TIMEOUT_SECONDS = 60


@task(name="gather-host-facts", cache_policy=NO_CACHE)
def gather_host_facts(server: Server) -> facts.HostFacts:
    """Read what the server is (OS, kernel, CPUs, memory, disks, key packages, running services).

    One read-only remote command (`sh -s` with the facts script on stdin), on the run's connection
    (tasks.common.connected).
    """
    with connected(server) as conn:
        result = remote.run(
            conn,
            facts.host_facts_command(),
            stdin=facts.script_text(),
            timeout=FACTS_TIMEOUT_SECONDS,
        )
    return facts.parse_host_facts(result.stdout)
