"""Rotating a site's secrets without downtime: its database password, its Redis password and its WordPress salts.

While wp-config.php changes, the old and the new credentials both work: MariaDB's user gets two password rules
(`IDENTIFIED VIA mysql_native_password USING PASSWORD(old) OR mysql_native_password USING PASSWORD(new)`, MariaDB
10.4+) and the site's Redis ACL user holds both passwords. The new wp-config.php is proven (php-cli loads WordPress
with it and the new passwords are accepted) before PHP-FPM reloads gracefully, so OPcache takes it at once; only
then do the old passwords stop working. New salts end every login (cookies signed with the old ones no longer
verify) and WordPress's session tokens are destroyed as well.

The new values are saved in a Secret block (`pressfleet-<site>-rotation`) before anything changes on the host, so a
run cut half-way (a dropped connection) leaves a site that works with either set, and the next run finishes that
same rotation rather than starting another.
"""

from __future__ import annotations

from pressfleet.fleet.secrets import secret_block_name
from pressfleet.fleet.siteconfig import WpSalts, generate_secret
from pressfleet.paths import TEMPLATES
from pressfleet.ssh import converge, redisacl
from pressfleet.ssh.remote import run
from tasks.mariadb import _sql_string

CHECK_SCRIPT = (TEMPLATES / "scripts" / "site_credentials.sh").read_text()
KINDS = ("db-password", "salts", "redis-password")


class RotationFailed(RuntimeError):
    """The new credentials did not work; the old ones still do (the next run tries the same new ones again)."""


def _load(name: str):
    from prefect.blocks.system import Secret

    try:
        return Secret.load(name).get()
    except ValueError:
        return None


def _save(name: str, value) -> None:
    from prefect.blocks.system import Secret

    Secret(value=value).save(name, overwrite=True)


def current_secrets(site: str) -> dict:
    """The site's saved database password, salts and Redis password (what its wp-config.php holds)."""
    out = {kind: _load(secret_block_name(site, kind)) for kind in KINDS}
    missing = [k for k, v in out.items() if v is None]
    if missing:
        raise RotationFailed(f"site {site} has no saved {', '.join(missing)}: provision it before rotating its secrets")
    return out


def pending_rotation(site: str) -> dict:
    """The rotation under way for SITE (new values saved before anything changed), or a new one, saved now."""
    name = secret_block_name(site, "rotation")
    pending = _load(name)
    if not pending:
        pending = {"db-password": generate_secret(40), "salts": WpSalts.generate().model_dump(),
                   "redis-password": generate_secret(40)}
        _save(name, pending)
    return pending


def dual_password_sql(db_user: str, old: str, new: str) -> str:
    """Both passwords accepted by the site's database user (kept out of the binary log, as provisioning does)."""
    user = _sql_string(db_user)
    return ("SET SESSION sql_log_bin = 0;\n"
            f"ALTER USER {user}@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD({_sql_string(old)})"
            f" OR mysql_native_password USING PASSWORD({_sql_string(new)});\n")


def single_password_sql(db_user: str, password: str) -> str:
    user = _sql_string(db_user)
    return f"SET SESSION sql_log_bin = 0;\nALTER USER {user}@'localhost' IDENTIFIED BY {_sql_string(password)};\n"


def credentials_work(conn, site, db_password: str, redis_password: str) -> dict[str, bool]:
    """Whether the site's database user and Redis user accept these passwords: {"db": bool, "redis": bool}."""
    out = run(conn, ["sh", "-c", CHECK_SCRIPT, "sh", site.db_name, redisacl.acl_user(site.name)],
              stdin=f"{db_password}\n{redis_password}\n").stdout.split("\n")
    words = dict(line.split(" ", 1) for line in out if " " in line)
    return {"db": words.get("db") == "ok", "redis": words.get("redis") == "ok"}


def rotate(conn, site, render_wp_config) -> str:
    """Rotate SITE's secrets on the host CONN is connected to (as root). RENDER_WP_CONFIG(db_password, salts,
    redis_password) -> bytes is the site's wp-config.php as provisioning renders it. Returns what was done."""
    from tasks.updates import reload_php
    from tasks.wordpress import bootstrap, wordpress_files

    old, new = current_secrets(site.name), pending_rotation(site.name)
    old_db, new_db = str(old["db-password"]), str(new["db-password"])
    old_redis, new_redis = str(old["redis-password"]), str(new["redis-password"])
    # 1. both sets work (when a cut run already saved the new set as current, "old" is the new one: harmless)
    run(conn, ["mariadb", "--batch"], stdin=dual_password_sql(site.db_name, old_db, new_db))
    redisacl.add_site_password(conn, site.name, new_redis)
    if credentials_work(conn, site, new_db, new_redis) != {"db": True, "redis": True}:
        raise RotationFailed(f"{site.name}: the new database or Redis password was not accepted; the old ones still work")

    # 2. wp-config.php with the new set, proven by WordPress itself loading with it, then PHP-FPM reloaded
    wp_config = render_wp_config(new_db, WpSalts(**new["salts"]), new_redis)
    [managed] = [f for f in wordpress_files(site, wp_config) if f.path == site.wp_config_path]

    def prove() -> None:
        try:
            loaded = bootstrap(conn, site, "status").get("installed")
        except Exception as exc:  # noqa: BLE001 - WordPress printing its database error page, say
            raise converge.ProofFailed(f"WordPress does not load with the new wp-config.php: {str(exc)[:200]}") from None
        if not loaded:
            raise converge.ProofFailed("WordPress does not load with the new wp-config.php")

    converge.ensure_files(conn, [managed], check=["php", "-l", site.wp_config_path], prove=prove)
    reload_php(conn, site)
    for kind in KINDS:
        _save(secret_block_name(site.name, kind), new[kind])

    # 3. only the new set works; every login ends
    run(conn, ["mariadb", "--batch"], stdin=single_password_sql(site.db_name, new_db))
    redisacl.set_site_user(conn, site.name, new_redis)
    ended = bootstrap(conn, site, "end-sessions").get("ended", 0)
    _delete(secret_block_name(site.name, "rotation"))
    return f"database and Redis passwords and salts rotated; {ended} login session(s) ended"


def _delete(name: str) -> None:
    from prefect.blocks.system import Secret
    from prefect.exceptions import ObjectNotFound

    try:
        Secret.delete(name)
    except (ValueError, ObjectNotFound):
        pass
