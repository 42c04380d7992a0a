"""Flow: what departed from its usual daily and weekly pattern? Flagged periods across the fleet."""

from __future__ import annotations

from typing import Annotated, Optional

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from pydantic import Field

from pressfleet.analysis import anomalies, charts
from pressfleet.analysis.markdown import anomalies_markdown
from pressfleet.analysis.report import run_report_dir, write_report
from pressfleet.analysis.results import AnomalyPeriod, AnomalyResultModel, Hosts, StoreUrl, records
from pressfleet.metrics.anomalies import DEFAULT_THRESHOLD


@task(name="detect anomalies", cache_policy=NONE, persist_result=False)
def detect_task(store_url, metrics, days, hosts, threshold) -> anomalies.AnomalyReport:
    return anomalies.anomaly_report(store_url, metrics=metrics, days=days, hosts=hosts, threshold=threshold)


@task(name="draw anomaly charts", cache_policy=NONE, persist_result=False)
def charts_task(rep, directory) -> list:
    return charts.anomaly_charts(rep, directory)


@flow(name="detect-anomalies")
def detect_anomalies(
    store_url: StoreUrl = None,
    days: Annotated[float, Field(gt=0, le=400, description="How much recent history to check.")] = 28,
    metrics: Annotated[Optional[list[str]], Field(description="Metric names to check (empty: CPU, load, memory, "
                                                            "requests, PHP workers, MariaDB threads, Redis hit "
                                                            "ratio, TTFB, backup age, disk use).")] = None,
    hosts: Hosts = None,
    threshold: Annotated[float, Field(ge=2, le=20, description="Robust z-score to flag (default 5: about 1 false "
                                                                "alarm in 5,000 points).")] = DEFAULT_THRESHOLD,
) -> AnomalyResultModel:
    """Check every series (CPU, load, memory, requests, PHP workers, MariaDB threads, Redis hit ratio, time to first
    byte, backup age, disk use) against its own daily and weekly pattern and list what departed from it.

    You get a markdown artifact `anomalies`: the flagged periods (host, site, metric, when, how far off, value vs
    expected), the detector's stated false-alarm rate and how many false alarms it predicts over the points
    checked, and links to a chart per series with anomalies. PNGs and CSVs sit in
    state/reports/detect-anomalies/<run>/. `store_url` empty means the default metrics store.

    Args:
        store_url: Metrics store URL; empty: the default store.
        days: How many recent days to check (two weeks or more model the weekly cycle).
        metrics: Metric names to check; empty: CPU, load, memory, requests, PHP workers, MariaDB threads, Redis
            hit ratio, time to first byte, backup age, disk use.
        hosts: Only these hosts; empty: every host.
        threshold: Robust z-score to flag; the default 5 states about 1 false alarm in 5,000 points.
    """
    log = get_run_logger()
    rep = detect_task(store_url, tuple(metrics) if metrics else None, days, hosts, threshold)
    directory = run_report_dir("detect-anomalies")
    pngs = charts_task(rep, directory)
    csvs = [directory / "anomalies.csv", directory / "series.csv"]
    md = anomalies_markdown(rep, pngs, csvs)
    path = write_report(directory, "anomalies", md, {"anomalies": rep.periods, "series": rep.series})
    create_markdown_artifact(key="anomalies", markdown=md,
                             description=f"{len(rep.periods)} anomalous period(s) in {len(rep.series)} series")
    log.info("anomaly report: %s (%d periods)", path, len(rep.periods))
    periods = [AnomalyPeriod(**{k: v for k, v in r.items() if k in AnomalyPeriod.model_fields})
               for r in records(rep.periods)]
    return AnomalyResultModel(directory=str(directory), markdown=str(path), charts=[str(p) for p in pngs],
                              tables=[str(c) for c in csvs], notes=rep.notes, threshold=rep.threshold,
                              false_alarm_rate=rep.false_alarm_rate, points_checked=rep.points_checked,
                              expected_false_alarms=rep.expected_false_alarms, series_checked=len(rep.series),
                              periods=periods)


if __name__ == "__main__":
    print(detect_anomalies().model_dump_json(indent=2))
