"""The `pressfleet` command: what people do outside the Prefect UI."""

from __future__ import annotations

import json
import os
import sys

import typer

from pressfleet.lab import hosts as lab_mod
from pressfleet.cli.common import fail as _fail

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
    from pressfleet.stack import control as stack

    cfg = stack.StackConfig()
    stack.use_in_this_process(cfg, api=stack.healthy(cfg))


@app.callback()
def _main(ctx: typer.Context) -> None:
    from pressfleet.paths import use_private_umask

    # the state folder holds secrets and backups: what a command writes is its owner's alone (umask 077),
    # until the command is done (a test that invokes the CLI in-process gets its own umask back)
    old = use_private_umask()
    ctx.call_on_close(lambda: os.umask(old))
    use_local_prefect()


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
        from pressfleet.lab.blocks import save_lab_server_block

        try:
            info["block"] = save_lab_server_block(host)
        except Exception as exc:  # the host is up; say what failed about the block, keep the host
            _fail(f"host {name} is up but its Server block could not be saved: {exc}")
    typer.echo(json.dumps(info, indent=2))


@lab_app.command("down")
def lab_down(
    name: str = typer.Argument(None, help="Host name."),
    all_: bool = typer.Option(False, "--all", help="Stop every host of this lab namespace, its apt proxy, mirror and bridge."),
    prefix: str = typer.Option("", "--prefix", help="With --all: only hosts whose names start with this (the proxy, "
                               "mirror and bridge stop only when no host of the namespace is left)."),
) -> None:
    """Stop a lab host (or all of them) and remove everything it had, with the `lab-NAME` block `lab up` saved.

    Only the lab namespace in PRESSFLEET_LAB_NAMESPACE (unset: the operator's own) is touched."""
    if not all_ and not name:
        _fail("name a host, or pass --all")
    try:
        if all_:
            hosts = [lab_mod.LabHost(**{k: v for k, v in h.items() if k != "running"})
                     for h in lab_mod.list_hosts() if h["name"].startswith(prefix)]
            stopped = lab_mod.down_all(prefix)
        else:
            record = lab_mod.host_record(name)
            hosts = [record] if record else []
            stopped = [name] if lab_mod.down(name) else []
    except lab_mod.LabError as exc:
        _fail(str(exc))
    removed = []
    if hosts:
        from pressfleet.lab.blocks import delete_lab_server_block

        for host in hosts:
            try:
                if block := delete_lab_server_block(host):
                    removed.append(block)
            except Exception as exc:  # the host is gone; say what failed about its block
                _fail(f"host {host.name} is stopped but its Server block could not be removed: {exc}")
    typer.echo(json.dumps({"stopped": stopped, "blocks_removed": removed}))


@lab_app.command("crash")
def lab_crash(name: str = typer.Argument(..., help="Host name.")) -> None:
    """Cut a lab host's power (killed at once, no shutdown); its disk and address stay for `lab boot`."""
    try:
        lab_mod.crash(name)
    except lab_mod.LabError as exc:
        _fail(str(exc))
    typer.echo(json.dumps({"crashed": name}))


@lab_app.command("boot")
def lab_boot(name: str = typer.Argument(..., help="Host name.")) -> None:
    """Boot a crashed lab host again from its own disk (same address and host key)."""
    try:
        host = lab_mod.boot(name, wait=90)
    except lab_mod.LabError as exc:
        _fail(str(exc))
    typer.echo(host.to_json())


@lab_app.command("list")
def lab_list() -> None:
    """List lab hosts (JSON)."""
    typer.echo(json.dumps(lab_mod.list_hosts(), indent=2))


@stack_app.command("up")
def stack_up() -> None:
    """Start (or reuse) the local Prefect server, work pool, worker and the watcher; register blocks; deploy."""
    from pressfleet.stack import control as stack

    try:
        typer.echo(str(stack.up(log=_stderr)))
    except stack.StackError as exc:
        _fail(str(exc))


@stack_app.command("deploy")
def stack_deploy(
    env: str = typer.Option(None, "--env", help="Environment: a file in deployments/ (default: PRESSFLEET_ENV, else lab)."),
    print_only: bool = typer.Option(False, "--print", help="Print the file prefect deploy would get; deploy nothing."),
) -> None:
    """Deploy prefect.yaml with deployments/ (schedules, the environment's parameters) to the local stack."""
    from pressfleet.stack import deployments
    from pressfleet.stack import control as stack

    cfg = stack.StackConfig(**({"environment": env} if env else {}))
    try:
        if print_only:
            typer.echo(deployments.render(cfg.prefect_file, cfg.environment), nl=False)
            return
        stack.ensure_work_pool(cfg)
        stack.deploy(cfg)
    except (stack.StackError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(f"deployed {cfg.prefect_file.name} with deployments/{cfg.environment}.yaml to {cfg.api_url}")


@stack_app.command("down")
def stack_down() -> None:
    """Stop the watcher, the demo's mailbox, the local Prefect worker and server."""
    from pressfleet.stack import control as stack

    typer.echo(json.dumps(stack.down()))


@stack_app.command("status")
def stack_status() -> None:
    """Show the local Prefect stack."""
    from pressfleet.stack import control as stack

    typer.echo(str(stack.status()))


@app.command("demo")
def demo(host: str = typer.Option("web1", help="Lab host to run the demo on.")) -> None:
    """Start the local stack and a lab host, then run the main job through its deployment."""
    from pressfleet.stack import demo as demo_mod

    try:
        demo_mod.run(host, log=_stderr)
    except Exception as exc:  # one clear line; details are in the run's logs in the UI
        _fail(f"demo failed: {exc}")


@app.command("provision")
def provision(
    server: str = typer.Argument(..., help="Server block name, e.g. lab-web1."),
    domain: str = typer.Option(..., "--domain", help="The site's domain."),
    name: str = typer.Option(None, "--name", help="Site name (default: the one saved for this domain, else derived "
                                                  "from the whole domain: www.example.com -> example_com)."),
    email: str = typer.Option(None, "--email", help="Admin email (default: admin@DOMAIN)."),
    title: str = typer.Option("My WordPress site", "--title"),
    tls: str = typer.Option(None, "--tls", help="acme, provided or self-signed (default: self-signed on lab hosts, else acme)."),
    release_url: str = typer.Option(None, "--release-url", help="WordPress archive URL (default: the official latest; the lab mirror on lab hosts)."),
    release_sha256: str = typer.Option(None, "--release-sha256"),
    components: list[str] = typer.Option(None, "--component", "-c", help="Run only these steps (repeatable)."),
    multisite: str = typer.Option(None, "--multisite", help="subdirectory or subdomain: a WordPress network (an "
                                                           "existing single site converts)."),
    dns01_api: str = typer.Option(None, "--dns01-api", help="A subdomain network's DNS-01 API URL (its wildcard "
                                                           "certificate; pebble-challtestsrv's in the lab)."),
    acme_server: str = typer.Option(None, "--acme-server", help="ACME directory URL (default: Let's Encrypt)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Read the host and print the diff of every file, the packages "
                                                           "and the services provisioning would change; change nothing."),
    check: bool = typer.Option(False, "--check", help="Check the input and say which site and block it would be; "
                                                       "save nothing, contact no host."),
) -> None:
    """Provision WordPress on a server (the provision-wordpress flow), save the site's block, print the summary.

    The site's name comes from the whole domain (or --name); a name another domain's site already holds is
    refused, and a domain provisioned before keeps its site."""
    from pydantic import ValidationError

    from pressfleet.fleet import sites
    from pressfleet.lab import blocks as lab_blocks

    try:
        from blocks.server import Server
        from blocks.site import WordPressSite

        site_name, block_name = sites.claim_site_name(domain, name, sites.saved_sites())
        fields = dict(name=site_name, domain=domain, admin_email=email or f"admin@{domain}", title=title)
        release = lab_blocks.lab_release_for(server) if not release_url else None
        fields["tls_mode"] = tls or ("self-signed" if release else "acme")
        fields = {**_kept_fields(block_name), **fields}
        if multisite:
            fields["multisite"] = multisite
        if dns01_api:
            fields["dns01_api_url"] = dns01_api
        if acme_server:
            fields["acme_server"] = acme_server
        if release_url or release:
            fields["release_url"] = release_url or release["url"]
            fields["release_sha256"] = release_sha256 or (release["sha256"] if release else None)
        server_block = Server.load(server)
        site = WordPressSite(**fields, server=server_block)
    except (ValidationError, ValueError) as exc:
        _fail(f"refused before anything ran: {_first_error(exc)}")
    if check or dry_run:
        typer.echo(f"{site.config().domain}: site {site.name!r}, block {block_name!r}, on {server_block.address}; "
                   f"{'dry run' if dry_run else 'check'}: nothing saved, "
                   f"{'nothing changed on the host' if dry_run else 'nothing ran'}")
    if check:
        return
    if dry_run:
        _provision_dry_run(server_block, site, components)
        return
    site.save(block_name, overwrite=True)  # claim_site_name refused a block that holds another domain
    try:
        report = _provision_with_progress(server_block, site, components, dry_run=False)
    except Exception as exc:
        _fail(f"provisioning failed: {exc}")
    for step in report.steps:
        typer.echo(f"  {step['name']:<10} {'changed' if step['changed'] else 'unchanged':<9} {step['seconds']:5.1f} s")
    failed = [c["name"] for c in report.checks if not c["passed"]]
    typer.echo(f"{report.site_url} on {server_block.address}: {'changed' if report.changed else 'nothing to change'} "
               f"in {report.seconds:.1f} s; {len(report.checks) - len(failed)}/{len(report.checks)} checks passed; "
               f"site block {block_name!r}")


KEPT_FIELDS = ("multisite", "mapped_domains", "dns01_api_url", "acme_server", "acme_ca_bundle")


def _kept_fields(block_name: str) -> dict:
    """What a person (or a network flow) set on the saved block that a re-run of `provision` keeps: a network's
    kind and mapped domains, its ACME settings."""
    from blocks.site import WordPressSite

    try:
        saved = WordPressSite.load(block_name)
    except ValueError:
        return {}
    return {k: getattr(saved, k) for k in KEPT_FIELDS if getattr(saved, k)}


def _provision_dry_run(server_block, site, components) -> None:
    """Run the flow as a dry run and print what it would do: packages, actions, then every file's diff."""
    try:
        report = _provision_with_progress(server_block, site, components, dry_run=True)
    except Exception as exc:
        _fail(f"dry run failed (nothing was changed): {exc}")
    typer.echo(format_dry_run(report))


def _provision_with_progress(server_block, site, components, *, dry_run: bool):
    """The provision flow, with the steps done of how many shown on a terminal (pressfleet.cli.progress)."""
    from flows.provision_wordpress import provision_wordpress
    from pressfleet.cli import progress
    from pressfleet.plan.desired import selected
    from tasks.common import on_step_done

    with progress.tracker(len(selected(components or None)), "steps") as bar, on_step_done(lambda r: bar.done(r.name)):
        return provision_wordpress(server=server_block, site=site, components=components or None, dry_run=dry_run)


def format_dry_run(report) -> str:
    """A dry run's ProvisionReport as text: per step what would change, then the unified diffs (pure)."""
    lines = []
    packages = list(dict.fromkeys(report.packages))
    if packages:
        lines.append(f"would install {len(packages)} packages: {' '.join(packages)}")
    for step in report.steps:
        for action in step.get("actions", []):
            lines.append(f"  {step['name']:<10} {action}")
    for d in report.diffs:
        lines.append(d["diff"].rstrip("\n"))
    lines.append(f"{report.site_url}: {'would change the host' if report.changed else 'nothing would change'} "
                 f"(dry run, {report.seconds:.1f} s; nothing was changed)")
    return "\n".join(lines)


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(p) for p in first.get('loc', ()))}: {first.get('msg', '')}".strip(": ")
    return str(exc)


@app.command("down")
def down_everything() -> None:
    """Stop everything `make demo` started: the worker, the server, every lab host, the proxy."""
    from pressfleet.stack import control as stack

    stopped = {"prefect": stack.down()}
    try:
        stopped["lab"] = lab_mod.down_all()
    except lab_mod.LabError as exc:
        _fail(str(exc))
    typer.echo(json.dumps(stopped))


def _register_more() -> None:
    from pressfleet.cli import alerts as cli_alerts
    from pressfleet.cli import dr as cli_dr
    from pressfleet.cli import analysis as cli_analysis
    from pressfleet.cli import backup as cli_backup
    from pressfleet.cli import bulk as cli_bulk
    from pressfleet.cli import collect as cli_collect
    from pressfleet.cli import deploy as cli_deploy
    from pressfleet.cli import image as cli_image
    from pressfleet.cli import kube as cli_kube
    from pressfleet.cli import pipeline as cli_pipeline
    from pressfleet.cli import fleet as cli_fleet
    from pressfleet.cli import network as cli_network
    from pressfleet.cli import server as cli_server
    from pressfleet.cli import site as cli_site
    from pressfleet.cli import updates as cli_updates

    cli_backup.register(app)
    cli_server.register(app)
    cli_site.register(app)
    cli_collect.register(app)
    cli_fleet.register(app)
    cli_analysis.register(app)
    cli_updates.register(app)
    cli_bulk.register(app)
    cli_network.register(app)
    cli_alerts.register(app)
    cli_dr.register(app)
    cli_deploy.register(app)
    cli_kube.register(app)
    cli_image.register(app)
    cli_pipeline.register(app)


_register_more()


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
