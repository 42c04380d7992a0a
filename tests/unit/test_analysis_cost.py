"""Cost report: backup storage priced per provider and class, servers right-sized with savings and payback."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pressfleet.analysis import metric_names as mn
from pressfleet.analysis.cost import cost_report
from pressfleet.analysis.pricing import Prices, ServerSize
from pressfleet.metrics.generate import GIB, generate_history
from pressfleet.metrics.store import MetricsStore, canonical_labels

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    hist = generate_history(seed=6, hosts=3, sites_per_host=2, days=21)
    st = MetricsStore(f"sqlite:///{tmp_path_factory.mktemp('cost') / 'm.db'}")
    st.write_points(hist.points)
    return hist, st


def test_backups_are_priced_from_their_size_class_and_copies(fleet):
    hist, st = fleet
    prices = Prices()
    rep = cost_report(st, prices)
    b = rep.backups
    assert len(b) == sum(len(s) for s in hist.sites.values())
    for r in b.itertuples():
        price = prices.storage_price(r.provider, r.storage_class)
        latest = hist.points[(hist.points["metric"] == mn.BACKUP_BYTES) & (hist.points["site"] == r.site)]
        latest_gb = latest.sort_values("time")["value"].iloc[-1] / 1e9
        assert r.backup_gb == pytest.approx(latest_gb)
        assert r.usd_month == pytest.approx(latest_gb * prices.retained_copies * price)
        assert r.growth_gb_month > 0 and r.usd_month_in_12 > r.usd_month
        if r.suggested_class:
            cold = prices.storage_gb_month[r.provider][r.suggested_class]
            assert r.savings_usd_month == pytest.approx((prices.retained_copies - prices.hot_copies) * latest_gb
                                                        * (price - cold))
    assert rep.storage["usd_month"].sum() == pytest.approx(b["usd_month"].sum())
    assert rep.totals["backup_usd_month"] == pytest.approx(b["usd_month"].sum())
    # the price table is the caller's: double every price, double the bill
    dear = Prices(storage_gb_month={p: {c: 2 * v for c, v in cl.items()}
                                    for p, cl in prices.storage_gb_month.items()})
    assert cost_report(st, dear).totals["backup_usd_month"] == pytest.approx(2 * rep.totals["backup_usd_month"])
    # an unknown provider is said, not guessed
    cheap = Prices(storage_gb_month={"s3": {"standard": 0.01}})
    rep2 = cost_report(st, cheap)
    assert any("no price for" in n for n in rep2.notes)


def _write(st, metric, host, values, *, labels=None, site="", hours=24 * 10):
    t = pd.date_range("2025-03-03", periods=hours, freq="1h", tz="UTC")
    v = np.broadcast_to(np.asarray(values, dtype=float), (hours,)) if np.ndim(values) == 0 else values
    st.write_points(pd.DataFrame({"time": t, "host": host, "site": site, "metric": metric,
                                  "labels": canonical_labels(labels), "value": v}))


def test_an_oversized_server_is_right_sized_with_savings_and_payback(tmp_path):
    st = MetricsStore(f"sqlite:///{tmp_path / 'm.db'}")
    n = 24 * 10
    rng = np.random.default_rng(1)
    _write(st, mn.CPU_COUNT, "big", 8.0)
    _write(st, mn.MEM_TOTAL_BYTES, "big", 16 * GIB)
    _write(st, mn.MEM_USED_BYTES, "big", 2.2 * GIB + rng.normal(0, 0.05 * GIB, n))
    _write(st, mn.CPU_PERCENT, "big", 6 + rng.normal(0, 1, n))
    _write(st, mn.MEM_TOTAL_BYTES, "busy", 2 * GIB)          # no cpu_count: inferred
    _write(st, mn.MEM_USED_BYTES, "busy", 1.9 * GIB + rng.normal(0, 0.01 * GIB, n))
    _write(st, mn.CPU_PERCENT, "busy", 80 + rng.normal(0, 2, n))
    prices = Prices(migration_hours=2, hourly_rate_usd=50)
    rep = cost_report(st, prices)
    s = rep.servers.set_index("host")
    big = s.loc["big"]
    assert big["size"] == "8 vCPU / 16 GB" and big["usd_month"] == 96
    assert big["action"] == "downsize"
    # p95 CPU ~7.6 % of 8 vCPUs -> 1 vCPU at 70 %; p95 memory ~2.28 GiB -> 3.04 GB at 75 %: the cheapest size
    # with at least 1 vCPU and 3.04 GB is 2 vCPU / 4 GB ($24; 1 vCPU / 2 GB would run out of memory)
    assert big["cpu_p95"] == pytest.approx(7.6, abs=0.3) and big["mem_p95"] == pytest.approx(14.3, abs=0.3)
    assert (big["recommended"], big["recommended_usd_month"]) == ("2 vCPU / 4 GB", 24)
    save = 96 - 24
    assert big["savings_usd_month"] == pytest.approx(save)
    assert big["payback_months"] == pytest.approx(100 / save)
    assert big["roi_12m"] == pytest.approx((12 * save - 100) / 100)
    busy = s.loc["busy"]
    assert busy["action"] == "upsize" and busy["savings_usd_month"] < 0
    assert "cpu_count" in busy["notes"]
    assert rep.totals["server_savings_usd_month"] == pytest.approx(save)
    assert any("backup_bytes" in n for n in rep.notes)  # no backups in this store: said
    # a price table with no size large enough
    tiny = Prices(servers=[ServerSize(name="small", vcpus=1, ram_gb=1, monthly_usd=5)])
    assert "larger" in cost_report(st, tiny).servers.set_index("host").loc["busy", "recommended"]


def test_a_server_that_stopped_reporting_is_flagged_not_resized(fleet):
    hist, st = fleet
    gone = next(iter(hist.ended))
    s = cost_report(st).servers.set_index("host")
    assert s.loc[gone, "action"] == "check" and "no data since" in s.loc[gone, "notes"]
    assert math.isnan(s.loc[gone, "payback_months"])


def test_a_day_of_data_and_a_single_backup_get_notes_not_errors(tmp_path):
    st = MetricsStore(f"sqlite:///{tmp_path / 'm.db'}")
    _write(st, mn.MEM_TOTAL_BYTES, "new", 4 * GIB, hours=24)
    _write(st, mn.MEM_USED_BYTES, "new", 1 * GIB, hours=24)
    _write(st, mn.CPU_PERCENT, "new", 5.0, hours=24)
    _write(st, mn.BACKUP_BYTES, "new", 2e9, site="a.example", hours=2,
           labels={mn.PROVIDER_LABEL: "s3", mn.STORAGE_CLASS_LABEL: "glacier_ir"})
    rep = cost_report(st)
    srv = rep.servers.iloc[0]
    assert "only 1.0 days" in srv["notes"]
    b = rep.backups.iloc[0]
    assert math.isnan(b["growth_gb_month"]) and "growth unknown" in b["notes"]
    assert b["usd_month"] == pytest.approx(2 * 14 * 0.004) and b["usd_month_in_12"] == pytest.approx(b["usd_month"])
