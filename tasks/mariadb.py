"""MariaDB steps: tuning from RAM, and each site's own database and least-privilege user."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from pressfleet.ssh import converge
from pressfleet.ssh.converge import ManagedFile, StepResult
from pressfleet.ssh.remote import run
from pressfleet.dr.replication import WRITE_PRIVILEGES
from tasks.common import connected, step

def _sql_string(value: str) -> str:
    """A SQL string literal. Values here are validated site names or generated url-safe passwords;
    the escaping is belt and braces. SQL travels on stdin, never on a command line."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def database_sql(site_name: str, password: str, *, read_only: bool = False) -> tuple[str, str]:
    """(probe, apply) SQL for the site's database and user (the site name is a validated identifier). With
    READ_ONLY (the site's standby, or its fenced old primary) the user may only SELECT."""
    db, user, pw = f"`{site_name}`", _sql_string(site_name), _sql_string(password)
    writes = "Y" if not read_only else "N"
    probe = (
        f"SELECT (SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = {user}),"
        f" (SELECT COUNT(*) FROM mysql.user WHERE User = {user} AND Host = 'localhost'"
        f"   AND authentication_string = PASSWORD({pw})),"
        f" (SELECT COUNT(*) FROM mysql.db WHERE User = {user} AND Host = 'localhost' AND Db = {user}"
        f"   AND Select_priv = 'Y' AND Alter_priv = '{writes}' AND Insert_priv = '{writes}' AND Grant_priv = 'N');\n"
    )
    apply = (
        # Kept out of the binary log: it is shipped to backup storage, and these statements carry the password.
        "SET SESSION sql_log_bin = 0;\n"
        f"CREATE DATABASE IF NOT EXISTS {db} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n"
        f"CREATE USER IF NOT EXISTS {user}@'localhost' IDENTIFIED BY {pw};\n"
        f"ALTER USER {user}@'localhost' IDENTIFIED BY {pw};\n"
        # What WordPress and its updates need on its own database, and nothing on any other.
        + (f"GRANT SELECT ON {db}.* TO {user}@'localhost';\n"
           f"REVOKE {WRITE_PRIVILEGES} ON {db}.* FROM {user}@'localhost';\n" if read_only else
           f"GRANT SELECT, {WRITE_PRIVILEGES} ON {db}.* TO {user}@'localhost';\n")
        + "FLUSH PRIVILEGES;\n"
    )
    return probe, apply


def ensure_database(conn, site_name: str, password: str, *, read_only: bool = False) -> list[str]:
    probe, apply = database_sql(site_name, password, read_only=read_only)
    dry = converge.current_dry_run() is not None  # a dry run probes (MariaDB may not be there yet) and reports
    state = run(conn, ["mariadb", "--batch", "--skip-column-names"], stdin=probe, check=not dry).stdout.split()
    if state == ["1", "1", "1"]:
        return []
    if not converge.would(f"would create or mend database and user {site_name}"):
        run(conn, ["mariadb", "--batch"], stdin=apply)
    return [f"database and user {site_name}"]


@task(name="mariadb", cache_policy=NONE)
def configure_mariadb(server, files: list[ManagedFile], site_name: str, db_password: str,
                      read_only: bool = False) -> StepResult:
    """MariaDB tuned from the host's RAM (restart only if the tuning changed), then the site's database
    (read-only for the site's user on its standby or fenced old primary)."""
    with step("mariadb") as result, connected(server) as conn:
        # Debian's package does not create the slow query log's folder; without it the log is silently off.
        if not run(conn, ["test", "-d", "/var/log/mysql"], check=False).ok and not converge.would(
                "would create /var/log/mysql"):  # dry run
            run(conn, ["install", "-d", "-o", "mysql", "-g", "adm", "-m", "2750", "/var/log/mysql"])
            result.changed.append("created /var/log/mysql (slow query log)")
        result.changed += converge.ensure_files(
            conn, files,
            # MariaDB has no config-only check: a restart that fails puts the last good file back.
            on_change=["systemctl", "restart", "mariadb"],
        )
        result.changed += converge.ensure_service(conn, "mariadb")
        result.changed += ensure_database(conn, site_name, db_password, read_only=read_only)
    return result
