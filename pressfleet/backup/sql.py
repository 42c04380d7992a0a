"""Every SQL statement and mariadb/mariadb-dump/mariadb-binlog command line of the backup concern, as text.

The Python side builds its statements here (they travel on stdin, never on a command line); the host-side
scripts that run mariadb-dump, mariadb-binlog and the swap are named here too (SCRIPTS), so one file says
which SQL backups and restores run. Names put into SQL are validated identifiers (site names, pressfleet's
own pf_* names, table names matching TABLE_NAME).
"""

from __future__ import annotations

import re

BINLOG_DIR = "/var/lib/mysql"  # MariaDB's data folder: its binary logs, pressfleet's instance id and restore marks
TABLE_NAME = re.compile(r"^[A-Za-z0-9_$]{1,64}$")

# The mariadb client as the backup concern runs it: tab-separated, no header line.
QUERY = ["mariadb", "--batch", "--skip-column-names"]
CLIENT = ["mariadb", "--batch"]

# Host-side scripts (pressfleet/templates/scripts) whose SQL or mariadb-* command lines belong to this concern:
SCRIPTS = {
    "dump": "backup_dump.sh",          # mariadb-dump --single-transaction --master-data=2, rows counted
    "load": "restore_db.sh",           # DROP/CREATE DATABASE pf_*, then the dump through the mariadb client
    "counts": "db_counts.sh",          # SELECT COUNT(*) of every base table
    "swap": "db_swap.sh",              # one atomic RENAME TABLE live <-> pf_stage_/pf_old_
    "drop": "db_drop.sh",              # DROP DATABASE of a pf_* name no wp-config.php uses
    "replay": "binlog_replay.sh",      # mariadb-binlog --database --rewrite-db | mariadb
    "times": "binlog_times.sh",        # mariadb-binlog --base64-output=decode-rows: a log's last event time
}

LOG_BIN = "SELECT @@log_bin;\n"
FLUSH_AND_LIST_LOGS = "FLUSH BINARY LOGS;\nSHOW BINARY LOGS;\n"


def check_table(name: str) -> str:
    if not TABLE_NAME.match(name):
        raise ValueError(f"{name!r} is not a table name this SQL quotes")
    return name


def base_tables(db: str) -> str:
    """The base tables of DB, one per line."""
    return (f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{db}' "
            "AND table_type = 'BASE TABLE' ORDER BY table_name;\n")


def consistent_snapshot(db: str, tables: list[str]) -> str:
    """A consistent snapshot's binary-log position and every table's exact rows (no lock), then the logs."""
    counts = "".join(f"SELECT 'rows', '{check_table(t)}', COUNT(*) FROM `{db}`.`{t}`;\n" for t in tables)
    return ("START TRANSACTION WITH CONSISTENT SNAPSHOT;\nSHOW STATUS LIKE 'binlog_snapshot_file';\n"
            f"SHOW STATUS LIKE 'binlog_snapshot_position';\n{counts}COMMIT;\nSHOW BINARY LOGS;\n")


def create_scratch_user(name: str, password: str) -> str:
    """The restore-test's throwaway user with rights on its scratch database alone (kept out of the binary log:
    the password must never reach shipped logs)."""
    return ("SET SESSION sql_log_bin = 0;\n"
            f"CREATE USER '{name}'@'localhost' IDENTIFIED BY '{password}';\n"
            f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER ON `{name}`.* "
            f"TO '{name}'@'localhost';\n")


def drop_scratch_user(name: str) -> str:
    return f"DROP USER IF EXISTS '{name}'@'localhost';\n"
