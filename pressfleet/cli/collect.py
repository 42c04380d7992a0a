"""`pressfleet collect`: one metrics round (the collect-metrics flow) from a terminal.

Wire it into the main command with `register(app)`.
"""

from __future__ import annotations

import json
from typing import Optional

import typer

from pressfleet.cli.common import fail as _fail
from pressfleet.cli.common import load_site

EXIT_FAILED = 1  # nothing was collected: bad input, no servers, or the flow failed
EXIT_HOST_DOWN = 2  # the round completed and was stored, but at least one server could not be reached


def collect(
    servers: Optional[list[str]] = typer.Argument(
        None, help="Server block names, e.g. lab-web1 (default: every saved Server block)."),
    site_names: Optional[list[str]] = typer.Option(
        None, "--site", "-s", help="Sites to check, each a domain, site name or block name (repeatable; default: every saved one)."),
    no_sites: bool = typer.Option(False, "--no-sites", help="Check no sites, only the servers."),
    storage: Optional[str] = typer.Option(
        None, "--storage", help="Storage block with the sites' backups, as TYPE/NAME, e.g. local-storage/backups."),
    store_url: Optional[str] = typer.Option(
        None, "--store-url", help="Metrics database URL (default: PRESSFLEET_METRICS_URL, else .state/metrics.db)."),
    as_json: bool = typer.Option(False, "--json", help="Print the round's summary as JSON."),
) -> None:
    """Collect one round of metrics (the collect-metrics flow): one SSH command per server, in parallel.

    Exits 1 if nothing could be collected (bad block names, the flow failed), 2 if the round was stored but a
    server was unreachable (it is recorded as up=0), 0 otherwise.
    """
    try:
        from prefect.blocks.core import Block

        from blocks import storage as _storage_types  # registers the storage block types for Block.load
        from blocks.server import Server
        from blocks.site import WordPressSite
        from flows.collect_metrics import saved_block_names

        names = list(servers or []) or saved_block_names("server")
        if not names:
            _fail("no Server blocks: name one, or save one first (`pressfleet lab up NAME` saves lab-NAME)")
        server_blocks = [Server.load(n) for n in names]
        if no_sites:
            site_blocks = []
        else:
            site_blocks = ([load_site(n) for n in site_names] if site_names
                           else [WordPressSite.load(n) for n in saved_block_names("wordpress-site")])
        storage_block = Block.load(storage) if storage else None
        if storage_block is not None and not isinstance(storage_block, _storage_types._StorageBlock):
            _fail(f"{storage} is not a storage block (local-storage/NAME, s3-storage/NAME, gcs-storage/NAME or azure-blob-storage/NAME)")
    except typer.Exit:
        raise
    except Exception as exc:  # unknown block names, an unreachable API, invalid saved values
        _fail(f"refused before anything ran: {exc}")
    from flows.collect_metrics import collect_metrics, summary_table

    try:
        summary = collect_metrics(servers=server_blocks, sites=site_blocks, storage=storage_block,
                                  store_url=store_url)
    except Exception as exc:
        _fail(f"collection failed: {exc}")
    if as_json:
        typer.echo(json.dumps(summary.model_dump(mode="json"), indent=2))
    else:
        rows = summary_table(summary)
        columns = ["host", "up", "cpu", "load1", "memory", "disk /", "sites", "problems"]
        widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns[:-1]}
        typer.echo("  ".join(c.ljust(widths.get(c, 0)) for c in columns).rstrip())
        for r in rows:
            typer.echo("  ".join(str(r[c]).ljust(widths.get(c, 0)) for c in columns).rstrip())
        typer.echo(f"{summary.up} of {summary.up + summary.down} servers up; {summary.stored} of {summary.points} "
                   f"points stored ({summary.backend}) in {summary.seconds:.1f} s")
    if summary.down:
        raise typer.Exit(EXIT_HOST_DOWN)


def register(app: typer.Typer) -> None:
    """Add `pressfleet collect` to the main command."""
    app.command("collect")(collect)
