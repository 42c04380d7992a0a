"""MariaDB GTID replication of one site's database, as names, SQL and parsers (pure; nothing runs here).

Each standby is a named replication connection (MariaDB multi-source: `CHANGE MASTER 'site' ...`) filtered
to the site's database and to its primary's own GTID domain, so one server can hold the standbys of sites
whose primaries are on different servers, and serve sites of its own at the same time. Every server taking
part gets a server_id and a gtid_domain_id derived from its address (unique within a fleet of IPv4 hosts).
SQL travels on stdin, never on a command line; names are validated site names and addresses.
"""

from __future__ import annotations

import ipaddress
import re
import zlib
from dataclasses import dataclass

from pressfleet import validate
from pressfleet.validate import InvalidInput

TLS_DIR = "/etc/mysql/pressfleet-tls"
CONF_PATH = "/etc/mysql/mariadb.conf.d/95-pressfleet-replication.cnf"
SEMISYNC_TIMEOUT_MS = 5000  # a write waits at most this long for the standby's ack, then goes on asynchronously

_GTID = re.compile(r"^(\d+)-(\d+)-(\d+)$")


def sql_string(value: str) -> str:
    """A SQL string literal (values here are validated names, addresses, paths or url-safe passwords)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def server_id(address: str) -> int:
    """A server_id (and gtid_domain_id) for the server at ADDRESS: its IPv4 address as a number, else a CRC32
    of the name. Never 0 or 1 (1 is every pressfleet server's id before it takes part in replication)."""
    address = validate.hostname(address)
    try:
        ip = ipaddress.ip_address(address)
        value = int(ip) & 0xFFFFFFFF if ip.version == 4 else zlib.crc32(ip.packed)
    except ValueError:
        value = zlib.crc32(address.encode())
    return value if value > 1 else value + 2


def connection_name(site: str) -> str:
    """The replication connection of SITE's standby (the validated site name)."""
    return validate.site_name(site)


def replication_user(site: str) -> str:
    """The MariaDB user the standby of SITE replicates as (on the primary, from the standby's address only)."""
    return f"pfrepl_{validate.site_name(site)}"


def parse_gtid_list(text: str) -> dict[int, tuple[int, int]]:
    """`0-1-42,7-9-3` -> {domain: (server_id, sequence)}; an empty text is an empty position."""
    out: dict[int, tuple[int, int]] = {}
    for part in (text or "").replace("\n", "").split(","):
        part = part.strip()
        if not part:
            continue
        m = _GTID.fullmatch(part)
        if not m:
            raise InvalidInput(f"{part[:60]!r} is not a GTID (domain-server-sequence)")
        domain, server, seq = (int(g) for g in m.groups())
        out[domain] = (server, seq)
    return out


def format_gtid_list(pos: dict[int, tuple[int, int]]) -> str:
    return ",".join(f"{d}-{s}-{n}" for d, (s, n) in sorted(pos.items()))


def merged_slave_pos(current: str, snapshot: str, domain: int) -> str:
    """The replica's gtid_slave_pos after seeding a standby from a snapshot taken at SNAPSHOT: every other
    domain's position as it was (other standbys on the same server), DOMAIN's from the snapshot."""
    pos = parse_gtid_list(current)
    pos.pop(domain, None)
    snap = parse_gtid_list(snapshot)
    if domain in snap:
        pos[domain] = snap[domain]
    return format_gtid_list(pos)


def gtid_distance(primary: str, replica: str, domain: int) -> int:
    """How many of DOMAIN's transactions the replica has not applied (0 when caught up or ahead)."""
    p = parse_gtid_list(primary).get(domain, (0, 0))[1]
    r = parse_gtid_list(replica).get(domain, (0, 0))[1]
    return max(0, p - r)


_DUMP_GTID = re.compile(r"gtid_slave_pos\s*=\s*'([0-9,\-]*)'")


def snapshot_position(dump_head: str) -> str:
    """The GTID position a `mariadb-dump --master-data=2 --gtid` snapshot was taken at: in its header, or at its
    end when the server has a gtid_slave_pos of its own (the dump then says so in the header); the last wins."""
    found = _DUMP_GTID.findall(dump_head)
    if not found:
        raise InvalidInput("the snapshot carries no GTID position (was it taken with --master-data --gtid?)")
    parse_gtid_list(found[-1])
    return found[-1]


@dataclass(frozen=True)
class ReplicaConnection:
    """One standby on a replica server: the site, its database and its primary."""

    site: str
    primary_address: str
    primary_domain: int

    def __post_init__(self) -> None:
        validate.site_name(self.site)
        validate.hostname(self.primary_address)


def render_replication_cnf(address: str, *, replicas: list[ReplicaConnection], semisync: bool) -> str:
    """/etc/mysql/mariadb.conf.d/95-pressfleet-replication.cnf on a server taking part in a standby pair.

    Read after pressfleet's 90-pressfleet.cnf: its own server_id and gtid_domain_id, MariaDB listening on its
    address too (the firewall lets only the pair's other server reach 3306), TLS with the server's own
    certificate, replicas' updates written to its binary log (so it can become a primary), semi-synchronous
    replication both ways when asked (lossless: the ack is awaited before the commit is visible), and each
    standby connection's filter to its site's database."""
    address = validate.hostname(address)
    ip = ipaddress.ip_address(address)  # MariaDB binds to addresses, not names
    sid = server_id(address)
    lines = [
        "# pressfleet: this server takes part in a standby pair (pressfleet standby add). Managed file.",
        "[mariadbd]",
        f"server_id = {sid}",
        f"gtid_domain_id = {sid}",
        f"bind-address = 127.0.0.1,{ip}",
        "log_slave_updates = ON",
        "gtid_strict_mode = OFF",
        f"ssl_cert = {TLS_DIR}/server.crt",
        f"ssl_key = {TLS_DIR}/server.key",
        "slave_net_timeout = 4",
        "rpl_semi_sync_master_wait_point = AFTER_SYNC",
        f"rpl_semi_sync_master_timeout = {SEMISYNC_TIMEOUT_MS}",
        f"rpl_semi_sync_master_enabled = {'ON' if semisync else 'OFF'}",
        f"rpl_semi_sync_slave_enabled = {'ON' if semisync else 'OFF'}",
        "skip_slave_start = OFF",
    ]
    for r in sorted(replicas, key=lambda r: r.site):
        lines.append(f"{connection_name(r.site)}.replicate_do_db = {validate.site_name(r.site)}")
    return "\n".join(lines) + "\n"


def primary_grant_sql(site: str, standby_address: str, password: str) -> str:
    """On the primary: the standby's replication user, from the standby's address only, over TLS only."""
    user = f"{sql_string(replication_user(site))}@{sql_string(validate.hostname(standby_address))}"
    pw = sql_string(validate.secret(password))
    return (
        "SET SESSION sql_log_bin = 0;\n"
        f"CREATE USER IF NOT EXISTS {user} IDENTIFIED BY {pw} REQUIRE SSL;\n"
        f"ALTER USER {user} IDENTIFIED BY {pw} REQUIRE SSL;\n"
        f"GRANT REPLICATION SLAVE, SLAVE MONITOR ON *.* TO {user};\n"
        "FLUSH PRIVILEGES;\n"
    )


def drop_user_sql(site: str, standby_address: str) -> str:
    user = f"{sql_string(replication_user(site))}@{sql_string(validate.hostname(standby_address))}"
    return f"SET SESSION sql_log_bin = 0;\nDROP USER IF EXISTS {user};\nFLUSH PRIVILEGES;\n"


def change_master_sql(site: str, primary_address: str, password: str, *, primary_domain: int, slave_pos: str,
                      ca_path: str) -> str:
    """On the standby: the site's connection to its primary (GTID, TLS with the primary's certificate
    verified, its domain only), started. All connections stop for the moment gtid_slave_pos is set."""
    conn = sql_string(connection_name(site))
    db = sql_string(validate.site_name(site))
    parse_gtid_list(slave_pos)
    return (
        "STOP ALL SLAVES;\n"
        f"SET GLOBAL gtid_slave_pos = {sql_string(slave_pos)};\n"
        f"CHANGE MASTER {conn} TO MASTER_HOST = {sql_string(validate.hostname(primary_address))}, MASTER_PORT = 3306,"
        f" MASTER_USER = {sql_string(replication_user(site))}, MASTER_PASSWORD = {sql_string(validate.secret(password))},"
        f" MASTER_USE_GTID = slave_pos, DO_DOMAIN_IDS = ({int(primary_domain)}),"
        f" MASTER_SSL = 1, MASTER_SSL_CA = {sql_string(validate.remote_path(ca_path))},"
        " MASTER_SSL_VERIFY_SERVER_CERT = 1, MASTER_CONNECT_RETRY = 1, MASTER_HEARTBEAT_PERIOD = 1;\n"
        f"SET @@default_master_connection = {conn};\n"
        f"SET GLOBAL replicate_do_db = {db};\n"
        "SET @@default_master_connection = '';\n"
        "START ALL SLAVES;\n"
    )


def remove_connection_sql(site: str) -> str:
    conn = sql_string(connection_name(site))
    return f"STOP SLAVE {conn};\nRESET SLAVE {conn} ALL;\n"


# What WordPress's database user may do on its own database (tasks/mariadb.py grants the same at provisioning).
WRITE_PRIVILEGES = "INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, CREATE TEMPORARY TABLES, LOCK TABLES"


def site_read_only_sql(site: str) -> str:
    """The site's database made read-only for the site alone: its user keeps SELECT and loses every write
    privilege, and its open connections are closed. MariaDB's read_only is server-wide and would stop every
    other site on the server; grants are per site and survive a restart (a fenced host that reboots stays
    fenced). Replication is not affected (its thread is not the site's user)."""
    name = validate.site_name(site)
    user = f"{sql_string(name)}@'localhost'"
    return (
        "SET SESSION sql_log_bin = 0;\n"
        f"REVOKE {WRITE_PRIVILEGES} ON `{name}`.* FROM {user};\n"
        "FLUSH PRIVILEGES;\n"
        f"SELECT CONCAT('KILL CONNECTION ', id, ';') FROM information_schema.processlist WHERE user = {sql_string(name)};\n"
    )


def site_writable_sql(site: str) -> str:
    """The site's database user given its write privileges back (the new primary, once promoted)."""
    name = validate.site_name(site)
    return (
        "SET SESSION sql_log_bin = 0;\n"
        f"GRANT SELECT, {WRITE_PRIVILEGES} ON `{name}`.* TO {sql_string(name)}@'localhost';\n"
        "FLUSH PRIVILEGES;\n"
    )


def site_can_write_sql(site: str) -> str:
    """1 when the site's user may INSERT into its database, else 0."""
    name = validate.site_name(site)
    return (f"SELECT COUNT(*) FROM mysql.db WHERE User = {sql_string(name)} AND Host = 'localhost' AND Db = "
            f"{sql_string(name)} AND Insert_priv = 'Y';\n")


@dataclass(frozen=True)
class ReplicaStatus:
    """One standby connection as `SHOW SLAVE 'site' STATUS` reports it."""

    io_running: str
    sql_running: str
    seconds_behind: int | None
    gtid_io_pos: str
    last_error: str

    @property
    def replicating(self) -> bool:
        return self.io_running == "Yes" and self.sql_running == "Yes"


def parse_slave_status(vertical: str) -> ReplicaStatus | None:
    """`SHOW SLAVE 'x' STATUS\\G` output -> ReplicaStatus (None when the connection does not exist)."""
    fields: dict[str, str] = {}
    for line in vertical.splitlines():
        key, sep, value = line.strip().partition(": ")
        if sep:
            fields[key] = value.strip()
        elif line.strip().endswith(":"):
            fields[line.strip()[:-1]] = ""
    if "Slave_IO_Running" not in fields:
        return None
    behind = fields.get("Seconds_Behind_Master", "NULL")
    errors = [fields.get(k, "") for k in ("Last_IO_Error", "Last_SQL_Error")]
    return ReplicaStatus(
        io_running=fields.get("Slave_IO_Running", ""), sql_running=fields.get("Slave_SQL_Running", ""),
        seconds_behind=int(behind) if behind.isdigit() else None, gtid_io_pos=fields.get("Gtid_IO_Pos", ""),
        last_error="; ".join(e for e in errors if e)[:500],
    )
