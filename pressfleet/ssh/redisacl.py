"""Redis ACL users on a host: one per site, so no site's PHP reads, writes or flushes another site's keys.

Every site gets a Redis user of its own name (`ACL SETUSER <site>`) that may touch only keys `<site>:*`, with the
object cache's commands alone (no FLUSHALL/FLUSHDB, KEYS, SCAN, CONFIG, ACL, DEBUG, MODULE, EVAL, INFO...): SCAN is
left out because Redis does not filter its answer by key pattern, so it would list other sites' key names (and
WordPress keys hold user logins and e-mail addresses). The `default` user is off. pressfleet itself works as the
admin user `pf_admin` (a name no site can take: `pf_` is reserved), whose password is made on the host once and
kept there, root-only, in /etc/pressfleet/redis-admin.password; it never leaves the host. A site's password is a
Secret block on the control side and in its wp-config.php; only its SHA-256 reaches Redis, on stdin. Users are
saved to Redis's ACL file (/etc/redis/users.acl, `aclfile` in redis.conf) with ACL SAVE, so a restart keeps them.

As root on a host: `REDISCLI_AUTH=$(cat /etc/pressfleet/redis-admin.password) redis-cli --user pf_admin`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from pressfleet.paths import TEMPLATES
from pressfleet.ssh.remote import run
from pressfleet.validate import InvalidInput, site_name

ADMIN_USER = "pf_admin"
ACL_FILE = "/etc/redis/users.acl"
ADMIN_SECRET = "/etc/pressfleet/redis-admin.password"
SCRIPT = (TEMPLATES / "scripts" / "redis_acl.sh").read_text()

# What pressfleet's object cache (templates/wordpress/object-cache.php) and a drop-in such as "Redis Object Cache"
# need on their own keys, and nothing server-wide: SELECT so the site block's database works (key patterns
# hold in every database).
SITE_COMMANDS: tuple[str, ...] = (
    "get", "mget", "set", "setex", "del", "unlink", "exists", "expire", "ttl", "incr", "incrby", "decr", "decrby",
    "ping", "select",
)


def acl_user(site: str) -> str:
    """The Redis user of site SITE: its validated name (`default` and pf_admin can never be one)."""
    name = site_name(site)
    if name in ("default", ADMIN_USER):
        raise InvalidInput(f"{name!r} is Redis's own user name and cannot be a site's.")
    return name


def key_pattern(site: str) -> str:
    """The glob of the site's keys: `<site>:*` (site names have no glob characters and no colon, so no two
    sites' patterns overlap)."""
    return f"{acl_user(site)}:*"


def password_hash(password: str) -> str:
    """What Redis stores for a password (ACL `#<sha256 hex>`): the only form of it that reaches the host's Redis."""
    return hashlib.sha256(password.encode()).hexdigest()


def site_rules(site: str) -> list[str]:
    """The ACL SETUSER rules of a site's user, without its password rule (sent on stdin)."""
    return ["reset", "on", f"~{key_pattern(site)}", "resetchannels", "-@all", *(f"+{c}" for c in SITE_COMMANDS)]


@dataclass(frozen=True)
class AclUser:
    """What ACL GETUSER says of a user."""

    flags: frozenset[str]
    passwords: tuple[str, ...]
    commands: frozenset[str]
    keys: str
    channels: str
    selectors: tuple

    @classmethod
    def parse(cls, text: str) -> "AclUser | None":
        """redis-cli --json ACL GETUSER's answer (None for `null`: no such user)."""
        data = json.loads(text)
        if data is None:
            return None
        return cls(frozenset(data["flags"]), tuple(data["passwords"]), frozenset(data["commands"].split()),
                   data["keys"], data["channels"], tuple(data.get("selectors") or ()))


def site_user_differences(current: AclUser | None, site: str, password: str) -> list[str]:
    """How the site's Redis user differs from what it should be (empty: nothing to change). Redis lists a user's
    commands in its own order, so they compare as a set; `-@all` then only `+command`s make that exact."""
    if current is None:
        return ["no user"]
    out = []
    if "on" not in current.flags or "nopass" in current.flags:
        out.append("not on with a password")
    if current.passwords != (password_hash(password),):
        out.append("password")
    if current.keys != f"~{key_pattern(site)}":
        out.append(f"keys {current.keys!r}")
    if current.channels:
        out.append(f"channels {current.channels!r}")
    if current.commands != {"-@all", *(f"+{c}" for c in SITE_COMMANDS)}:
        out.append("commands")
    if current.selectors:
        out.append("selectors")
    return out


def _database(database: int) -> str:
    if not isinstance(database, int) or isinstance(database, bool) or not 0 <= database <= 1023:
        raise InvalidInput(f"{database!r} is not a Redis database number (0-1023).")
    return str(database)


# --- on the host (root; the admin's password stays there) ---------------------------------------------------


def _script(conn, args: list[str], *, stdin: str | None = None, check: bool = True):
    return run(conn, ["sh", "-c", SCRIPT, "sh", *args], stdin=stdin, check=check)


def ensure_admin(conn, *, probe: bool = False) -> list[str]:
    """pf_admin exists with the host's admin password and `default` is off (a fresh Redis lets anyone in as
    `default` until then). Returns what changed; with PROBE what would change, changing nothing."""
    words = _script(conn, ["admin", "check"] if probe else ["admin"], check=not probe).stdout.split()
    return [{"admin-password": "generated Redis admin password (root-only on the host)",
             "admin-user": f"Redis user {ADMIN_USER}", "default-off": "Redis user default off"}.get(w, w) for w in words]


def site_user(conn, site: str, *, check: bool = True) -> AclUser | None:
    """The site's Redis user as Redis has it (None: no such user, or Redis could not be asked and CHECK is off)."""
    result = _script(conn, ["getuser", acl_user(site)], check=check)
    if not result.ok:
        return None
    return AclUser.parse(result.stdout)


def set_site_user(conn, site: str, password: str) -> None:
    """ACL SETUSER of the site's user with its rules and password (its hash, on stdin), then ACL SAVE."""
    _script(conn, ["setuser", acl_user(site), *site_rules(site)], stdin=f"#{password_hash(password)}")


def remove_user(conn, site: str, *, database: int = 0) -> list[str]:
    """Delete the site's Redis user (its open connections close) and its keys in DATABASE; returns what changed."""
    user = acl_user(site)
    out = []
    removed = _script(conn, ["deluser", user]).stdout.strip()
    if removed == "1":
        out.append(f"Redis user {user} deleted")
    keys = flush_site_keys(conn, site, database=database)
    if keys:
        out.append(f"{keys} Redis keys of {user} unlinked")
    return out


def flush_site_keys(conn, site: str, *, database: int = 0) -> int:
    """Unlink every key `<site>:*` of DATABASE, as the admin (SCAN MATCH + UNLINK in batches inside Redis); every
    other site's keys stay. Returns how many were unlinked."""
    return int(_script(conn, ["keys", _database(database), key_pattern(site), "unlink"]).stdout.strip() or 0)


def count_site_keys(conn, site: str, *, database: int = 0) -> int:
    """How many keys `<site>:*` DATABASE holds (as the admin)."""
    return int(_script(conn, ["keys", _database(database), key_pattern(site), "count"]).stdout.strip() or 0)


def add_site_password(conn, site: str, password: str) -> None:
    """One more password for the site's user (its hash, on stdin), the others kept: both work while a rotation
    changes wp-config.php; set_site_user with the new one alone ends it."""
    _script(conn, ["setuser", acl_user(site)], stdin=f"#{password_hash(password)}")
