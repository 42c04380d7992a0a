"""Redis step: the object cache's server, sized from RAM, on a unix socket the site's user can reach."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from pressfleet.ssh import converge
from pressfleet.ssh.converge import ManagedFile, StepResult
from tasks.common import connected, step


@task(name="redis", cache_policy=NONE)
def configure_redis(server, files: list[ManagedFile]) -> StepResult:
    with step("redis") as result, connected(server) as conn:
        result.changed += converge.ensure_files(conn, files, on_change=["systemctl", "restart", "redis-server"])
        result.changed += converge.ensure_service(conn, "redis-server")
    return result
