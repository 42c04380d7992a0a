"""Fencing: a site's old primary made unable to take the site's writes (I/O over SSH).

Per site, not per server: the site's database user keeps SELECT and loses its write privileges (grants survive
a restart, so a fenced server that reboots stays fenced; MariaDB's server-wide read_only would stop the other
sites there), its open connections are closed, its WordPress cron and its file sync towards the standby stop.
`complete_fences()` finishes the fence of an old primary that could not be reached at its failover, once it
can be (the watcher calls it each round while one is pending).
"""

from __future__ import annotations

from pressfleet.dr import replication as rep
from pressfleet.ssh import converge
from pressfleet.ssh.remote import run


def sql(conn, text: str, *, check: bool = True, timeout: float | None = 60) -> str:
    return run(conn, ["mariadb", "--batch", "--skip-column-names"], stdin=text, check=check, timeout=timeout).stdout


def set_site_writable(conn, site: str, writable: bool) -> list[str]:
    """The site's database user may write (primary) or only read (standby, fenced old primary)."""
    can = sql(conn, rep.site_can_write_sql(site)).strip() == "1"
    if can == writable:
        return []
    if converge.would(f"would make {site}'s database {'writable' if writable else 'read-only'}"):
        return [f"{site} database {'writable' if writable else 'read-only'}"]
    if writable:
        sql(conn, rep.site_writable_sql(site))
    else:
        kills = sql(conn, rep.site_read_only_sql(site))
        if kills.strip():
            sql(conn, kills, check=False)  # a connection may have gone by now
    return [f"{site} database {'writable' if writable else 'read-only'}"]


def sync_unit(site: str) -> str:
    return f"pressfleet-filesync-{site}"


def fence(conn, site: str) -> list[str]:
    """The old primary cannot take the site's writes: its site user read-only (its connections closed), its
    WordPress cron and its file sync to the standby stopped."""
    changed = set_site_writable(conn, site, False)
    changed += _cron(conn, site, False)
    changed += _timer(conn, sync_unit(site), False)
    return changed


def _timer(conn, unit: str, on: bool) -> list[str]:
    state = run(conn, ["systemctl", "is-active", f"{unit}.timer"], check=False).stdout.strip()
    exists = run(conn, ["systemctl", "cat", f"{unit}.timer"], check=False).ok
    if not exists or (state == "active") == on:
        return []
    run(conn, ["systemctl", "enable" if on else "disable", "--now", f"{unit}.timer"])
    return [f"{unit}.timer {'started' if on else 'stopped'}"]


def _cron(conn, site: str, on: bool) -> list[str]:
    return _timer(conn, f"pressfleet-wp-cron-{site}", on)



def complete_fences(connect_timeout: float = 3.0) -> list[str]:
    """Fence every old primary whose failover could not reach it and that answers now; returns what it did."""
    from blocks.standby import pair_block_name
    from pressfleet.dr.pairs import saved_pairs

    done = []
    for pair in saved_pairs("fence-pending"):
        try:
            conn = pair.standby.connect(connect_timeout=connect_timeout, refused_wait=0)
        except Exception:  # noqa: BLE001 - still away: out of traffic, fenced when it answers
            continue
        try:
            changes = fence(conn, pair.site)
        finally:
            conn.close()
        pair.model_copy(update={"standby_state": "fenced"}).save(pair_block_name(pair.site), overwrite=True)
        done.append(f"{pair.site}: old primary {pair.standby.address} fenced on its return "
                    f"({'; '.join(changes) or 'nothing left to change'})")
    return done
