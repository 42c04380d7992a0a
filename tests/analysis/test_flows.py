"""The analysis flows end to end on a Prefect API: each writes its report, PNGs and CSVs under
state/reports/<flow>/<run-id>/, publishes a markdown artifact with the figures the analysis computes, and
returns a typed result."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from pressfleet.analysis.capacity import capacity_report
from pressfleet.analysis.cost import cost_report
from pressfleet.analysis.pricing import Prices
from pressfleet.analysis.report import fmt_usd


def artifact_markdown(state, key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]),
                                                                    flow_run_id=ArtifactFilterFlowRunId(
                                                                        any_=[run_id])))
    assert len(arts) == 1, arts
    return arts[0].data


def assert_pngs(paths, at_least: int):
    assert len(paths) >= at_least
    for p in map(Path, paths):
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, p


def linked_files(md: str) -> list[Path]:
    return [Path(unquote(urlparse(u).path)) for u in re.findall(r"\((file://[^)]+)\)", md)]


def test_forecast_capacity(prefect_harness, fleet, state):
    from flows.forecast_capacity import forecast_capacity

    hist, url = fleet
    st = forecast_capacity(store_url=url, horizon_days=30, return_state=True)
    res = st.result()
    md = artifact_markdown(st, "capacity-forecast")
    assert Path(res.directory).parent == state / "reports" / "forecast-capacity"
    assert Path(res.directory).name == str(st.state_details.flow_run_id)
    assert Path(res.markdown).read_text() == md
    assert_pngs(res.charts, len(hist.hosts))
    files = linked_files(md)
    assert set(map(str, files)) >= set(res.charts) and all(f.exists() for f in files)
    # the figures are the analysis' own: the filling disk's days to full, with its interval
    disk = next(i for i in hist.incidents if i.kind == "disk_filling")
    row = next(r for r in res.rows if r.host == disk.host and r.resource == "disk:/")
    assert row.status in ("act", "critical") and 0 < row.days_to_full < 30
    assert f"{row.days_to_full:.1f} ({row.days_to_full_earliest:.1f}–" in md
    again = capacity_report(url, horizon_days=30).table
    want = again[(again["host"] == disk.host) & (again["resource"] == "disk:/")].iloc[0]
    assert row.days_to_full == pytest.approx(want["days_to_full"])
    assert any(r.host == disk.host for r in res.attention)
    assert next(iter(hist.ended)) in " ".join(res.notes)


def test_detect_anomalies(prefect_harness, fleet, state):
    from flows.detect_anomalies import detect_anomalies

    hist, url = fleet
    st = detect_anomalies(store_url=url, days=21, return_state=True)
    res = st.result()
    md = artifact_markdown(st, "anomalies")
    assert "1 in 5,000" in md and f"{res.points_checked:,} points checked" in md
    assert res.points_checked > 10_000 and res.expected_false_alarms == pytest.approx(res.points_checked * 0.0002)
    spike = next(i for i in hist.incidents if i.kind == "traffic_spike")
    hit = [p for p in res.periods if p.host == spike.host and p.metric == "nginx_requests"]
    assert hit and hit[0].direction == "high"
    assert f"{hit[0].peak_score:+.1f}" in md
    assert_pngs(res.charts, 1)
    assert all(Path(t).exists() for t in res.tables)


def test_cost_report_with_a_price_table(prefect_harness, fleet, state):
    from blocks.pricing import PriceTable
    from flows.cost_report import cost_report as cost_flow

    hist, url = fleet
    table = PriceTable(storage_gb_month={"s3": {"standard": 0.05, "standard_ia": 0.02, "glacier_ir": 0.004},
                                         "gcs": {"standard": 0.02, "nearline": 0.01, "archive": 0.0012},
                                         "azure": {"hot": 0.02, "cool": 0.01, "archive": 0.001}})
    st = cost_flow(price_table=table, store_url=url, return_state=True)
    res = st.result()
    md = artifact_markdown(st, "cost-report")
    want = cost_report(url, table.prices()).totals
    default = cost_report(url, Prices()).totals
    assert res.totals["backup_usd_month"] == pytest.approx(want["backup_usd_month"])
    assert want["backup_usd_month"] != pytest.approx(default["backup_usd_month"])  # the block's prices count
    assert fmt_usd(want["total_usd_month"]) in md and fmt_usd(want["backup_usd_month"]) in md
    assert len(res.backups) == sum(len(s) for s in hist.sites.values())
    assert_pngs(res.charts, 2)
    # and with no block: list prices
    res2 = cost_flow(store_url=url)
    assert res2.totals["backup_usd_month"] == pytest.approx(default["backup_usd_month"])


def test_trend_report(prefect_harness, fleet, state):
    from flows.trend_report import trend_report

    hist, url = fleet
    st = trend_report(store_url=url, return_state=True)
    res = st.result()
    md = artifact_markdown(st, "trend-report")
    disk = next(i for i in hist.incidents if i.kind == "disk_filling")
    b = {x.host: x for x in res.bottlenecks}
    assert set(b) == set(hist.hosts) and b[disk.host].resource == "disk:/"
    assert res.suggestions[0] in md and f"{b[disk.host].days_to_limit:.1f}" in md
    assert_pngs(res.charts, 1 + len(hist.hosts))


def test_the_demo_fills_the_store_once_and_forecasts(prefect_harness, tmp_path, state):
    from pressfleet.stack.demo import fill_and_forecast

    url = f"sqlite:///{tmp_path / 'demo.db'}"
    out = fill_and_forecast(url)
    assert out["written"] > 50_000 and out["store"] == url
    report = Path(out["report"])
    assert report.exists() and report.is_relative_to(state / "reports" / "forecast-capacity")
    assert len(out["charts"]) == 4 and all(Path(c).exists() for c in out["charts"])
    assert "web-01" in report.read_text()
    again = fill_and_forecast(url)
    assert again["written"] == 0 and again["report"] != out["report"]
