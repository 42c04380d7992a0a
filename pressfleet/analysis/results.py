"""What the analysis flows return (pydantic models: typed in the UI and through the API)."""

from __future__ import annotations

import math
from typing import Annotated, Any, Optional

import pandas as pd
from pydantic import BaseModel, Field


StoreUrl = Annotated[Optional[str], Field(
    description="Metrics store URL (sqlite:///... or postgresql+psycopg://...). Empty: the default store "
                "(PRESSFLEET_METRICS_URL, else state/metrics.db).")]
Hosts = Annotated[Optional[list[str]], Field(description="Only these hosts (empty: every host in the store).")]


def _clean(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(v, "item"):
        return v.item()
    return v


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain dicts (NaN -> None, timestamps -> ISO strings)."""
    return [{k: _clean(v) for k, v in row.items()} for row in df.to_dict("records")]


class ReportFiles(BaseModel):
    directory: str = Field(description="The run's folder under state/reports/")
    markdown: str = Field(description="The report as markdown (also the artifact)")
    charts: list[str] = Field(default_factory=list, description="PNG files")
    tables: list[str] = Field(default_factory=list, description="CSV files")
    notes: list[str] = Field(default_factory=list)


class CapacityRow(BaseModel):
    host: str
    site: str = ""
    resource: str
    unit: str = ""
    current: Optional[float] = None
    capacity: Optional[float] = None
    limit: Optional[float] = None
    forecast: Optional[float] = None
    lower: Optional[float] = None
    upper: Optional[float] = None
    days_to_limit: Optional[float] = None
    days_to_limit_earliest: Optional[float] = None
    days_to_limit_latest: Optional[float] = None
    days_to_full: Optional[float] = None
    days_to_full_earliest: Optional[float] = None
    days_to_full_latest: Optional[float] = None
    status: str
    advice: str = ""
    method: str = ""


class CapacityResult(ReportFiles):
    horizon_days: float
    hosts: list[str] = Field(default_factory=list)
    rows: list[CapacityRow] = Field(default_factory=list)
    attention: list[CapacityRow] = Field(default_factory=list, description="rows that need someone")


class AnomalyPeriod(BaseModel):
    host: str
    site: str = ""
    metric: str
    labels: str = ""
    start: str
    end: str
    points: int
    peak_score: float
    direction: str
    value: Optional[float] = None
    expected: Optional[float] = None


class AnomalyResultModel(ReportFiles):
    threshold: float
    false_alarm_rate: float = Field(description="stated, per point, at the default threshold")
    points_checked: int
    expected_false_alarms: float
    series_checked: int
    periods: list[AnomalyPeriod] = Field(default_factory=list)


class CostResult(ReportFiles):
    currency: str = "USD"
    totals: dict[str, float] = Field(default_factory=dict)
    backups: list[dict[str, Any]] = Field(default_factory=list)
    servers: list[dict[str, Any]] = Field(default_factory=list)


class Bottleneck(BaseModel):
    host: str
    resource: str
    utilization_pct: Optional[float] = None
    days_to_limit: Optional[float] = None
    status: str
    suggestion: str


class TrendResult(ReportFiles):
    bottlenecks: list[Bottleneck] = Field(default_factory=list)
    suggestions: list[str] = Field(default_factory=list)
    week_over_week: list[dict[str, Any]] = Field(default_factory=list)


class NotebookRun(BaseModel):
    name: str
    ok: bool
    seconds: float
    notebook: str = Field(description="the executed .ipynb")
    html: Optional[str] = None
    error: Optional[str] = None


class NotebooksResult(BaseModel):
    directory: str
    markdown: str
    notebooks: list[NotebookRun] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(n.ok for n in self.notebooks)
