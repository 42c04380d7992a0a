"""`pressfleet fleet`: the fleet as code (apply a fleet file, export the saved fleet as one, print its schema).

Wire it into the main command with `register(app)`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from pressfleet.cli.common import fail as _fail

fleet_app = typer.Typer(help="The fleet as code: fleet.yaml (servers, sites, templates, storage, retention).",
                        no_args_is_help=True)


def _print_result(result: dict) -> None:
    for line in result["plan"]:
        typer.echo(line)
    for what in result.get("unreadable") or []:
        typer.echo(f"note: saved block {what} could not be read and was left out")
    for host, diffs in (result.get("diffs") or {}).items():
        typer.echo(f"--- {host}: what provisioning would change")
        if isinstance(diffs, str):
            typer.echo(f"  {diffs}")
            continue
        for block, report in diffs.items():
            if isinstance(report, str):
                typer.echo(f"  {block}: {report}")
                continue
            entries = getattr(report, "diffs", None) or []
            if not entries and not getattr(report, "packages", None) and not getattr(report, "actions", None):
                typer.echo(f"  {block}: nothing to change on the host")
            for d in entries:
                typer.echo(d.get("diff") or f"  {d.get('path')}: changes (content not shown)")
            for p in getattr(report, "packages", None) or []:
                typer.echo(f"  {block}: would install {p}")
            for a in getattr(report, "actions", None) or []:
                typer.echo(f"  {block}: {a}")
    for line in result.get("saved") or []:
        typer.echo(f"saved {line}")
    for host, sites in (result.get("provisioned") or {}).items():
        if sites:
            typer.echo(f"provisioned on {host}: {', '.join(sites)}")


@fleet_app.command("apply")
def apply(
    fleet_file: Path = typer.Argument(..., help="The fleet file, e.g. fleet.yaml."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and per host what provisioning would "
                                                           "change; save nothing, change nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Make the saved blocks match FLEET_FILE and provision what changed (the apply-fleet flow).

    Everything is checked before anything changes (the file, its key files and Secret blocks, every server over
    SSH, collisions with saved blocks); a refusal names the file's line. Exits 1 when refused or when a host
    failed (the others finish; a re-run completes)."""
    from flows.apply_fleet import FleetApplyFailed, add_progress_hook, apply_fleet
    from pressfleet.cli import progress
    from pressfleet.validate import InvalidInput

    try:
        with progress.tracker(0, "hosts") as bar:
            remove_hook = add_progress_hook(progress.fleet_apply_events(bar))
            try:
                result = apply_fleet(fleet_file=str(fleet_file), dry_run=dry_run)
            finally:
                remove_hook()
    except InvalidInput as exc:  # FleetFileError: one line per problem, each with the file's line
        _fail("refused, nothing changed:\n" + str(exc))
    except FleetApplyFailed as exc:  # what the other hosts did, then which failed
        _print_result(exc.result)
        _fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - an unreachable API
        _fail(f"fleet apply failed: {exc}")
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=lambda o: getattr(o, "model_dump", lambda: str(o))()))
        return
    _print_result(result)
    if dry_run:
        typer.echo("dry run: nothing saved, nothing changed")


@fleet_app.command("export")
def export(
    fleet_file: Optional[Path] = typer.Argument(None, help="Write here (default: print to stdout)."),
) -> None:
    """Write the saved fleet (servers, sites, storage, retention; what the UI edited too) as a fleet file.

    Secrets are written as references (key_file, key_secret, {secret: BLOCK}), never values; a secret that has
    no reference yet is put in a Secret block named pressfleet-fleet-... and referenced."""
    from pressfleet.fleet import fleetblocks

    try:
        data, notes = fleetblocks.export_fleet(fleetblocks.read_saved())
    except Exception as exc:  # noqa: BLE001 - an unreachable API
        _fail(f"export failed: {exc}")
    text = fleetblocks.dump_yaml(data)
    if fleet_file is None:
        typer.echo(text, nl=False)
    else:
        fleet_file.write_text(text)
        typer.echo(f"wrote {fleet_file}: {len(data.get('servers', {}))} server(s), {len(data.get('sites', []))} "
                   f"site(s), {len(data.get('storage', {}))} storage, {len(data.get('retention', {}))} retention",
                   err=True)
    for note in notes:
        typer.echo(f"note: {note}", err=True)


@fleet_app.command("schema")
def schema() -> None:
    """Print the fleet file's JSON Schema (the one shipped as pressfleet/fleet/fleet.schema.json)."""
    from pressfleet.fleet.fleetfile import json_schema_text

    typer.echo(json_schema_text(), nl=False)


def register(app: typer.Typer) -> None:
    """Add `pressfleet fleet ...` to the main command."""
    app.add_typer(fleet_app, name="fleet")
