"""`pressfleet backup|restore-test|restore|prune|backups SITE`: the backup flows from a terminal.

SITE is the site's domain (`blog.example.com`), its site name or its block name: all resolve to the same
saved WordPress Site block (`pressfleet.cli.common.load_site`).
`--storage NAME` picks a storage block (any of Local, S3, GCS, Azure); the default is `local-backups`,
a folder in the project's state directory. Each command runs the same flow as the deployment and
exits non-zero when it fails.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Optional

import typer

from pressfleet.cli.common import fail as _fail
from pressfleet.cli.common import load_block
from pressfleet.cli.common import load_site
from pressfleet.cli.common import run_or_fail as _run


def _site(name: str):
    return load_site(name)


def _storage(name: Optional[str]):
    from blocks.storage import AzureBlobStorage, GCSStorage, LocalStorage, S3Storage
    from pressfleet.backup.targets import default_storage

    if not name:
        return default_storage()
    for cls in (LocalStorage, S3Storage, GCSStorage, AzureBlobStorage):
        try:
            return cls.load(name)
        except ValueError:
            continue
    _fail(f"no storage block {name!r} (Local, S3, GCS or Azure)")


def _server(name: Optional[str]):
    from blocks.server import Server

    return load_block(Server, name, "Server")


def _key(name: Optional[str]):
    if not name:
        return None
    from prefect.blocks.system import Secret

    try:
        return Secret.load(name)
    except ValueError:
        _fail(f"no Secret block {name!r}")


SITE_HELP = "The site: its domain, site name or block name."
STORAGE = typer.Option(None, "--storage", help="Storage block name (default: local-backups).")
KEY = typer.Option(None, "--key", help="Secret block holding the backup key (default: pressfleet-backup-key; "
                   "without one, runs are refused unless the storage block says encryption: none).")


def _with_progress(site: str, call):
    """call() with the site's transfer shown on a terminal: 0/1 sites, then bytes and rate (pressfleet.cli.progress)."""
    from pressfleet.backup.streams import on_bytes
    from pressfleet.cli import progress

    with progress.tracker(1, "sites") as bar, on_bytes(bar.bytes_callback(f"{site}: transferred")):
        out = call()
        bar.done(site)
    return out


def register(app: typer.Typer) -> None:
    @app.command("backup")
    def backup(site: str = typer.Argument(..., help=SITE_HELP), storage: str = STORAGE, key: str = KEY,
               full: bool = typer.Option(False, "--full", help="A full backup even if an incremental would do.")) -> None:
        """Back a site up now (the backup-site flow)."""
        from flows.backup_site import backup_site

        [s] = _run("backup", lambda: _with_progress(site, lambda: backup_site(
            site=_site(site), storage=_storage(storage), encryption_key=_key(key), full=full)))
        typer.echo(f"{s['site']}: {s['kind']} backup {s['backup']}, {s['bytes']} bytes in {s['seconds']:.1f} s, "
                   f"{s['files_changed']} of {s['files_total']} files read")

    @app.command("restore-test")
    def restore_test(site: str = typer.Argument(..., help=SITE_HELP), storage: str = STORAGE, key: str = KEY,
                     scratch: str = typer.Option(None, "--scratch", help="Server block to restore onto (default: a fresh lab host)."),
                     backup_id: str = typer.Option(None, "--backup", help="Backup id (default: the newest).")) -> None:
        """Restore a backup on a scratch target, check it, boot it, mark it verified (the restore-test flow)."""
        from flows.restore_test import restore_test as flow

        [r] = _run("restore-test", lambda: _with_progress(site, lambda: flow(
            site=_site(site), storage=_storage(storage), scratch=_server(scratch), backup_id=backup_id,
            encryption_key=_key(key))))
        typer.echo(f"{r['site']}: backup {r['backup']} verified on {r['target']} in {r['seconds']:.1f} s")
        for check in r["checks"]:
            typer.echo(f"  {check}")

    @app.command("restore")
    def restore(site: str = typer.Argument(..., help=SITE_HELP), backup_id: str = typer.Argument(None, help="Backup id (default: the newest)."),
                to: str = typer.Option(None, "--to", help="Server block to restore onto (default: the site's server)."),
                parts: list[str] = typer.Option(None, "--parts", help="database, files, uploads, themes, plugins, webroot, table:NAME, subsite:N (a network's subsite alone) (repeatable)."),
                at: str = typer.Option(None, "--at", help="Point in time (ISO 8601, UTC if no zone): roll the database forward to it."),
                storage: str = STORAGE, key: str = KEY) -> None:
        """Restore a site from a backup, whole or in part, here or on another server (the restore-site flow)."""
        from flows.restore_site import restore_site

        until = None
        if at:
            try:
                until = datetime.fromisoformat(at)
            except ValueError:
                _fail(f"--at {at!r} is not an ISO 8601 time (e.g. 2026-11-26T10:15:00Z)")
            until = until if until.tzinfo else until.replace(tzinfo=UTC)
        r = _run("restore", lambda: _with_progress(site, lambda: restore_site(
            site=_site(site), storage=_storage(storage), backup_id=backup_id, target=_server(to),
            parts=parts or ["database", "files"], point_in_time=until, encryption_key=_key(key))))
        typer.echo(f"{r['site']}: restored {', '.join(r['restored'])} from {r['backup']} onto {r['target']} "
                   f"in {r['seconds']:.1f} s")

    @app.command("prune")
    def prune(site: str = typer.Argument(..., help=SITE_HELP), storage: str = STORAGE,
              policy: str = typer.Option(None, "--policy", help="Backup Retention block (default: 7 last, 14 daily, 8 weekly, 12 monthly, 2 yearly)."),
              dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be deleted.")) -> None:
        """Delete backups the retention policy does not keep (the prune-backups flow)."""
        from blocks.backup import BackupRetention
        from flows.prune_backups import prune_backups

        chosen = None
        if policy:
            try:
                chosen = BackupRetention.load(policy)
            except ValueError:
                _fail(f"no Backup Retention block {policy!r}")
        [r] = _run("prune", lambda: prune_backups(site=_site(site), storage=_storage(storage), policy=chosen,
                                                  dry_run=dry_run))
        gone = r["delete"] if dry_run else r["deleted"]
        typer.echo(f"{r['site']}: {'would delete' if dry_run else 'deleted'} {len(gone)} backups "
                   f"({', '.join(gone) or 'none'}) and {len(r['binlogs_removed'])} shipped binary logs; "
                   f"keeping {len(r['keep'])}")
        if r["not_deleted"]:
            _fail("some backups could not be deleted: " + "; ".join(r["not_deleted"]))

    @app.command("backups")
    def backups(site: str = typer.Argument(..., help=SITE_HELP), storage: str = STORAGE, key: str = KEY,
                as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
        """List a site's complete backups, newest first, verified or not (and any it could not use, and why)."""
        from pressfleet.backup import catalog
        from pressfleet.backup.report import catalog_markdown
        from pressfleet.backup.targets import encryption_secret

        config = _site(site).config()
        block = _storage(storage)

        def listing():
            return catalog.list_backups(block.store(), config.name, encryption_secret(_key(key), block))

        entries = _run("listing", listing)
        if as_json:
            typer.echo(catalog.to_json(list(reversed(entries))))
        else:
            typer.echo(catalog_markdown(config.name, entries, datetime.now(UTC), entries.problems))
