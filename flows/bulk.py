"""One operation over many sites: back up, prove, re-provision, purge caches, set a WordPress option, add or
remove an administrator. Partial failure is reported site by site, never hidden."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from typing import Literal, Optional

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.blocks.system import Secret
from pydantic import BaseModel, Field

from blocks.server import Server
from blocks.site import WordPressSite
from blocks.storage import AnyStorage
from blocks.template import with_template
from pressfleet.backup.targets import server_of
from pressfleet.fleet.changes import record_change
from pressfleet.fleet.locks import site_lock
from pressfleet.fleet.selection import select_saved
from pressfleet.validate import InvalidInput
from tasks import bulk as steps
from tasks.common import connected

Operation = Literal["backup", "restore-test", "reprovision", "purge-cache", "rotate-secrets", "set", "admin-user"]
MAX_AT_ONCE = 4  # sites worked on at once by this run; each host's own limit (its Server block) holds as well


class AdminUser(BaseModel):
    """For `admin-user`: who, and whether to add or remove them."""

    action: Literal["add", "remove"] = "add"
    login: str = Field(..., pattern=r"^[a-z][a-z0-9_.-]{2,59}$")
    email: Optional[str] = Field(None, description="For add: where WordPress mails the link to set a password.")


class BulkFailed(RuntimeError):
    """Some sites failed; the others were done (the artifact lists every site)."""


def _one(operation: str, site: WordPressSite, *, setting, admin, storage, scratch, encryption_key) -> str:
    """OPERATION on SITE; returns what it did in a few words (raises when it failed)."""
    if operation == "backup":
        from flows.backup_site import backup_site

        [s] = backup_site(site=site, storage=storage, encryption_key=encryption_key)
        return f"{s['kind']} backup {s['backup']}, {s['bytes']} bytes"
    if operation == "restore-test":
        from flows.restore_test import restore_test

        [r] = restore_test(site=site, storage=storage, scratch=scratch, encryption_key=encryption_key)
        return f"backup {r['backup']} verified in {r['seconds']:.1f} s"
    if operation == "reprovision":
        from flows.provision_wordpress import provision_wordpress

        report = provision_wordpress(server=server_of(site), site=site)
        return "changed" if report.changed else "nothing to change"
    config = site.config()
    server = server_of(site)
    with site_lock([site.name], f"bulk-{operation}", hosts=[server]), connected(server) as conn:
        if operation == "rotate-secrets":
            done = steps.rotate_secrets(conn, with_template(site).config())
        elif operation == "purge-cache":
            return steps.purge_cache(conn, config)
        elif operation == "set":
            done = steps.set_option(conn, config, *setting)
        else:
            done = steps.admin_user(conn, config, admin.action, admin.login, admin.email, site.admin_user)
    record_change(site.name, f"bulk {operation}", done)
    return done


@flow(name="bulk")
def bulk(
    operation: Operation,
    select: list[str] = ["all"],  # noqa: B006 - a form default, never mutated
    sites: Optional[list[WordPressSite]] = None,
    setting: Optional[str] = None,
    admin: Optional[AdminUser] = None,
    storage: Optional[AnyStorage] = None,
    scratch: Optional[Server] = None,
    encryption_key: Optional[Secret] = None,
) -> list[dict]:
    """Run one operation on every selected site, a few at once (each host's own limit holds too).

    `select`: site names or domains, `tag:T`, `server:S`, `template:T` or `all` (or `sites`, picked blocks).
    Operations: `backup`, `restore-test` (on `scratch`, left empty a fresh lab host), `reprovision` (provision
    again from the site's block), `purge-cache` (its pages in nginx's cache and its object cache),
    `rotate-secrets` (its database and Redis passwords and WordPress salts, with no downtime: both sets work
    while wp-config.php changes; every login ends), `set` with
    `setting` `wp:OPTION=VALUE` (a WordPress option; those pressfleet manages itself are refused), `admin-user`
    with `admin` (add an administrator, whom WordPress mails a link to set a password, or remove one, their posts
    given to the site's admin). The `bulk` table artifact has one row per site; when any site failed the run
    fails after the others are done, naming each failed site.
    """
    parsed = steps.parse_setting(setting) if operation == "set" else None
    if operation == "admin-user" and admin is None:
        raise InvalidInput("admin-user needs `admin`: the login to add or remove (and an e-mail to add one)")
    if operation == "admin-user" and admin.action == "add" and not admin.email:
        raise InvalidInput(f"adding administrator {admin.login} needs their e-mail")
    targets = sites if sites is not None else select_saved(select)  # a selector matching nothing is refused
    log = get_run_logger()

    def run_one(site: WordPressSite) -> dict:
        started = time.monotonic()
        try:
            done = _one(operation, site, setting=parsed, admin=admin, storage=storage, scratch=scratch,
                        encryption_key=encryption_key)
            row = {"site": site.name, "domain": site.domain, "state": "done", "detail": done}
        except Exception as exc:  # noqa: BLE001 - reported in the table and in the run's failure
            row = {"site": site.name, "domain": site.domain, "state": "failed", "detail": str(exc)[:300]}
        row["seconds"] = round(time.monotonic() - started, 1)
        log.info("%s %s: %s: %s", operation, site.name, row["state"], row["detail"])
        return row

    with ThreadPoolExecutor(max_workers=max(1, min(len(targets), MAX_AT_ONCE))) as pool:
        rows = [f.result() for f in [pool.submit(copy_context().run, run_one, s) for s in targets]]
    failed = [r for r in rows if r["state"] == "failed"]
    create_table_artifact(key="bulk", table=rows, description=f"bulk {operation}: {len(rows) - len(failed)} of "
                                                              f"{len(rows)} sites done")
    if failed:
        raise BulkFailed(f"bulk {operation}: {len(failed)} of {len(rows)} sites failed: "
                         + "; ".join(f"{r['site']}: {r['detail']}" for r in failed))
    return rows
