"""The `pressfleet` command: what people do outside the Prefect UI."""

from __future__ import annotations

import json
import sys

import typer

from pressfleet import lab as lab_mod

app = typer.Typer(help="pressfleet: WordPress fleet operations as Prefect flows.", no_args_is_help=True)
lab_app = typer.Typer(help="Pristine Debian 12 lab hosts on this machine.", no_args_is_help=True)
app.add_typer(lab_app, name="lab")


def _fail(message: str) -> None:
    typer.echo(f"pressfleet: {message}", err=True)
    raise typer.Exit(1)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


@lab_app.command("up")
def lab_up(
    name: str = typer.Argument(..., help="Host name: 1-12 lower-case letters, digits or dashes."),
    no_block: bool = typer.Option(False, "--no-block", help="Do not save a Server block for the host."),
) -> None:
    """Boot a pristine Debian 12 host and print how to reach it (JSON)."""
    try:
        host = lab_mod.up(name, log=_stderr)
    except lab_mod.LabError as exc:
        _fail(str(exc))
    info = json.loads(host.to_json())
    if not no_block:
        from pressfleet.labblocks import save_lab_server_block

        try:
            info["block"] = save_lab_server_block(host)
        except Exception as exc:  # the host is up; say what failed about the block, keep the host
            _fail(f"host {name} is up but its Server block could not be saved: {exc}")
    typer.echo(json.dumps(info, indent=2))


@lab_app.command("down")
def lab_down(
    name: str = typer.Argument(None, help="Host name."),
    all_: bool = typer.Option(False, "--all", help="Stop every lab host, the apt proxy and the bridge."),
) -> None:
    """Stop a lab host (or all of them) and remove everything it had."""
    try:
        if all_:
            stopped = lab_mod.down_all()
            typer.echo(json.dumps({"stopped": stopped}))
        elif name:
            existed = lab_mod.down(name)
            typer.echo(json.dumps({"stopped": [name] if existed else []}))
        else:
            _fail("name a host, or pass --all")
    except lab_mod.LabError as exc:
        _fail(str(exc))


@lab_app.command("list")
def lab_list() -> None:
    """List lab hosts (JSON)."""
    typer.echo(json.dumps(lab_mod.list_hosts(), indent=2))


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
