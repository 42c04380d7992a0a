"""One list of metric names: the generator produces every one, with the kind and scope the list says."""

from __future__ import annotations

import pytest

from pressfleet.analysis import metric_names as mn
from pressfleet.metrics.generate import METRICS, generate_history, generate_series
from pressfleet.metrics.store import parse_labels

pytestmark = pytest.mark.unit


def test_the_generator_produces_every_listed_metric_with_its_scope():
    hist = generate_history(seed=1, hosts=2, sites_per_host=1, days=2, gaps=False, resets=False)
    p = hist.points
    assert set(p["metric"]) == set(mn.METRICS) == set(METRICS)
    for metric, info in mn.METRICS.items():
        rows = p[p["metric"] == metric]
        if info.scope == "site":
            assert (rows["site"] != "").all(), metric
        else:
            assert (rows["site"] == "").all(), metric
        if info.scope == "mount":
            assert rows["labels"].map(lambda x: "mount" in parse_labels(x)).all(), metric
    b = p[p["metric"] == mn.BACKUP_BYTES]
    assert b["labels"].map(lambda x: set(parse_labels(x)) == {mn.PROVIDER_LABEL, mn.STORAGE_CLASS_LABEL}).all()
    for c in mn.COUNTERS:  # counters never go down without a reset
        for host in hist.hosts:
            s = hist.series(c, host)
            assert s.attrs["kind"] == "counter" and (s.diff().dropna() >= 0).all(), c


def test_old_names_still_work_and_kinds():
    assert generate_series("ttfb_ms", seed=1).name == mn.TTFB_SECONDS
    assert generate_series("nginx_requests_total", seed=1).attrs["kind"] == "counter"
    assert mn.kind_of(mn.NGINX_REQUESTS) == "counter" and mn.kind_of(mn.CPU_COUNT) == "gauge"
    assert mn.kind_of("something_total") == "counter" and mn.kind_of("something") == "gauge"
    s = generate_series("backup_bytes", seed=1)
    assert s.iloc[-1] > s.iloc[0] > 0


def test_forecast_knows_the_counters_by_name():
    import numpy as np
    import pandas as pd

    from pressfleet.metrics.forecast import forecast, is_counter

    idx = pd.date_range("2025-03-03", periods=100, freq="1h", tz="UTC")
    reqs = pd.Series(np.arange(100) * 3600.0, index=idx, name=mn.NGINX_REQUESTS)  # as read from the store
    assert is_counter(reqs) and forecast(reqs, 5).mean.iloc[0] == pytest.approx(1.0)  # one request a second
    cpus = pd.Series(np.full(100, 4.0), index=idx, name=mn.CPU_COUNT)
    assert not is_counter(cpus) and forecast(cpus, 5).mean.iloc[0] == 4.0
