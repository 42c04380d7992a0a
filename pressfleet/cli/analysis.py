"""`pressfleet forecast` and `pressfleet report cost|trends|anomalies`: the analysis flows from a terminal.

Registered on the main command by `register(app)` (pressfleet/cli/main.py). Each command runs the same flow as its
deployment (against the local Prefect stack when it is up), prints where the report is and a short summary,
and exits non-zero on failure.
"""

from __future__ import annotations

from typing import Optional

import typer

from pressfleet.cli.common import fail as _fail
from pressfleet.cli.common import run_or_fail

STORE_HELP = "Metrics store URL (default: PRESSFLEET_METRICS_URL, else state/metrics.db)."


def _run(what: str, fn, **kwargs):
    return run_or_fail(what, lambda: fn(**kwargs))


def _where(result) -> None:
    typer.echo(f"report: {result.markdown}")
    if getattr(result, "charts", None):
        typer.echo(f"charts: {len(result.charts)} PNG(s) in {result.directory}")
    for note in getattr(result, "notes", []) or []:
        typer.echo(f"note: {note}")


def forecast(
    store_url: Optional[str] = typer.Option(None, "--store-url", help=STORE_HELP),
    horizon_days: float = typer.Option(30, "--horizon-days", min=1, max=365, help="How far ahead."),
    hosts: list[str] = typer.Option(None, "--host", help="Only this host (repeatable)."),
) -> None:
    """Forecast disk, memory, CPU and traffic per host (the forecast-capacity flow); print where the report is."""
    from flows.forecast_capacity import forecast_capacity

    res = _run("forecast-capacity", forecast_capacity, store_url=store_url, horizon_days=horizon_days,
               hosts=hosts or None)
    for r in res.attention:
        typer.echo(f"  {r.host:<14} {r.resource:<22} {r.status:<8} {r.advice}")
    if not res.attention:
        typer.echo(f"  nothing needs attention within {horizon_days:g} days ({len(res.hosts)} host(s))")
    _where(res)


def report_cost(
    price_table: Optional[str] = typer.Option(None, "--price-table", help="PriceTable block name (default: list "
                                                                          "prices)."),
    store_url: Optional[str] = typer.Option(None, "--store-url", help=STORE_HELP),
) -> None:
    """Backup storage and server cost, right-sizing savings (the cost-report flow)."""
    from blocks.pricing import PriceTable
    from flows.cost_report import cost_report

    block = None
    if price_table:
        try:
            block = PriceTable.load(price_table)
        except Exception as exc:  # noqa: BLE001
            _fail(f"cannot load the PriceTable block {price_table!r}: {exc}")
    res = _run("cost-report", cost_report, price_table=block, store_url=store_url)
    t = res.totals
    typer.echo(f"  {res.currency} {t['total_usd_month']:,.2f} a month (backups {t['backup_usd_month']:,.2f}, "
               f"servers {t['servers_usd_month']:,.2f}); savings found {t['total_savings_usd_month']:,.2f} a month")
    _where(res)


def report_trends(
    store_url: Optional[str] = typer.Option(None, "--store-url", help=STORE_HELP),
    hosts: list[str] = typer.Option(None, "--host", help="Only this host (repeatable)."),
) -> None:
    """Week-over-week changes, each host's bottleneck, suggestions (the trend-report flow)."""
    from flows.trend_report import trend_report

    res = _run("trend-report", trend_report, store_url=store_url, hosts=hosts or None)
    for s in res.suggestions:
        typer.echo(f"  - {s}")
    _where(res)


def report_anomalies(
    store_url: Optional[str] = typer.Option(None, "--store-url", help=STORE_HELP),
    days: float = typer.Option(28, "--days", min=1, help="How much recent history to check."),
    hosts: list[str] = typer.Option(None, "--host", help="Only this host (repeatable)."),
) -> None:
    """Periods that departed from their daily and weekly pattern (the detect-anomalies flow)."""
    from flows.detect_anomalies import detect_anomalies

    res = _run("detect-anomalies", detect_anomalies, store_url=store_url, days=days, hosts=hosts or None)
    typer.echo(f"  {len(res.periods)} anomalous period(s) in {res.series_checked} series; "
               f"{res.expected_false_alarms:.1f} false alarm(s) expected by chance at the stated rate "
               f"({res.false_alarm_rate:.2%} of points)")
    for p in res.periods[:10]:
        typer.echo(f"  {p.host:<12} {p.site or '-':<24} {p.metric:<26} {p.start[:16]} {p.direction:<4} "
                   f"score {p.peak_score:+.1f}")
    _where(res)


def register(app: typer.Typer) -> None:
    """Add `forecast` and the `report` sub-command (cost, trends, anomalies) to `app`."""
    app.command("forecast")(forecast)
    report_app = typer.Typer(help="Fleet reports from the metrics store (the analysis flows).", no_args_is_help=True)
    report_app.command("cost")(report_cost)
    report_app.command("trends")(report_trends)
    report_app.command("anomalies")(report_anomalies)
    app.add_typer(report_app, name="report")
