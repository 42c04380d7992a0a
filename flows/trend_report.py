"""Flow: what changed this week, and what will each server run out of first?"""

from __future__ import annotations

from typing import Annotated

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from pydantic import Field

from pressfleet.analysis import charts, trends
from pressfleet.analysis.markdown import trends_markdown
from pressfleet.analysis.report import run_report_dir, write_report
from pressfleet.analysis.results import Bottleneck, Hosts, StoreUrl, TrendResult, records


@task(name="trends", cache_policy=NONE, persist_result=False)
def trends_task(store_url, hosts, horizon_days) -> trends.TrendReport:
    return trends.trend_report(store_url, hosts=hosts, horizon_days=horizon_days)


@task(name="draw trend charts", cache_policy=NONE, persist_result=False)
def charts_task(rep, directory) -> list:
    return charts.trend_charts(rep, directory) + charts.capacity_charts(rep.capacity, directory)


@flow(name="trend-report")
def trend_report(
    store_url: StoreUrl = None,
    hosts: Hosts = None,
    horizon_days: Annotated[float, Field(gt=0, le=365, description="Horizon for the bottleneck forecast.")] = 30,
) -> TrendResult:
    """Week-over-week change of every metric, each server's bottleneck (the resource that reaches its limit first,
    by forecast) and suggestions, most urgent first.

    You get a markdown artifact `trend-report`: the suggestions, a bottleneck table per host (with days to the
    limit and the interval's earliest day), the metrics that moved 10 % or more since last week, and links to
    the charts (week-over-week bars, each host's forecasts). PNGs and CSVs sit in
    state/reports/trend-report/<run>/. `store_url` empty means the default metrics store.

    Args:
        store_url: Metrics store URL; empty: the default store.
        hosts: Only these hosts; empty: every host.
        horizon_days: How far ahead the bottleneck forecast looks.
    """
    log = get_run_logger()
    rep = trends_task(store_url, hosts, horizon_days)
    directory = run_report_dir("trend-report")
    pngs = charts_task(rep, directory)
    csvs = [directory / "week_over_week.csv", directory / "bottlenecks.csv"]
    md = trends_markdown(rep, pngs, csvs)
    path = write_report(directory, "trends", md, {"week_over_week": rep.week_over_week,
                                                  "bottlenecks": rep.bottlenecks})
    create_markdown_artifact(key="trend-report", markdown=md, description=rep.suggestions[0][:250])
    log.info("trend report: %s", path)
    bns = [Bottleneck(**{k: v for k, v in r.items() if k in Bottleneck.model_fields})
           for r in records(rep.bottlenecks)]
    return TrendResult(directory=str(directory), markdown=str(path), charts=[str(p) for p in pngs],
                       tables=[str(c) for c in csvs], notes=rep.notes, bottlenecks=bns, suggestions=rep.suggestions,
                       week_over_week=records(rep.week_over_week))


if __name__ == "__main__":
    print(trend_report().model_dump_json(indent=2))
