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


NEVER_FULL_DAYS = 9999.0  # what a disk that does not fill within the horizon reads as (the alert resolves)


def disk_full_days(table) -> dict[str, tuple[float, dict]]:
    """{host: (the earliest day any of its disks may fill, in the 90 % interval; evidence)} from the report's
    disk rows; a host none of whose disks fills within the horizon reads NEVER_FULL_DAYS."""
    out: dict[str, tuple[float, dict]] = {}
    for row in records(table):
        if not str(row.get("resource", "")).startswith("disk:") or not row.get("capacity") \
                or row.get("status") in ("no data", "stale") or row.get("forecast") is None:
            continue  # unknown size, no forecast or old data: no data for the rule, not "never full"
        days = row.get("days_to_full_earliest")
        days = NEVER_FULL_DAYS if days is None or days != days else float(days)  # NaN: never within the horizon
        mount = str(row["resource"]).split(":", 1)[1]
        if row["host"] not in out or days < out[row["host"]][0]:
            out[row["host"]] = (round(days, 1), {"mount": mount, "likely_days": row.get("days_to_full")})
    return out


def observe_disk_forecast(table, log) -> int:
    """The disk-full-soon rule's input: each saved server's earliest days-to-full, in the watcher's alert store."""
    from prefect.client.orchestration import get_client

    from pressfleet.alerts.store import put_observations

    by_host = disk_full_days(table)
    rows = []
    try:
        with get_client(sync_client=True) as client:  # addresses only: no private key is read
            docs = client.read_block_documents_by_type(block_type_slug="server", include_secrets=False)
    except Exception as exc:  # noqa: BLE001 - the report is written; the rule waits for tomorrow's
        log(f"disk forecasts not handed to the alert rules: {type(exc).__name__}: {exc}")
        return 0
    for d in docs:
        data = d.data or {}
        if d.name and not d.is_anonymous and data.get("address"):
            label = data["address"] if int(data.get("port") or 22) == 22 else f"{data['address']}:{data['port']}"
            if label in by_host:
                rows.append((f"pressfleet.server.{d.name}", "disk_full_days", *by_host[label]))
    return put_observations(rows, log=log)


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
    observe_disk_forecast(rep.table, log.warning)
    rows = [CapacityRow(**{k: v for k, v in r.items() if k in CapacityRow.model_fields})
            for r in records(rep.table)]
    attention = [r for r in rows if r.status in ("critical", "act", "watch", "stale")]
    return CapacityResult(directory=str(directory), markdown=str(path), charts=[str(p) for p in pngs],
                          tables=[str(csv)], notes=rep.notes, horizon_days=horizon_days, hosts=rep.hosts, rows=rows,
                          attention=attention)


if __name__ == "__main__":
    print(forecast_capacity().model_dump_json(indent=2))
