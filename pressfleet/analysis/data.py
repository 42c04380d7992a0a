"""Reading the store for analyses: which series exist, each one as a Series, and when 'now' is."""

from __future__ import annotations

from typing import Any

import pandas as pd

from pressfleet.analysis import metric_names as mn
from pressfleet.metrics.store import MetricsStore, open_store, parse_labels


def store_for(store: MetricsStore | str | None) -> MetricsStore:
    """A store object from a store, a URL, or None (the default store)."""
    return store if isinstance(store, MetricsStore) else open_store(store)


def inventory(store: MetricsStore, metrics: list[str] | tuple[str, ...] | None = None) -> pd.DataFrame:
    """Every series (metric, host, site, labels, first, last), optionally only some metrics."""
    df = store.list_series()
    if metrics is not None:
        df = df[df["metric"].isin(list(metrics))]
    return df.reset_index(drop=True)


def fleet_now(store: MetricsStore, inv: pd.DataFrame | None = None) -> pd.Timestamp | None:
    """The newest point in the store: the analyses' 'now' (so old or synthetic data is judged as of its end)."""
    inv = inventory(store) if inv is None else inv
    if inv.empty:
        return None
    return pd.Timestamp(inv["last"].max())


def load(store: MetricsStore, metric: str, host: str, site: str = "", labels: Any = "", *, days: float | None = None,
         end: Any = None, resolution: str = "hour") -> pd.Series:
    """One series at `resolution` (hourly by default: rollups and raw points alike), the last `days` before
    `end`. Counters read the last value of each hour and are marked as counters (forecast and anomaly
    detection then work on their rate)."""
    start = None
    if days is not None and end is not None:
        start = pd.Timestamp(end) - pd.Timedelta(days=days)
    kind = mn.kind_of(metric)
    s = store.read_series(metric, host, site or None, start=start, end=None, resolution=resolution,
                          labels=labels or None, field="last" if kind == "counter" else "mean")
    s.attrs["kind"] = kind
    return s


def label(labels: str, key: str) -> str:
    return parse_labels(labels).get(key, "") if labels else ""


def series_name(metric: str, host: str, site: str = "", labels: str = "") -> str:
    parts = [host]
    if site:
        parts.append(site)
    extra = ",".join(f"{k}={v}" for k, v in parse_labels(labels).items()) if labels else ""
    return " ".join(parts) + f" {metric}" + (f"{{{extra}}}" if extra else "")
