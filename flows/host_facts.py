"""Flow: what is this server? Read-only facts about one server, as a table."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_table_artifact

from blocks.server import Server
from pressfleet.plan.facts import HostFacts, artifact_key, facts_table
from tasks.host import gather_host_facts


@flow(name="host-facts")
def host_facts(server: Server) -> HostFacts:
    """Show what a server is: OS and version, kernel, CPUs, memory, disks, key packages and running services.

    Pick the Server block to look at. The flow changes nothing on the server: it opens one SSH
    connection (refused unless the server presents the host key pinned on the block) and runs one
    read-only command. The facts appear as a table artifact named host-facts-<address> and are
    the flow's result.
    """
    facts = gather_host_facts(server)
    create_table_artifact(
        key=artifact_key(server.address),
        table=facts_table(facts),
        description=f"Host facts for {server.target()}: {facts.os_pretty_name}, {facts.hostname}",
    )
    return facts
