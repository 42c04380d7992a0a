"""Steps of bulk operations that are not whole flows of their own: a WordPress option, an administrator, the
page cache. Each runs on the site's host through WordPress's own API (the bootstrap) as the site's user."""

from __future__ import annotations

import re

from pressfleet.ssh.pagecache import purge_site_pages
from pressfleet.validate import InvalidInput
from tasks.wordpress import bootstrap

_OPTION = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_LOGIN = re.compile(r"^[a-z][a-z0-9_.-]{2,59}$")
# Options pressfleet manages itself (the site's address, its database version, plugins and theme): a bulk `set`
# could break every site at once, so they are refused.
MANAGED_OPTIONS = frozenset({"siteurl", "home", "db_version", "initial_db_version", "active_plugins", "template",
                             "stylesheet", "wp_user_roles", "cron", "rewrite_rules", "permalink_structure"})


def parse_setting(text: str) -> tuple[str, str]:
    """`wp:OPTION=VALUE` -> (OPTION, VALUE); refused by name when it is not one."""
    kind, sep, rest = str(text or "").partition(":")
    name, eq, value = rest.partition("=")
    if kind != "wp" or not sep or not eq:
        raise InvalidInput(f"setting {text!r}: write wp:OPTION=VALUE (a WordPress option), e.g. wp:blogdescription=News")
    if not _OPTION.match(name):
        raise InvalidInput(f"setting {text!r}: an option name is a-z, 0-9 and '_'")
    if name in MANAGED_OPTIONS:
        raise InvalidInput(f"setting {text!r}: pressfleet manages {name} itself (provisioning, updates)")
    if len(value) > 2000 or any(ord(c) < 32 for c in value):
        raise InvalidInput(f"setting {text!r}: a value is one line of at most 2000 characters")
    return name, value


def login(value: str) -> str:
    if not _LOGIN.match(str(value or "")):
        raise InvalidInput(f"login {value!r}: 3-60 of a-z, 0-9, '_', '.', '-', starting with a letter")
    return value


def set_option(conn, site, name: str, value: str) -> str:
    out = bootstrap(conn, site, "set-option", {"name": name, "value": value})
    return f"{name} set (was {out.get('before')!r})" if out.get("changed") else f"{name} already {value!r}"


def admin_user(conn, site, action: str, user: str, email: str | None, reassign: str) -> str:
    out = bootstrap(conn, site, "admin-user", {"action": action, "login": user, "email": email or "", "reassign": reassign})
    if out.get("error"):
        raise RuntimeError(out["error"])
    if action == "remove":
        return f"removed {user} (posts to {reassign})" if out.get("changed") else f"{user} was not there"
    if not out.get("changed"):
        return f"{user} is already an administrator"
    if out.get("role"):
        return f"{user} made an administrator"
    mailed = "mailed the link to set a password" if out.get("mailed") else "WordPress could not mail the password link"
    return f"added administrator {user} ({mailed})"


def purge_cache(conn, site) -> str:
    removed = purge_site_pages(conn, list(site.server_names))
    flushed = bootstrap(conn, site, "flush-cache")
    return "; ".join([*removed, "object cache flushed" if flushed.get("flushed") else "no object cache"]) or "nothing cached"


def rotate_secrets(conn, site) -> str:
    """New database and Redis passwords and salts for SITE (its config as provisioning applies it), no downtime."""
    from pressfleet.plan.desired import wp_config
    from tasks import rotate
    from tasks.updates import ensure_bootstrap

    ensure_bootstrap(conn)  # the host's bootstrap knows end-sessions
    return rotate.rotate(conn, site, lambda db, salts, redis: wp_config(site, db, salts, redis))
