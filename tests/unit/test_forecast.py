"""The forecasting method: accuracy against seasonal-naive, intervals, and sensible answers on awkward data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pressfleet.metrics.backtest import backtest, seasonal_naive
from pressfleet.metrics.forecast import ForecastResult, days_until, forecast, forecast_many, prepare
from pressfleet.metrics.generate import GIB, generate_history, generate_series

pytestmark = pytest.mark.unit

ELEC = None
try:  # hourly electricity demand of Victoria, Jan-May 2012 (daily and weekly cycles), shipped in statsmodels
    import statsmodels

    _p = Path(statsmodels.__file__).parent / "tsa" / "stl" / "tests" / "results" / "mstl_elec_vic.csv"
    if _p.exists():
        _df = pd.read_csv(_p, parse_dates=["ds"])
        ELEC = pd.Series(_df["y"].to_numpy(), index=pd.DatetimeIndex(_df["ds"]).tz_localize("UTC"), name="demand")
except Exception:  # noqa: BLE001
    ELEC = None


def hourly(values, start="2025-01-06", name=None) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=float), index=pd.date_range(start, periods=len(values), freq="h",
                                                                           tz="UTC"), name=name)


def test_a_forecast_continues_the_series():
    s = generate_series("ttfb_seconds", seed=1)
    fc = forecast(s, 48)
    assert isinstance(fc, ForecastResult)
    assert len(fc.mean) == len(fc.lower) == len(fc.upper) == 48
    assert fc.mean.index[0] == s.index[-1] + pd.Timedelta(hours=1) and str(fc.mean.index.tz) == "UTC"
    assert (fc.lower <= fc.mean).all() and (fc.mean <= fc.upper).all()
    assert "MSTL(24,168)" in fc.method
    assert fc.frame().shape == (48, 3)


@pytest.mark.parametrize("metric,seed", [("cpu_percent", 1), ("ttfb_seconds", 2), ("nginx_requests", 3),
                                         ("mem_used_bytes", 4), ("disk_used_bytes", 5), ("load1", 6)])
def test_beats_seasonal_naive_on_generated_series(metric, seed):
    s = generate_series(metric, seed=seed, host_index=seed)
    res = backtest(s, 24, origins=3, step=48)
    assert res.season == 168 and len(res.per_origin) == 3
    assert res.mase < 1.0, res.per_origin
    assert res.relative_mae < 1.0, res.per_origin


@pytest.mark.skipif(ELEC is None, reason="statsmodels' electricity demand data is not installed")
def test_beats_seasonal_naive_on_real_electricity_demand():
    # 30 days of history at each origin, a day ahead, over ten weeks of origins
    res = backtest(ELEC, 24, origins=10, step=168, train_window=720)
    assert len(res.per_origin) == 10
    assert res.mase < 1.0 and res.relative_mae < 1.0, res.per_origin


@pytest.fixture(scope="module")
def held_out_electricity():
    """Relative MASE (MAE of forecast() / MAE of seasonal-naive with season 168 at each origin, averaged over
    8 origins one week apart, all history before each) on the Victoria demand, a day and a week ahead. No
    setting of forecast() was chosen on this series (benchmarks/bench_forecast.py, "anchor_comparison")."""
    out = {}
    for h in (24, 168):
        res = backtest(ELEC, h, origins=8, step=168, season=168)
        assert len(res.per_origin) == 8
        out[h] = res.relative_mase
    return out


@pytest.mark.skipif(ELEC is None, reason="statsmodels' electricity demand data is not installed")
def test_held_out_electricity_relative_mase(held_out_electricity):
    # measured 0.961 (24 h) and 0.964 (168 h); statsforecast's MSTL(24,168) + AutoETS scores 1.175 and 1.056 on
    # the same origins (benchmarks/results/forecast.json). Issue 13's goal, 0.70 at both, is not reached yet.
    assert held_out_electricity[24] < 1.0, held_out_electricity
    assert held_out_electricity[168] < 1.0, held_out_electricity


def test_intervals_contain_most_held_out_points():
    inside = total = 0
    for metric, seed in [("cpu_percent", 11), ("ttfb_seconds", 12), ("redis_hit_ratio", 13), ("mem_used_bytes", 14),
                         ("nginx_requests", 15)]:
        s = generate_series(metric, seed=seed, host_index=seed % 5)
        res = backtest(s, 48, origins=2, step=72)
        inside += (res.per_origin["coverage"] * res.per_origin["points"]).sum()
        total += res.per_origin["points"].sum()
    assert 0.75 <= inside / total <= 0.99  # the 90 % intervals


def test_days_until_a_disk_fills():
    s = generate_series("disk_used_bytes", seed=0, incident="disk_filling")
    size = float(generate_series("disk_total_bytes", seed=0).iloc[0])
    fc = forecast(s, 24 * 60)
    assert "last 3 days" in fc.method  # the disk started filling: the recent slope is the one that counts
    c = days_until(fc, size)
    assert not c.already and c.when is not None
    assert c.days_earliest <= c.days <= (c.days_latest or np.inf)
    assert 2 < c.days < 30
    # the truth: the generator's fill rate carried on
    growth = (s.iloc[-1] - s.iloc[-73]) / 72
    true_days = (size - s.iloc[-1]) / growth / 24
    assert c.days_earliest * 0.8 <= true_days <= (c.days_latest or np.inf) * 1.25
    assert "interval" in c.describe()
    far = days_until(fc, size * 10)
    assert far.when is None and far.describe() == "not within the forecast horizon"
    assert days_until(fc, 0.0).already


def test_days_until_falling_to_a_threshold():
    tls = hourly(np.linspace(40, 20, 24 * 20))
    fc = forecast(tls, 24 * 30, seasonal_periods=())
    c = days_until(fc, 14, direction="down")
    assert c.days == pytest.approx(6 + 1 / 24, abs=0.3)


def test_short_series_drop_the_seasons_they_cannot_see():
    s = generate_series("cpu_percent", seed=3, days=5)
    fc = forecast(s, 24)
    assert fc.method.startswith("MSTL(24)")
    assert any("168" in n for n in fc.notes)
    fc = forecast(s.iloc[:30], 24)
    assert "MSTL" not in fc.method and any("24 steps" in n for n in fc.notes)
    for n in (1, 2, 3):
        fc = forecast(s.iloc[:n], 5)
        assert len(fc.mean) == 5 and fc.method.startswith("naive") and fc.notes
    fc = forecast(s.iloc[:0], 5)
    assert len(fc.mean) == 5 and fc.mean.isna().all() and "no data" in " ".join(fc.notes)


def test_gaps_nans_flat_and_irregular_points():
    s = generate_series("ttfb_seconds", seed=4, days=21)
    gappy = s.drop(s.index[200:230]).drop(s.index[400:403])
    fc = forecast(gappy, 24)
    assert any("33 of" in n and "missing" in n for n in fc.notes)
    assert np.isfinite(fc.mean).all()
    with_nans = s.copy()
    with_nans.iloc[[5, 50, 500]] = np.nan
    fc = forecast(with_nans, 24)
    assert any("3 missing" in n for n in fc.notes)
    flat = hourly(np.full(400, 7.0))
    fc = forecast(flat, 24)
    assert fc.method == "constant" and (fc.mean == 7.0).all() and any("constant" in n for n in fc.notes)
    five = generate_series("cpu_percent", seed=4, days=15, freq="5min")
    fc = forecast(five, 24, freq="1h")
    assert any("averaged" in n for n in fc.notes) and fc.mean.index.freq == pd.Timedelta("1h")
    jitter = s.copy()
    jitter.index = jitter.index + pd.to_timedelta(np.random.default_rng(0).integers(0, 90, len(s)), unit="s")
    fc = forecast(jitter, 24)
    assert "MSTL(24,168)" in fc.method


def test_counters_become_rates_and_resets_are_handled():
    rate = generate_series("nginx_requests", seed=7).diff().dropna()
    counter = rate.cumsum()
    counter.iloc[300:] -= counter.iloc[299]  # nginx restarted: the count starts again from zero
    counter.iloc[500:] -= counter.iloc[499]
    fc = forecast(counter, 24)
    assert fc.kind == "counter"
    assert any("2 reset" in n for n in fc.notes)
    per_second = rate / 3600
    # the rates are exact, across both resets (the first point has no earlier count to differ from)
    assert list(fc.history.index) == list(per_second.index[1:])
    assert np.allclose(fc.history.to_numpy(), per_second.iloc[1:].to_numpy(), rtol=1e-9, atol=0)
    assert fc.mean.mean() == pytest.approx(per_second.iloc[-168:].mean(), rel=0.1)
    assert (fc.history >= 0).all()


def test_a_host_that_disappears_gets_a_note():
    hist = generate_history(seed=2, hosts=3, days=21)
    gone, when = next(iter(hist.ended.items()))
    end = hist.points["time"].max()
    fc = forecast(hist.series("cpu_percent", gone), 24, now=end)
    assert any("may be gone" in n for n in fc.notes)
    assert fc.mean.index[0] < when + pd.Timedelta(hours=1)


def test_not_a_time_index_and_many_at_once():
    fc = forecast(list(np.sin(np.arange(100) / 4) + 5), 10)
    assert list(fc.mean.index) == list(range(100, 110)) and any("not time" in n for n in fc.notes)
    series = [generate_series("cpu_percent", seed=k, days=15) for k in range(3)]
    out = list(forecast_many(series, 12, workers=1))
    assert [len(r.mean) for r in out] == [12, 12, 12]
    assert out[1].mean.equals(forecast(series[1], 12).mean)


def test_seasonal_naive_and_backtest_on_a_perfect_cycle():
    y = np.tile(np.arange(24.0), 30)
    assert seasonal_naive(y, 30, 24)[:3].tolist() == [0.0, 1.0, 2.0]
    res = backtest(hourly(y), 24, origins=2)
    # seasonal-naive is exact in-sample, so MASE's scale is 0: undefined (NaN), and said; the forecast is exact
    assert np.isnan(res.mase) and np.isnan(res.mase_snaive) and np.isnan(res.relative_mae)
    assert any("MASE undefined" in n for n in res.notes) and any("no relative error" in n for n in res.notes)
    assert res.per_origin["scale"].tolist() == [0.0, 0.0]
    assert res.per_origin["mae"].max() == pytest.approx(0.0, abs=1e-6) and res.coverage == 1.0


def test_prepare_sorts_and_deduplicates():
    s = hourly([1.0, 2.0, 3.0, 4.0])
    shuffled = pd.concat([s.iloc[[2, 0, 3, 1]], s.iloc[[1]] + 10])
    p = prepare(shuffled)
    assert p.y.tolist() == [1.0, 12.0, 3.0, 4.0]
    assert any("duplicate" in n for n in p.notes)


@st.composite
def awkward_series(draw):
    n = draw(st.integers(0, 400))
    kind = draw(st.sampled_from(["noise", "constant", "counter", "seasonal", "spiky"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    t = np.arange(n)
    if kind == "constant":
        v = np.full(n, draw(st.floats(-1e6, 1e6, allow_nan=False)))
    elif kind == "counter":
        v = np.cumsum(rng.integers(0, 100, n)).astype(float)
        if n > 10:
            v[n // 2:] -= v[n // 2] - rng.integers(0, 5)
    elif kind == "seasonal":
        v = 10 + 5 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1, n)
    elif kind == "spiky":
        v = rng.standard_cauchy(n) * draw(st.sampled_from([1e-9, 1.0, 1e12]))
    else:
        v = rng.normal(0, draw(st.sampled_from([1e-6, 1.0, 1e9])), n)
    s = pd.Series(v, index=pd.date_range("2025-01-01", periods=n, freq="h", tz="UTC"),
                  name="x_total" if kind == "counter" else "x")
    if n:
        keep = rng.random(n) > draw(st.sampled_from([0.0, 0.1, 0.5, 0.9]))
        s = s[keep]
        if len(s) and draw(st.booleans()):
            s.iloc[rng.integers(0, len(s), max(1, len(s) // 10))] = np.nan
    return s


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=awkward_series(), horizon=st.integers(0, 200), level=st.sampled_from([0.5, 0.9, 0.99]))
def test_never_raises_and_lengths_are_right(s, horizon, level):
    fc = forecast(s, horizon, level=level)
    assert len(fc.mean) == len(fc.lower) == len(fc.upper) == horizon
    assert isinstance(fc.notes, list) and isinstance(fc.method, str)
    m, lo, hi = fc.mean.to_numpy(), fc.lower.to_numpy(), fc.upper.to_numpy()
    ok = np.isfinite(m) & np.isfinite(lo) & np.isfinite(hi)
    tol = 1e-9 * np.maximum(1.0, np.abs(m[ok]))
    assert (lo[ok] <= m[ok] + tol).all() and (m[ok] <= hi[ok] + tol).all()
    if s.notna().sum() >= 1 and fc.method not in ("none",):
        assert ok.all()
