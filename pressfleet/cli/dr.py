"""`pressfleet standby|failover|failback|front|dns`: a site's standby, failover and the traffic in front."""

from __future__ import annotations

import json

import typer

from pressfleet.cli.common import fail as _fail
from pressfleet.cli.common import load_block, load_site
from pressfleet.cli.common import run_or_fail as _run


def _pair_of(block):
    """The site's saved pair, or one sentence and exit 1 (before any flow runs)."""
    from blocks.standby import load_pair
    from pressfleet.validate import InvalidInput

    try:
        return load_pair(block.name)
    except InvalidInput as exc:
        _fail(str(exc))


def _server(name: str):
    from blocks.server import Server

    return load_block(Server, name, "Server")


def register(app: typer.Typer) -> None:
    standby_app = typer.Typer(help="A site's standby on a second server: replication and file sync.",
                              no_args_is_help=True)
    app.add_typer(standby_app, name="standby")
    front_app = typer.Typer(help="Health-checked fronts (HAProxy) for sites with a standby.", no_args_is_help=True)
    app.add_typer(front_app, name="front")
    dns_app = typer.Typer(help="Route 53 zones whose records pressfleet switches on failover.", no_args_is_help=True)
    app.add_typer(dns_app, name="dns")

    @standby_app.command("add")
    def add(site: str = typer.Argument(..., help="The site: its domain, site name or block name."),
            server: str = typer.Option(..., "--server", help="Server block of the standby (another server)."),
            semisync: bool = typer.Option(False, "--semisync", help="Semi-synchronous replication: an acknowledged "
                                                                    "write is never lost."),
            front: str = typer.Option(None, "--front", help="Front block: traffic through its HAProxy."),
            dns: str = typer.Option(None, "--dns", help="Route 53 DNS block: traffic by DNS records."),
            no_auto: bool = typer.Option(False, "--no-auto", help="No automatic failover (a person runs it)."),
            failover_after: int = typer.Option(20, "--failover-after", help="Seconds down before an automatic one."),
            cooldown: int = typer.Option(60, "--cooldown", help="Minutes without a second automatic failover.")) -> None:
        """Provision SITE on --server, replicate its database there (GTID over TLS) and sync its files."""
        from blocks.standby import Front, Route53Dns
        from flows.standby import standby_add

        block = load_site(site)
        standby = _server(server)
        if front and dns:
            _fail("--front or --dns, not both")
        if block.server is not None and (block.server.address, block.server.port) == (standby.address, standby.port):
            _fail(f"{server} is {block.name}'s own server ({standby.address}): a standby must be on another server")
        traffic = "front" if front else "dns" if dns else "none"
        r = _run("standby add", lambda: standby_add(
            site=block.name, standby=standby, semisync=semisync, traffic=traffic,
            front=load_block(Front, front, "Front"), dns=load_block(Route53Dns, dns, "Route 53 DNS"),
            auto_failover=not no_auto, failover_after_s=failover_after, cooldown_minutes=cooldown))
        typer.echo(f"{r['site']}: standby on {r['standby']} ({'semi-sync' if r['semisync'] else 'async'}), "
                   f"{'replicating' if r['replicating'] else 'NOT replicating'}, {r['transactions_behind']} "
                   f"transaction(s) behind, in {r['seconds']} s")

    @standby_app.command("remove")
    def remove(site: str = typer.Argument(..., help="The site.")) -> None:
        """Stop SITE's replication and file sync and forget its standby."""
        from flows.standby import standby_remove

        block = load_site(site)
        r = _run("standby remove", lambda: standby_remove(site=block.name))
        for c in r["changed"]:
            typer.echo(c)

    @standby_app.command("status")
    def status(site: str = typer.Argument(None, help="The site (all pairs when left out)."),
               as_json: bool = typer.Option(False, "--json")) -> None:
        """Replication lag (seconds, transactions) and file sync age of each pair."""
        from flows.standby import standby_status
        from tasks.standby import PairStatus

        name = _pair_of(load_site(site)).site if site else None
        rows = _run("standby status", lambda: standby_status(site=name))
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        if not rows:
            typer.echo("no site has a standby (pressfleet standby add SITE --server SERVER)")
        for row in rows:
            typer.echo(PairStatus(**row).line())

    @app.command("failover")
    def failover_cmd(site: str = typer.Argument(..., help="The site."),
                     to: str = typer.Option(None, "--to", help="The standby's address (a check: it must be it)."),
                     force: bool = typer.Option(False, "--force", help="Even when the standby is further behind "
                                                                       "than the pair allows (says what is lost)."),
                     ) -> None:
        """Make SITE's standby its primary: fence the old one, promote, switch traffic, check a 200."""
        from flows.failover import failover

        block = load_site(site)
        _pair_of(block)
        r = _run("failover", lambda: failover(site=block.name, to=to, force=force))
        for at, what in r["steps"]:
            typer.echo(f"{at:7.2f} s  {what}")
        typer.echo(f"{r['site']}: primary is now {r['primary']} ({r['seconds']} s)")

    @app.command("failback")
    def failback_cmd(site: str = typer.Argument(..., help="The site."),
                     switch: bool = typer.Option(False, "--switch", help="Then switch the roles back.")) -> None:
        """The old primary rejoins as SITE's standby (re-seeded); with --switch it becomes primary again."""
        from flows.failover import failback

        block = load_site(site)
        _pair_of(block)
        r = _run("failback", lambda: failback(site=block.name, switch=switch))
        for at, what in r["steps"]:
            typer.echo(f"{at:7.2f} s  {what}")
        if r.get("switch"):
            s = r["switch"]
            typer.echo(f"{r['site']}: switched back: primary {s['primary']}, standby {s['old_primary']} "
                       f"({'replicating' if s.get('standby_replicating') else 'NOT replicating'})")
        else:
            typer.echo(f"{r['site']}: primary {r['primary']}, standby {r['standby']} "
                       f"({'replicating' if r['replicating'] else 'NOT replicating'})")

    @front_app.command("add")
    def front_add(name: str = typer.Argument(..., help="Name of the Front block to save."),
                  server: str = typer.Option(..., "--server", help="Server block of the front's server."),
                  address: str = typer.Option(None, "--address", help="Public address (default: the server's).")
                  ) -> None:
        """Install HAProxy on --server and save a Front block NAME (sites join it with `standby add --front`)."""
        from blocks.standby import Front
        from pressfleet import validate
        from pressfleet.dr.traffic import install_front

        try:
            validate.block_name(name, "Front")
            front = Front(server=_server(server), address=address)
        except ValueError as exc:
            _fail(str(exc).splitlines()[0])
        changed = _run("front add", lambda: install_front(front))
        front.save(name, overwrite=True)
        typer.echo(f"front {name}: HAProxy on {front.server.address}" + (f" ({'; '.join(changed)})" if changed else ""))

    @dns_app.command("add")
    def dns_add(name: str = typer.Argument(..., help="Name of the Route 53 DNS block to save."),
                zone: str = typer.Option(..., "--zone", help="Hosted zone id."),
                access_key: str = typer.Option(..., "--access-key-id"),
                secret_block: str = typer.Option(..., "--secret", help="Secret block holding the secret access key."),
                endpoint: str = typer.Option(None, "--endpoint-url", help="An emulator's URL (moto)."),
                region: str = typer.Option("us-east-1", "--region"),
                ttl: int = typer.Option(30, "--ttl")) -> None:
        """Save a Route 53 DNS block NAME (sites join it with `standby add --dns`)."""
        from prefect.blocks.system import Secret

        from blocks.standby import Route53Dns

        secret = load_block(Secret, secret_block, "Secret")
        try:
            block = Route53Dns(hosted_zone_id=zone, access_key_id=access_key, secret_access_key=secret.get(),
                               endpoint_url=endpoint, region=region, ttl=ttl)
        except ValueError as exc:
            _fail(str(exc).splitlines()[0])
        _run("dns add", lambda: block.client().get_hosted_zone(Id=zone))
        block.save(name, overwrite=True)
        typer.echo(f"dns {name}: Route 53 zone {zone}, TTL {ttl} s")
