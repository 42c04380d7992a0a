"""The remote steps of a standby pair: TLS, replication, seeding, the file sync, fencing and promotion.

Each step reads the host's state first and changes only what differs. SQL goes on stdin; passwords never on
a command line. A site's files are read and written as the site's own user when the site can write them
(its uploads), so nothing a site's PHP plants is ever followed by root.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Optional

from pressfleet.dr import replication as rep
from pressfleet.dr.fencing import _cron, _timer, fence, set_site_writable, sql, sync_unit  # noqa: F401 - the steps' API
from pressfleet.fleet.siteconfig import SiteConfig
from pressfleet.ssh import converge
from pressfleet.ssh.converge import ManagedFile
from pressfleet.ssh.remote import RemoteCommandError, run

SYNC_DIR = "/etc/pressfleet/filesync"
SYNC_STATE = "/var/lib/pressfleet/filesync"
HEAD_KEEP = 64 * 1024
MARK = "pressfleet-filesync"


# --- TLS -------------------------------------------------------------------------------------------------

_MAKE_CERT = r"""
set -eu
dir=$1 addr=$2
install -d -m 0750 -o root -g mysql "$dir"
if [ ! -s "$dir/server.crt" ] || ! openssl x509 -in "$dir/server.crt" -noout -checkend 2592000 >/dev/null; then
  umask 077
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj "/CN=$addr" \
    -addext "subjectAltName=IP:$addr" -keyout "$dir/server.key.new" -out "$dir/server.crt.new" 2>/dev/null
  chown mysql:mysql "$dir/server.key.new"; chmod 0600 "$dir/server.key.new"; chmod 0644 "$dir/server.crt.new"
  mv "$dir/server.key.new" "$dir/server.key"; mv "$dir/server.crt.new" "$dir/server.crt"
  echo created
fi
"""


def ensure_tls(conn, address: str) -> tuple[str, list[str]]:
    """The server's own certificate for MariaDB (made on the host: its key never leaves it); (PEM, changed)."""
    out = run(conn, ["sh", "-c", _MAKE_CERT, "sh", rep.TLS_DIR, address]).stdout
    pem = run(conn, ["cat", f"{rep.TLS_DIR}/server.crt"]).stdout
    return pem, ([f"MariaDB TLS certificate for {address}"] if "created" in out else [])


def peer_ca_path(peer_address: str) -> str:
    return f"{rep.TLS_DIR}/peer-{peer_address.replace(':', '_')}.crt"


def ensure_peer_ca(conn, peer_address: str, pem: str) -> list[str]:
    return converge.ensure_files(conn, [ManagedFile(peer_ca_path(peer_address), pem.encode(), 0o644)])


def ensure_replication_conf(conn, text: str) -> list[str]:
    """The replication settings; MariaDB restarts when they change (a failed restart puts the old file back)."""
    return converge.ensure_files(conn, [ManagedFile(rep.CONF_PATH, text.encode(), 0o644)],
                                 on_change=["systemctl", "restart", "mariadb"])


def gtid_binlog_pos(conn) -> str:
    return sql(conn, "SELECT @@gtid_binlog_pos;\n").strip()


# --- seeding ---------------------------------------------------------------------------------------------

class _Head(io.RawIOBase):
    """Passes a stream through, keeping its first and last bytes: the dump's GTID position is in its header, or,
    when the server has been a replica itself (a gtid_slave_pos of its own), at its end."""

    def __init__(self, src) -> None:
        self.src, self.head, self.tail = src, bytearray(), bytearray()

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.src.read(len(b))
        if len(self.head) < HEAD_KEEP:
            self.head += data[: HEAD_KEEP - len(self.head)]
        self.tail = (self.tail + data)[-HEAD_KEEP:]
        b[: len(data)] = data
        return len(data)


def seed(primary_conn, standby_conn, site: str) -> tuple[str, int]:
    """The site's database copied from a consistent snapshot of the primary (one transaction, InnoDB) into the
    standby, streamed (bounded memory here), not written to the standby's binary log. Returns the snapshot's
    GTID position and the bytes moved."""
    from pressfleet.backup.streams import pipe_to_remote, remote_reader

    reader = remote_reader(primary_conn, ["mariadb-dump", "--single-transaction", "--master-data=2", "--gtid",
                                          "--routines", "--triggers", "--events", "--databases", site])
    head = _Head(reader)
    pipe_to_remote(standby_conn, ["mariadb", "--init-command=SET SESSION sql_log_bin=0"],
                   io.BufferedReader(head, buffer_size=1 << 20))
    text = head.head.decode("utf-8", errors="replace") + "\n" + head.tail.decode("utf-8", errors="replace")
    try:
        return rep.snapshot_position(text), len(head.head)
    except ValueError as exc:
        lines = [ln for ln in text.splitlines()[:40] if ln.startswith("--") or "MASTER" in ln.upper()]
        raise type(exc)(f"{exc}; the dump began: {' | '.join(lines)[:800]}") from None


def start_replica(standby_conn, site: str, primary_address: str, password: str, snapshot: str) -> None:
    domain = rep.server_id(primary_address)
    current = sql(standby_conn, "SELECT @@gtid_slave_pos;\n").strip()
    slave_pos = rep.merged_slave_pos(current, snapshot, domain)
    exists = replica_status(standby_conn, site) is not None
    text = (rep.remove_connection_sql(site) if exists else "") + rep.change_master_sql(
        site, primary_address, password, primary_domain=domain, slave_pos=slave_pos,
        ca_path=peer_ca_path(primary_address))
    sql(standby_conn, text)


def replica_status(conn, site: str) -> Optional[rep.ReplicaStatus]:
    out = run(conn, ["mariadb", "--batch"], stdin=f"SHOW SLAVE {rep.sql_string(rep.connection_name(site))} STATUS\\G\n",
              check=False, timeout=20)
    if not out.ok:
        return None
    return rep.parse_slave_status(out.stdout)


def remove_replica(conn, site: str) -> list[str]:
    if replica_status(conn, site) is None:
        return []
    sql(conn, rep.remove_connection_sql(site))
    return [f"replication connection {site} removed"]


def wait_applied(conn, site: str, timeout: float, until: str | None = None) -> bool:
    """Until the standby has applied every transaction it received (its relay log), or the primary's position
    UNTIL when the primary could still be read (a planned switch: nothing is left behind), at most TIMEOUT s."""
    status = replica_status(conn, site)
    if status is None:
        return True
    pos = until or status.gtid_io_pos
    if not pos:
        return True
    got = sql(conn, f"SELECT MASTER_GTID_WAIT({rep.sql_string(pos)}, {float(timeout)});\n", check=False,
              timeout=timeout + 10).strip()
    return got == "0"


def promote(conn, site: str, *, apply_timeout: float = 30, until: str | None = None) -> list[str]:
    """The standby becomes the site's primary: what it received (or the fenced primary's last position UNTIL) is
    applied, its connection is removed, its site user may write, its WordPress cron runs."""
    changed = []
    if until:
        domain_pos = until
        if not wait_applied(conn, site, apply_timeout, until=domain_pos):
            changed.append(f"the old primary's last transaction ({domain_pos}) not applied within {apply_timeout:.0f} s")
    if not wait_applied(conn, site, apply_timeout):
        changed.append(f"relay log not applied within {apply_timeout:.0f} s: promoted with what was applied")
    changed += remove_replica(conn, site)
    changed += set_site_writable(conn, site, True)
    changed += _cron(conn, site, True)
    return changed


def stop_cron(server, site: str) -> list[str]:
    """The site's WordPress cron stopped on SERVER (its standby: cron writes)."""
    from tasks.common import connected

    with connected(server) as conn:
        return _cron(conn, site, False)


# --- file sync -------------------------------------------------------------------------------------------

def _sync_units(cfg: SiteConfig, standby_address: str, interval_s: int) -> dict[str, str]:
    """The primary's timer and service that push wp-content to the standby every INTERVAL_S seconds.

    Uploads (the site's PHP can write them) go as the site's own user, so a link the site plants is never
    followed by root; the rest of wp-content (root's when PHP may write only uploads) goes as root. Each key
    is allowed exactly one thing on the standby (a forced rrsync into that folder, as that user).
    """
    unit = sync_unit(cfg.name)
    content = f"{cfg.web_root}/wp-content"
    ssh = (f"ssh -i {SYNC_DIR}/{cfg.name}.%s.key -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes "
           f"-o UserKnownHostsFile={SYNC_DIR}/{cfg.name}.known_hosts -o ConnectTimeout=5")
    # The site's part keeps times and modes (its receiver is the site's user: owner and group are its own);
    # root's part keeps owners, groups (by name: ids differ between servers) and ACLs, which is what lets the
    # site's PHP read root's files.
    rsync = "/usr/bin/rsync -rltp --delete --safe-links --timeout=60"
    if cfg.uploads_only_writable:
        site_part = f"{rsync} -e '{ssh % 'site'}' {content}/uploads/ root@{standby_address}:"
        root_part = (f"{rsync} -goA -e '{ssh % 'root'}' --exclude=/uploads/ --exclude=/cache/ --exclude=/upgrade/ "
                     f"{content}/ root@{standby_address}:")
        execs = [f"ExecStart=/usr/bin/setpriv --reuid={cfg.user} --regid={cfg.group} --clear-groups {site_part}",
                 f"ExecStart={root_part}"]
    else:
        site_part = f"{rsync} -e '{ssh % 'site'}' --exclude=/cache/ {content}/ root@{standby_address}:"
        execs = [f"ExecStart=/usr/bin/setpriv --reuid={cfg.user} --regid={cfg.group} --clear-groups {site_part}"]
    service = "\n".join([
        "# pressfleet: the file sync of a standby pair (pressfleet standby add). Managed file.",
        "[Unit]", f"Description=pressfleet: {cfg.name} wp-content to its standby {standby_address}",
        "[Service]", "Type=oneshot", "Nice=10", "IOSchedulingClass=idle", *execs,
        f"ExecStartPost=/usr/bin/touch {SYNC_STATE}/{cfg.name}.ok", ""])
    timer = "\n".join([
        "# pressfleet: the file sync of a standby pair. Managed file.",
        "[Unit]", f"Description=pressfleet: {cfg.name} wp-content to its standby every {interval_s} s",
        "[Timer]", "OnActiveSec=1", f"OnUnitActiveSec={interval_s}", "AccuracySec=1", "",
        "[Install]", "WantedBy=timers.target", ""])
    return {f"/etc/systemd/system/{unit}.service": service, f"/etc/systemd/system/{unit}.timer": timer}


_KEYGEN = r"""
set -eu
dir=$1 name=$2 owner=$3
install -d -m 0755 -o root -g root "$dir"
install -d -m 0755 -o root -g root /var/lib/pressfleet/filesync
key="$dir/$name.key"
if [ ! -s "$key" ]; then
  ssh-keygen -q -t ed25519 -N '' -C "pressfleet-filesync $name" -f "$key"
fi
chown "$owner" "$key"; chmod 0600 "$key"
cat "$key.pub"
"""

_AUTHORIZE = r"""
set -eu
mark=$1 line=$2
f=/root/.ssh/authorized_keys
install -d -m 0700 /root/.ssh; touch "$f"; chmod 0600 "$f"
if grep -qxF -- "$line" "$f"; then exit 0; fi
grep -v -- " $mark\$" "$f" > "$f.new" || true
printf '%s\n' "$line" >> "$f.new"
chmod 0600 "$f.new"; mv "$f.new" "$f"
echo changed
"""

_UNAUTHORIZE = r"""
set -eu
mark=$1
f=/root/.ssh/authorized_keys
[ -f "$f" ] || exit 0
if grep -q -- " $mark\$" "$f"; then
  grep -v -- " $mark\$" "$f" > "$f.new" || true
  chmod 0600 "$f.new"; mv "$f.new" "$f"; echo changed
fi
"""


def ensure_file_sync(primary_conn, standby_conn, cfg: SiteConfig, primary_address: str, standby_address: str,
                     standby_host_key: str, interval_s: int) -> list[str]:
    """Keys, the standby's forced commands, the pinned host key and the primary's timer; the first sync run."""
    changed: list[str] = []
    content = f"{cfg.web_root}/wp-content"
    parts = [("site", cfg.user, f"{content}/uploads" if cfg.uploads_only_writable else content)]
    if cfg.uploads_only_writable:
        parts.append(("root", "root", content))
    for kind, owner, target in parts:
        name = f"{cfg.name}.{kind}"
        pub = run(primary_conn, ["sh", "-c", _KEYGEN, "sh", SYNC_DIR, name, owner]).stdout.strip().splitlines()[-1]
        key_type, key_b64 = pub.split()[:2]
        drop = "" if owner == "root" else f"/usr/bin/setpriv --reuid={cfg.user} --regid={cfg.group} --clear-groups "
        mark = f"{MARK}-{cfg.name}-{kind}"
        line = (f'restrict,from="{primary_address}",command="{drop}/usr/bin/rrsync -no-lock {target}" '
                f"{key_type} {key_b64} {mark}")
        if "changed" in run(standby_conn, ["sh", "-c", _AUTHORIZE, "sh", mark, line]).stdout:
            changed.append(f"standby accepts the {kind} file sync key of {cfg.name}")
    units = _sync_units(cfg, standby_address, interval_s)
    files = [ManagedFile(f"{SYNC_DIR}/{cfg.name}.known_hosts", f"{standby_address} {standby_host_key}\n".encode(), 0o644),
             *(ManagedFile(p, t.encode(), 0o644) for p, t in units.items())]
    changed += converge.ensure_files(primary_conn, files, on_change=["systemctl", "daemon-reload"])
    unit = sync_unit(cfg.name)
    run(primary_conn, ["systemctl", "start", f"{unit}.service"], timeout=300)  # the first sync, waited for
    changed += _timer(primary_conn, unit, True)
    return changed


def remove_file_sync(conn, site: str) -> list[str]:
    """The timer and keys on a primary (after a failover or a `standby remove`)."""
    unit = sync_unit(site)
    changed = _timer(conn, unit, False)
    out = run(conn, ["sh", "-c", 'for f in "$@"; do [ -e "$f" ] && rm -f "$f" && echo "$f"; done; true', "sh",
                     f"/etc/systemd/system/{unit}.service", f"/etc/systemd/system/{unit}.timer",
                     *(f"{SYNC_DIR}/{site}.{k}.key{s}" for k in ("site", "root") for s in ("", ".pub")),
                     f"{SYNC_DIR}/{site}.known_hosts", f"{SYNC_STATE}/{site}.ok"]).stdout.split()
    if out:
        run(conn, ["systemctl", "daemon-reload"])
        changed.append(f"file sync of {site} removed")
    return changed


def unauthorize_file_sync(conn, site: str) -> list[str]:
    changed = []
    for kind in ("site", "root"):
        if "changed" in run(conn, ["sh", "-c", _UNAUTHORIZE, "sh", f"{MARK}-{site}-{kind}"]).stdout:
            changed.append(f"{kind} file sync key of {site} no longer accepted")
    return changed


def file_sync_age(conn, site: str) -> Optional[float]:
    """Seconds since the last complete file sync of SITE on this primary (None: none yet)."""
    out = run(conn, ["sh", "-c", 'f=$1; [ -e "$f" ] && echo $(( $(date +%s) - $(stat -c %Y "$f") ))', "sh",
                     f"{SYNC_STATE}/{site}.ok"], check=False).stdout.strip()
    return float(out) if out.isdigit() else None


# --- status ----------------------------------------------------------------------------------------------

@dataclass
class PairStatus:
    site: str
    primary: str
    standby: str
    state: str
    replicating: bool
    io_running: str = ""
    sql_running: str = ""
    seconds_behind: Optional[int] = None
    transactions_behind: Optional[int] = None
    file_sync_age_s: Optional[float] = None
    error: str = ""

    def line(self) -> str:
        lag = "?" if self.seconds_behind is None else f"{self.seconds_behind} s"
        behind = "?" if self.transactions_behind is None else str(self.transactions_behind)
        files = "?" if self.file_sync_age_s is None else f"{self.file_sync_age_s:.0f} s ago"
        what = "replicating" if self.replicating else f"NOT replicating (io {self.io_running or '-'}, sql {self.sql_running or '-'})"
        return (f"{self.site}: primary {self.primary}, standby {self.standby} ({self.state}): {what}; lag {lag}, "
                f"{behind} transaction(s) behind; files synced {files}" + (f"; error: {self.error}" if self.error else ""))


def pair_status(pair, *, timeout: float = 10) -> PairStatus:
    """Replication and file sync of the pair, read from both servers (a server that cannot be reached says so)."""
    st = PairStatus(pair.site, pair.primary.address, pair.standby.address, pair.standby_state, False)
    primary_pos = None
    try:
        conn = pair.primary.connect()
        try:
            primary_pos = gtid_binlog_pos(conn)
            st.file_sync_age_s = file_sync_age(conn, pair.site)
        finally:
            conn.close()
    except Exception as exc:  # noqa: BLE001 - reported in the status
        st.error = f"primary: {type(exc).__name__}: {str(exc)[:200]}"
    try:
        conn = pair.standby.connect()
        try:
            status = replica_status(conn, pair.site)
            if status is not None:
                st.io_running, st.sql_running = status.io_running, status.sql_running
                st.seconds_behind, st.replicating = status.seconds_behind, status.replicating
                if status.last_error:
                    st.error = (st.error + "; " if st.error else "") + status.last_error
                if primary_pos is not None:
                    applied = sql(conn, "SELECT @@gtid_slave_pos;\n").strip()
                    st.transactions_behind = rep.gtid_distance(primary_pos, applied, rep.server_id(pair.primary.address))
        finally:
            conn.close()
    except Exception as exc:  # noqa: BLE001 - reported in the status
        st.error = (st.error + "; " if st.error else "") + f"standby: {type(exc).__name__}: {str(exc)[:200]}"
    return st


def flush_caches_of(conn, cfg: SiteConfig) -> None:
    """The promoted standby's cached pages and objects describe what it served before: they go."""
    from pressfleet.backup.restore import flush_caches

    flush_caches(conn, cfg)


_SAVE_ASIDE = r"""
set -eu
site=$1
dir=/var/backups/pressfleet
install -d -m 0700 -o root -g root "$dir"
f="$dir/diverged-$site-$(date -u +%Y%m%dT%H%M%SZ).sql.gz"
umask 077
mariadb-dump --single-transaction --databases "$site" | gzip -c > "$f"
echo "$f"
"""


def save_aside(conn, site: str) -> str:
    """A dump of the site's database as this server has it, kept root's alone before a resync replaces it."""
    return run(conn, ["sh", "-c", _SAVE_ASIDE, "sh", site], timeout=600).stdout.strip()
