"""`pressfleet forecast` and `pressfleet report ...` (registered by pressfleet.cli.analysis.register)."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from pressfleet.cli.analysis import register


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _main() -> None:  # as pressfleet.cli.main's own callback
        pass

    register(app)
    return app


def test_forecast_and_reports_print_where_the_report_is(prefect_harness, fleet, state):
    hist, url = fleet
    runner = CliRunner()
    res = runner.invoke(_app(), ["forecast", "--store-url", url, "--horizon-days", "30"])
    assert res.exit_code == 0, res.output
    disk = next(i for i in hist.incidents if i.kind == "disk_filling")
    assert any(line.split()[:2] == [disk.host, "disk:/"] for line in res.output.splitlines())
    report = Path(next(line for line in res.output.splitlines() if line.startswith("report: "))[8:])
    assert report.exists() and report.is_relative_to(state / "reports" / "forecast-capacity")
    res = runner.invoke(_app(), ["report", "trends", "--store-url", url])
    assert res.exit_code == 0 and "report: " in res.output and f"- {disk.host}: disk:/" in res.output, res.output
    from blocks.pricing import PriceTable
    from pressfleet.analysis.cost import cost_report

    PriceTable.register_type_and_schema()
    table = PriceTable(currency="EUR", hourly_rate_usd=80)
    table.storage_gb_month["s3"]["standard"] = 0.5
    table.save("test-prices", overwrite=True)
    res = runner.invoke(_app(), ["report", "cost", "--price-table", "test-prices", "--store-url", url])
    assert res.exit_code == 0 and "report: " in res.output, res.output
    total = cost_report(url, PriceTable.load("test-prices").prices()).totals["total_usd_month"]
    assert f"EUR {total:,.2f} a month" in res.output


def test_failures_exit_non_zero(prefect_harness, tmp_path, state):
    res = CliRunner().invoke(_app(), ["report", "anomalies", "--store-url", "nosuchdatabase://x/y"])
    assert res.exit_code == 1
    assert "detect-anomalies failed" in res.output
    res = CliRunner().invoke(_app(), ["report", "cost", "--price-table", "no-such-block"])
    assert res.exit_code == 1 and "PriceTable" in res.output
