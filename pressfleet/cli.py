"""The `pressfleet` command: what people do outside the Prefect UI."""

from __future__ import annotations

import json
import os
import sys

import typer

from pressfleet import lab as lab_mod

app = typer.Typer(help="pressfleet: WordPress fleet operations as Prefect flows.", no_args_is_help=True)
lab_app = typer.Typer(help="Pristine Debian 12 lab hosts on this machine.", no_args_is_help=True)
app.add_typer(lab_app, name="lab")
stack_app = typer.Typer(help="The local Prefect server and worker that `make demo` runs.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")


def use_local_prefect() -> None:
    """Point this process's Prefect client at the local stack (before prefect is imported).

    PREFECT_HOME is the project's own; when the local server is up, PREFECT_API_URL points at it.
    A PREFECT_API_URL already set by the person wins.
    """
    if "prefect" in sys.modules or os.environ.get("PREFECT_API_URL"):
        return
    from pressfleet import stack

    cfg = stack.StackConfig()
    env = stack.prefect_env(cfg)
    keys = ["PREFECT_HOME", "PREFECT_SERVER_ANALYTICS_ENABLED", "DO_NOT_TRACK", "PREFECT_RESULTS_PERSIST_BY_DEFAULT"]
    if stack.healthy(cfg):
        keys += ["PREFECT_API_URL", "PREFECT_UI_URL"]
    for key in keys:
        os.environ[key] = env[key]


@app.callback()
def _main() -> None:
    use_local_prefect()


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


@stack_app.command("up")
def stack_up() -> None:
    """Start (or reuse) the local Prefect server, work pool and worker; register blocks; deploy."""
    from pressfleet import stack

    try:
        typer.echo(str(stack.up(log=_stderr)))
    except stack.StackError as exc:
        _fail(str(exc))


@stack_app.command("down")
def stack_down() -> None:
    """Stop the local Prefect worker and server."""
    from pressfleet import stack

    typer.echo(json.dumps(stack.down()))


@stack_app.command("status")
def stack_status() -> None:
    """Show the local Prefect stack."""
    from pressfleet import stack

    typer.echo(str(stack.status()))


@app.command("demo")
def demo(host: str = typer.Option("web1", help="Lab host to run the demo on.")) -> None:
    """Start the local stack and a lab host, then run the main job through its deployment."""
    from pressfleet import demo as demo_mod

    try:
        demo_mod.run(host, log=_stderr)
    except Exception as exc:  # one clear line; details are in the run's logs in the UI
        _fail(f"demo failed: {exc}")


@app.command("down")
def down_everything() -> None:
    """Stop everything `make demo` started: the worker, the server, every lab host, the proxy."""
    from pressfleet import stack

    stopped = {"prefect": stack.down()}
    try:
        stopped["lab"] = lab_mod.down_all()
    except lab_mod.LabError as exc:
        _fail(str(exc))
    typer.echo(json.dumps(stopped))


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
