"""Flow: when does each server run out of disk, memory or CPU? Capacity forecasts with intervals and advice."""

from __future__ import annotations

from typing import Annotated

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from pydantic import Field

from pressfleet.analysis import capacity, charts
from pressfleet.analysis.markdown import capacity_markdown
from pressfleet.analysis.report import run_report_dir, write_report
from pressfleet.analysis.results import CapacityResult, CapacityRow, Hosts, StoreUrl, records


@task(name="forecast capacity", cache_policy=NONE, persist_result=False)
def forecast_task(store_url, horizon_days, hosts, limits) -> capacity.CapacityReport:
    return capacity.capacity_report(store_url, horizon_days=horizon_days, hosts=hosts, limits=limits)


@task(name="draw capacity charts", cache_policy=NONE, persist_result=False)
def charts_task(rep, directory) -> list:
    return charts.capacity_charts(rep, directory)


@flow(name="forecast-capacity")
def forecast_capacity(
    store_url: StoreUrl = None,
    horizon_days: Annotated[float, Field(gt=0, le=365, description="How far ahead to forecast.")] = 30,
    hosts: Hosts = None,
    disk_limit_pct: Annotated[float, Field(gt=0, le=100, description="A disk fuller than this needs action.")] = 90,
    memory_limit_pct: Annotated[float, Field(gt=0, le=100)] = 90,
    cpu_limit_pct: Annotated[float, Field(gt=0, le=100)] = 85,
) -> CapacityResult:
    """Forecast every server's disks, memory, CPU and traffic (and each site's database) and say when headroom
    runs out.

    You get a markdown artifact `capacity-forecast`: what needs attention (with advice: grow a volume, prune or
    move backups, resize), a table per host and resource with today's value, the forecast with its 90 %
    interval, the days until the limit and until a disk is full (earliest-latest), and links to one chart per
    host (history, forecast, interval, limit). The PNGs and CSV sit in state/reports/forecast-capacity/<run>/.
    `store_url` empty means the default metrics store; `hosts` empty means every host in it.

    Args:
        store_url: Metrics store URL (sqlite:///... or postgresql+psycopg://...); empty: the default store.
        horizon_days: How many days ahead to forecast.
        hosts: Only these hosts; empty: every host in the store.
        disk_limit_pct: A disk fuller than this (percent) needs action.
        memory_limit_pct: Memory use (percent of RAM) that counts as running out.
        cpu_limit_pct: CPU use (percent) that counts as running out.
    """
    log = get_run_logger()
    limits = capacity.Limits(disk_pct=disk_limit_pct, memory_pct=memory_limit_pct, cpu_pct=cpu_limit_pct)
    rep = forecast_task(store_url, horizon_days, hosts, limits)
    directory = run_report_dir("forecast-capacity")
    pngs = charts_task(rep, directory)
    csv = directory / "capacity.csv"
    md = capacity_markdown(rep, pngs, [csv])
    path = write_report(directory, "capacity", md, {"capacity": rep.table})
    create_markdown_artifact(key="capacity-forecast", markdown=md,
                             description=f"Capacity forecast, {horizon_days:g} days, {len(rep.hosts)} host(s)")
    log.info("capacity report: %s (%d rows, %d need attention)", path, len(rep.table), len(rep.attention()))
    rows = [CapacityRow(**{k: v for k, v in r.items() if k in CapacityRow.model_fields})
            for r in records(rep.table)]
    attention = [r for r in rows if r.status in ("critical", "act", "watch", "stale")]
    return CapacityResult(directory=str(directory), markdown=str(path), charts=[str(p) for p in pngs],
                          tables=[str(csv)], notes=rep.notes, horizon_days=horizon_days, hosts=rep.hosts, rows=rows,
                          attention=attention)


if __name__ == "__main__":
    print(forecast_capacity().model_dump_json(indent=2))
