"""`pressfleet site list|remove`: the fleet's sites from a terminal.

`site list` shows every saved site with its server, the WordPress version its host records
(`/var/www/SITE/.pressfleet-release`, read over SSH from every server at once with a short timeout; `?` when a
server does not answer) and its newest backup from the storage's catalogue, verified or not. `site remove SITE`
runs the remove-site flow (a final backup first; nothing is removed if it fails) after a confirmation.
"""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Optional

import typer

from pressfleet import validate
from pressfleet.cli.common import fail as _fail
from pressfleet.cli.common import load_site
from pressfleet.cli.common import run_or_fail as _run
from pressfleet.cli.server import format_table

VERSION_TIMEOUT_SECONDS = 8.0  # per server: connecting and reading every record
UNKNOWN = "?"


def release_record_path(site_name: str) -> str:
    return f"/var/www/{validate.site_name(site_name)}/.pressfleet-release"


def parse_release_version(record: Optional[bytes]) -> str:
    """The `version=` of a host's release record (install_wordpress_release.sh writes it), else '?'."""
    from pressfleet.plan.wprelease import _VERSION

    if not record:
        return UNKNOWN
    for line in record.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "version" and _VERSION.fullmatch(value.strip()):
            return value.strip()
    return UNKNOWN


def parse_safe_read(text: str) -> dict[str, Optional[bytes]]:
    """safe_files.py `read` output (`PATH<TAB>base64`, `-` for absent) as {path: content or None}."""
    out: dict[str, Optional[bytes]] = {}
    for line in text.splitlines():
        path, sep, data = line.partition("\t")
        if not sep:
            continue
        try:
            out[path] = None if data == "-" else base64.b64decode(data, validate=True)
        except ValueError:
            out[path] = None
    return out


def read_versions(server, site_names: list[str], timeout: float = VERSION_TIMEOUT_SECONDS) -> dict[str, str]:
    """{site: WordPress version} from one server's release records, read as root without following a link;
    every site '?' when the server cannot be reached in time."""
    from pressfleet.ssh import converge, remote

    paths = {n: release_record_path(n) for n in site_names}
    try:
        conn = server.connect(connect_timeout=timeout, refused_wait=0)
    except Exception:  # noqa: BLE001 - unreachable or refused: the listing says '?'
        return {n: UNKNOWN for n in site_names}
    try:
        result = remote.run(conn, ["python3", "-c", converge.SAFE_FILES, "read", *paths.values()], check=False,
                            timeout=timeout)
        found = parse_safe_read(result.stdout) if result.ok else {}
    except Exception:  # noqa: BLE001 - a timeout or a dropped connection: '?'
        found = {}
    finally:
        conn.close()
    return {n: parse_release_version(found.get(p)) for n, p in paths.items()}


@dataclass(frozen=True)
class BackupState:
    last: Optional[datetime]
    verified: Optional[bool]


def backup_state(entries) -> BackupState:
    """The newest complete backup's start time and whether a restore-test verified it (entries oldest first)."""
    if not entries:
        return BackupState(None, None)
    newest = entries[-1]
    return BackupState(newest.manifest.started_at, newest.verified)


def site_rows(sites: list, versions: dict[str, str], backups: dict[str, Optional[BackupState]],
              server_names: dict[tuple[str, int], str]) -> list[dict]:
    """One row per saved site (pure): site, domain, server (its block name, else its address), WordPress
    version, last backup and whether it is verified."""
    rows = []
    for s in sorted(sites, key=lambda x: x.domain):
        state = backups.get(s.name)
        if state is None:
            last, verified = UNKNOWN, UNKNOWN
        elif state.last is None:
            last, verified = "never", "-"
        else:
            last, verified = state.last.strftime("%Y-%m-%d %H:%M UTC"), "yes" if state.verified else "no"
        server = UNKNOWN if s.address is None else server_names.get((s.address, s.port), f"{s.address}:{s.port}")
        rows.append({"site": s.name, "domain": s.domain, "server": server,
                     "wordpress": versions.get(s.name, UNKNOWN), "last_backup": last, "verified": verified})
    return rows


def confirm_text(site, block: str) -> str:
    cfg = site.config()
    where = site.server.target() if site.server else "(no server)"
    return (f"Remove {cfg.domain} (site {cfg.name}, block {block!r}) from {where}? A full final backup is taken "
            f"first; then its files, database, PHP pool, vhost, user, secrets and block are deleted")


def register(app: typer.Typer) -> None:
    site_app = typer.Typer(help="The sites of the fleet (WordPress Site blocks).", no_args_is_help=True)
    app.add_typer(site_app, name="site")

    @site_app.command("list")
    def list_sites(storage: str = typer.Option(None, "--storage", help="Storage block (default: local-backups)."),
                   key: str = typer.Option(None, "--key", help="Secret block holding the backup key."),
                   as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
        """Every saved site: domain, server, WordPress version on the host, last backup, verified or not."""
        import json

        from blocks.server import Server
        from pressfleet.backup import catalog
        from pressfleet.backup.targets import encryption_secret
        from pressfleet.cli.backup import _key, _storage
        from pressfleet.cli.server import saved_sites_with_servers
        from pressfleet.fleet.saved import saved_block_names

        sites, notes = saved_sites_with_servers()
        block = _storage(storage)
        listable = True
        try:
            secret = encryption_secret(_key(key), block)
        except validate.InvalidInput as exc:
            secret, listable, notes = None, False, [*notes, f"backups not listed: {exc}"]
        backups: dict[str, Optional[BackupState]] = {}
        for s in sites:
            try:
                backups[s.name] = backup_state(catalog.list_backups(block.store(), s.name, secret)) \
                    if listable else None
            except Exception as exc:  # noqa: BLE001 - one site's catalogue does not stop the listing
                backups[s.name] = None
                notes.append(f"{s.domain}: backups not listed ({exc})")
        server_names = {}
        for n in saved_block_names("server"):
            try:
                srv = Server.load(n)
            except ValueError:
                continue
            server_names.setdefault((srv.address, srv.port), n)
        # one SSH login per server, all servers at once (a site's block carries its server)
        by_server: dict[tuple[str, int], tuple[object, list[str]]] = {}
        for s in sites:
            if s.server is not None:
                by_server.setdefault((s.address, s.port), (s.server, []))[1].append(s.name)
        versions: dict[str, str] = {}
        if by_server:
            with ThreadPoolExecutor(max_workers=min(16, len(by_server))) as pool:
                for found in pool.map(lambda item: read_versions(*item), by_server.values()):
                    versions.update(found)
        rows = site_rows(sites, versions, backups, server_names)
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
        else:
            typer.echo(format_table(rows, ["site", "domain", "server", "wordpress", "last_backup", "verified"])
                       or "no saved sites (pressfleet provision SERVER --domain DOMAIN saves one)")
        for note in notes:
            typer.echo(f"note: {note}", err=True)

    @site_app.command("remove")
    def remove(site: str = typer.Argument(..., help="The site: its domain, site name or block name."),
               storage: str = typer.Option(None, "--storage", help="Storage block for the final backup "
                                                                   "(default: local-backups)."),
               key: str = typer.Option(None, "--key", help="Secret block holding the backup key."),
               yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")) -> None:
        """Remove a site from its server after a final backup (the remove-site flow); other sites stay."""
        from pressfleet.cli.backup import _key, _storage
        from pressfleet.fleet import sites as fleet_sites

        try:
            block = fleet_sites.resolve_site_block(site, fleet_sites.saved_sites())
        except validate.InvalidInput as exc:
            _fail(str(exc))
        loaded = load_site(block)
        if loaded.server is None:
            _fail(f"site block {block!r} names no server: nothing to remove from a host.")
        store, key_block = _storage(storage), _key(key)
        if not yes and not typer.confirm(confirm_text(loaded, block)):
            _fail("not removed: not confirmed.")
        from flows.remove_site import remove_site

        r = _run("site remove", lambda: remove_site(site=loaded, storage=store, encryption_key=key_block,
                                                    block_name=block))
        typer.echo(f"{r['domain']}: final backup {r['final_backup']} in {r['backup_location']}")
        for line in r["removed"]:
            typer.echo(f"  {line}")
        typer.echo(f"deleted blocks: {', '.join(r['blocks_deleted']) or 'none'}")
        for note in r["notes"]:
            typer.echo(f"note: {note}")
        typer.echo(f"removed {r['domain']} from {r['server']}")
