"""Redis step: the object cache's server, sized from RAM, on loopback, with one ACL user per site.

Each site's PHP authenticates as its own Redis user, which may use only keys `<site>:*`; the `default` user is
off and pressfleet works as its admin user, whose password stays root-only on the host (pressfleet.ssh.redisacl).
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from pressfleet.ssh import converge, redisacl
from pressfleet.ssh.converge import ManagedFile, StepResult
from tasks.common import connected, step


def ensure_acl_file(conn) -> list[str]:
    """Redis refuses to start when its `aclfile` is missing: an empty one (Redis rewrites it on ACL SAVE, so it is
    created once and never managed as content)."""
    if converge.read_file_states(conn, [redisacl.ACL_FILE]).get(redisacl.ACL_FILE) is not None:
        return []
    return converge.ensure_files(conn, [ManagedFile(redisacl.ACL_FILE, b"", 0o640, "redis", "redis")])


def ensure_site_user(conn, site_name: str, password: str) -> list[str]:
    """The site's Redis user as it should be (compared with ACL GETUSER: a second run changes nothing)."""
    dry = converge.current_dry_run() is not None  # a dry run asks Redis (which may not be there yet) and reports
    differs = redisacl.site_user_differences(redisacl.site_user(conn, site_name, check=not dry), site_name, password)
    if not differs:
        return []
    if not converge.would(f"would set Redis user {site_name} ({', '.join(differs)})"):
        redisacl.set_site_user(conn, site_name, password)
    return [f"Redis user {site_name} ({', '.join(differs)})"]


@task(name="redis", cache_policy=NONE)
def configure_redis(server, files: list[ManagedFile], site_name: str, redis_password: str) -> StepResult:
    """Redis's configuration (restarted only when it changed), the admin user with `default` off, the site's user."""
    with step("redis") as result, connected(server) as conn:
        result.changed += ensure_acl_file(conn)
        result.changed += converge.ensure_files(conn, files, on_change=["systemctl", "restart", "redis-server"])
        result.changed += converge.ensure_service(conn, "redis-server")
        if converge.current_dry_run() is None:
            result.changed += redisacl.ensure_admin(conn)
        else:
            wanted = redisacl.ensure_admin(conn, probe=True)
            result.changed += wanted
            for what in wanted:
                converge.would(f"would make {what}")
        result.changed += ensure_site_user(conn, site_name, redis_password)
    return result


def remove_redis_user(conn, site_name: str, *, database: int = 0) -> list[str]:
    """Site removal: delete the site's Redis user (its connections close) and unlink its keys; returns what changed
    (empty when there was nothing). CONN is an open connection to the site's host, as root."""
    return redisacl.remove_user(conn, site_name, database=database)
