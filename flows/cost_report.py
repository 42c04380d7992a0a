"""Flow: what do backups and servers cost, and where can it be cut? Storage and server costs, right-sizing."""

from __future__ import annotations

from typing import Annotated, Optional

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from pydantic import Field

from blocks.pricing import PriceTable
from pressfleet.analysis import charts, cost
from pressfleet.analysis.markdown import cost_markdown
from pressfleet.analysis.report import run_report_dir, write_report
from pressfleet.analysis.results import CostResult, StoreUrl, records


@task(name="cost", cache_policy=NONE, persist_result=False)
def cost_task(store_url, prices) -> cost.CostReport:
    return cost.cost_report(store_url, prices)


@task(name="draw cost charts", cache_policy=NONE, persist_result=False)
def charts_task(rep, directory) -> list:
    return charts.cost_charts(rep, directory)


@flow(name="cost-report")
def cost_report(
    price_table: Annotated[Optional[PriceTable], Field(description="Prices (empty: list prices; check your "
                                                                   "provider).")] = None,
    store_url: StoreUrl = None,
) -> CostResult:
    """Cost of backup storage per provider and storage class (from each site's backup size and its growth) and of
    servers (from their size), with what can be saved.

    Pick a PriceTable block (or none: list prices, which you should check against your provider). You get a
    markdown artifact `cost-report`: monthly totals now and in 12 months at today's growth, backup storage per
    provider/class and per site (with the cheaper class for older copies and its saving), each server's CPU and
    memory use against its size, right-sizing with monthly savings, payback and 12-month ROI, and links to
    the charts. PNGs and CSVs sit in state/reports/cost-report/<run>/.

    Args:
        price_table: A PriceTable block; empty: list prices (check your provider).
        store_url: Metrics store URL; empty: the default store.
    """
    log = get_run_logger()
    prices = (price_table or PriceTable()).prices()
    rep = cost_task(store_url, prices)
    directory = run_report_dir("cost-report")
    pngs = charts_task(rep, directory)
    csvs = [directory / f"{n}.csv" for n in ("backups", "storage", "servers")]
    md = cost_markdown(rep, pngs, csvs)
    path = write_report(directory, "cost", md, {"backups": rep.backups, "storage": rep.storage,
                                                "servers": rep.servers})
    create_markdown_artifact(key="cost-report", markdown=md,
                             description=f"{prices.currency} {rep.totals['total_usd_month']:,.2f} a month; "
                                         f"{rep.totals['total_savings_usd_month']:,.2f} of savings found")
    log.info("cost report: %s", path)
    return CostResult(directory=str(directory), markdown=str(path), charts=[str(p) for p in pngs],
                      tables=[str(c) for c in csvs], notes=rep.notes, currency=prices.currency, totals=rep.totals,
                      backups=records(rep.backups), servers=records(rep.servers))


if __name__ == "__main__":
    print(cost_report().model_dump_json(indent=2))
