"""Forecasts with daily and weekly seasonality and prediction intervals: one pure function over a Series.

    from pressfleet.metrics.forecast import forecast, days_until
    fc = forecast(series, horizon=24 * 30)          # hourly series -> 30 days ahead
    fc.mean, fc.lower, fc.upper                      # Series on the future UTC timestamps
    fc.method, fc.notes                              # what was done, and anything a reader should know
    days_until(fc, threshold=disk_size)              # when the forecast (and its bounds) cross a capacity

The method ("MSTL + selected trend"): the series is put on a regular grid (gaps filled from the same hours
a day earlier or later, fitted to the values on each side; log scale when its daily cycle scales with its
level), decomposed by multiple-seasonal STL (statsmodels' STL run as MSTL: daily cycle over a 31-day
window, weekly cycle as the average of the weeks, loess jumps for speed), and the deseasonalized series is
forecast by whichever of three small models would have forecast its own last days best: a line with AR(1)
deviations that decay back to it (a metric wandering around a trend: CPU, traffic), or exponential
smoothing of the level with a drift fitted over two weeks or over the last three days (a level that
wanders, or that started climbing: a disk filling). The seasonal components repeat their last cycle (the
weekly one smoothed over three hours). Intervals add the trend model's h-step error variance (inflated when
it under-predicted its own held-back days), the slope's uncertainty, and the seasonal pattern's estimation
error. Whole-number series (workers, threads) get whole-number forecasts. About 15-30 ms a series of 30
days hourly on one core; backtests in the tests and benchmarks/bench_forecast.py.

Never raises on data: short series (fewer than two cycles of a season drop that season, fewer than a few
points give a naive forecast), gaps, NaNs, flat series, counters (converted to per-second rates, resets
handled) and series that stop early (pass `now`) all give a forecast with notes saying what was done.
"""

from __future__ import annotations

import itertools
import math
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.signal import lfilter
from scipy.stats import norm

DAY = pd.Timedelta(days=1)


@dataclass
class Prepared:
    """A series on a regular UTC grid, ready to model."""

    y: pd.Series                      # regular, no NaN (gaps filled)
    filled: np.ndarray                # True where a value was filled in, not observed
    step: pd.Timedelta | None
    kind: str                         # 'gauge' or 'counter' (then y is a per-second rate)
    notes: list[str] = field(default_factory=list)
    positional: bool = False          # the input had no time index: positions stand for steps


@dataclass
class ForecastResult:
    mean: pd.Series
    lower: pd.Series
    upper: pd.Series
    method: str
    notes: list[str] = field(default_factory=list)
    level: float = 0.9
    step: pd.Timedelta | None = None
    kind: str = "gauge"
    last_observed: pd.Timestamp | None = None
    history: pd.Series | None = None  # what was modelled (rates for counters), on its regular grid

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"mean": self.mean, "lower": self.lower, "upper": self.upper})


@dataclass(frozen=True)
class Crossing:
    """When a forecast crosses a threshold: by its mean, and the earliest and latest its interval allows."""

    threshold: float
    direction: str
    when: pd.Timestamp | None          # the mean crosses (None: not within the horizon)
    earliest: pd.Timestamp | None      # the pessimistic bound crosses
    latest: pd.Timestamp | None        # the optimistic bound crosses (None: not within the horizon)
    days: float | None
    days_earliest: float | None
    days_latest: float | None
    horizon_end: pd.Timestamp | None
    already: bool = False              # the last observation is already past the threshold

    def describe(self) -> str:
        if self.already:
            return "already past the threshold"
        if self.earliest is None:
            return "not within the forecast horizon"
        parts = [f"{self.days:.1f} days" if self.days is not None else "beyond the horizon by the forecast"]
        lo = f"{self.days_earliest:.1f}"
        hi = f"{self.days_latest:.1f}" if self.days_latest is not None else "beyond the horizon"
        return f"{parts[0]} (interval {lo} to {hi})"


# --------------------------------------------------------------------------------------- preparing


def default_periods(step: pd.Timedelta | None) -> tuple[int, ...]:
    """Daily and weekly cycles in steps of `step` (those of at least 2 steps)."""
    if step is None or step <= pd.Timedelta(0):
        return ()
    out = []
    for span in (DAY, 7 * DAY):
        p = span / step
        if abs(p - round(p)) < 1e-9 and round(p) >= 2:
            out.append(int(round(p)))
    return tuple(out)


def is_counter(series: pd.Series) -> bool:
    kind = getattr(series, "attrs", {}).get("kind")
    if kind:
        return kind == "counter"
    from pressfleet.analysis.metric_names import kind_of  # the one list of metric names (nginx_requests, ...)

    return kind_of(str(series.name or "")) == "counter"


def prepare(series: Any, *, freq: Any = None, kind: str = "auto", now: Any = None) -> Prepared:
    """Clean a series onto a regular UTC grid: sorted, de-duplicated, NaNs dropped, counters turned into
    per-second rates (resets handled), several points in one step averaged, missing steps interpolated."""
    notes: list[str] = []
    s = series if isinstance(series, pd.Series) else pd.Series(series)
    name = s.name
    positional = False
    if not isinstance(s.index, pd.DatetimeIndex):
        try:
            if len(s) and pd.api.types.is_numeric_dtype(s.index.dtype):
                raise TypeError("numeric index")
            idx = pd.DatetimeIndex(pd.to_datetime(s.index, utc=True))
            s = pd.Series(s.to_numpy(), index=idx, name=name)
        except (TypeError, ValueError):
            positional = True
            s = pd.Series(s.to_numpy(), index=pd.date_range("2000-01-01", periods=len(s), freq="h", tz="UTC"),
                          name=name)
            freq = "1h"
            notes.append("the index is not time: positions are treated as equal steps")
    idx = s.index.tz_localize("UTC") if s.index.tz is None else s.index.tz_convert("UTC")
    vals = pd.to_numeric(pd.Series(np.asarray(s.to_numpy(), dtype=object)), errors="coerce").to_numpy(dtype="float64")
    s = pd.Series(vals, index=idx, name=name)
    bad = ~np.isfinite(s.to_numpy())
    if bad.any():
        notes.append(f"{int(bad.sum())} missing or non-finite value(s) dropped")
        s = s[~bad]
    if not s.index.is_monotonic_increasing:
        s = s.sort_index(kind="stable")
    if s.index.has_duplicates:
        notes.append(f"{int(s.index.duplicated().sum())} duplicate timestamp(s): the last value kept")
        s = s[~s.index.duplicated(keep="last")]
    if kind == "auto":
        kind = "counter" if is_counter(series if isinstance(series, pd.Series) else s) else "gauge"
    empty = Prepared(pd.Series([], dtype="float64", index=pd.DatetimeIndex([], tz="UTC"), name=name),
                     np.zeros(0, dtype=bool), None, kind, notes, positional)
    if len(s) == 0:
        notes.append("no data")
        return empty

    explicit = freq is not None
    if explicit:
        step = pd.Timedelta(freq)
    elif len(s) >= 2:
        d = np.diff(s.index.asi8)
        d = d[d > 0]
        step = _nice_step(pd.Timedelta(int(np.median(d)), unit=s.index.unit)) if len(d) else None
    else:
        step = None
    if step is None:
        if kind == "counter":
            notes.append("a counter needs two points for a rate")
            return empty
        return Prepared(s, np.zeros(len(s), dtype=bool), None, kind, notes, positional)

    if kind == "counter":
        v = s.to_numpy()
        t = np.asarray((s.index - s.index[0]) / pd.Timedelta(seconds=1), dtype="float64")
        dv = np.diff(v)
        resets = dv < 0
        inc = np.where(resets, v[1:], dv)  # after a reset the counter restarted from zero
        dt = np.diff(t)
        if resets.any():
            notes.append(f"counter: {int(resets.sum())} reset(s) handled (the count restarts from zero)")
        notes.append("counter: modelled as its rate per second")
        s = pd.Series(inc, index=s.index[1:], name=name)
        secs = pd.Series(dt, index=s.index)
        keys = s.index.floor(step) if explicit else s.index.round(step)
        binned_inc = s.groupby(keys).sum()
        binned_dt = secs.groupby(keys).sum()
        s = binned_inc / binned_dt
        if len(s) == 0:
            return empty
    else:
        # buckets: [t, t + step) for an asked-for step; the nearest step for an inferred one (collection
        # times jitter around the minute they were due)
        keys = s.index.floor(step) if explicit else s.index.round(step)
        if keys.has_duplicates or not (keys == s.index).all():
            if keys.has_duplicates:
                notes.append(f"several points per {step}: averaged")
            s = s.groupby(keys).mean()
    limit = max(200_000, 20 * len(s))
    while len(s) > 1 and (s.index[-1] - s.index[0]) / step > limit:  # a stray old point: keep what follows
        gaps = np.diff(s.index.asi8)
        cut = int(np.argmax(gaps)) + 1
        notes.append(f"a gap of {_human(s.index[cut] - s.index[cut - 1])}: only the {len(s) - cut} point(s) "
                     "after it are used")
        s = s.iloc[cut:]
    grid = pd.date_range(s.index[0], s.index[-1], freq=step, tz="UTC")
    filled = ~grid.isin(s.index)
    y = s.reindex(grid)
    if filled.any():
        gaps = int(filled.sum())
        longest = _longest_run(filled)
        notes.append(f"{gaps} of {len(grid)} steps missing ({gaps / len(grid):.0%}; longest gap {longest} "
                     f"step(s)): filled in")
        y = y.interpolate(method="linear", limit_direction="both")
    if now is not None:
        now_ts = pd.Timestamp(now)
        now_ts = now_ts.tz_localize("UTC") if now_ts.tzinfo is None else now_ts.tz_convert("UTC")
        behind = now_ts - grid[-1]
        if behind > 2 * step:
            notes.append(f"the series stops at {grid[-1]:%Y-%m-%d %H:%M} UTC, {_human(behind)} before now: "
                         "the host or site may be gone; the forecast starts from its last point")
    return Prepared(y.rename(name), np.asarray(filled), step, kind, notes, positional)


_NICE_STEPS = [pd.Timedelta(x) for x in ("1s", "2s", "5s", "10s", "15s", "20s", "30s", "1min", "2min", "5min",
                                          "10min", "15min", "20min", "30min", "1h", "2h", "3h", "4h", "6h", "8h",
                                          "12h", "1D", "7D")]


def _nice_step(step: pd.Timedelta) -> pd.Timedelta:
    """The round step (1 min, 5 min, 1 h, ...) within 10 % of a measured spacing, else the spacing in seconds."""
    for nice in _NICE_STEPS:
        if abs(step - nice) <= 0.1 * nice:
            return nice
    return max(step.round("1s"), pd.Timedelta(seconds=1))


def _longest_run(mask: np.ndarray) -> int:
    best = cur = 0
    for m in mask:
        cur = cur + 1 if m else 0
        best = max(best, cur)
    return best


def _human(td: pd.Timedelta) -> str:
    hours = td / pd.Timedelta(hours=1)
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.0f} hours"


# --------------------------------------------------------------------------------------- decomposing


def mstl(y: np.ndarray, periods: tuple[int, ...], *, robust: bool = False, iterate: int | None = None,
         windows: tuple[int, ...] | None = None, outer_iter: int | None = None
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Multiple-seasonal STL (the algorithm of statsmodels' MSTL) tuned for a month of history.

    The shortest cycle gets a seasonal window of 31 cycles, longer ones a periodic window (the weekly
    pattern of four weeks is an average, not four separate estimates); the seasonal loess is local-constant,
    and the smoothers evaluate every tenth point of their window (STL's "jumps") for speed.
    robust=True down-weights outliers (`outer_iter` passes, statsmodels' default 15).
    Returns (seasonal[k, n], trend[n], remainder[n]).
    """
    from statsmodels.tsa.seasonal import STL

    y = np.asarray(y, dtype="float64")
    periods = tuple(sorted(periods))
    windows = windows or tuple(31 if i == 0 else 1001 for i in range(len(periods)))
    seasonal = np.zeros((len(periods), len(y)))
    deseas = y.copy()
    trend = np.zeros_like(y)
    iterate = 1 if iterate is None else iterate  # a second pass changed no backtest figure
    for _ in range(iterate if len(periods) > 1 else 1):
        for i, p in enumerate(periods):
            deseas = deseas + seasonal[i]
            window = windows[i]
            trend_len = _odd(math.ceil(1.5 * p / (1 - 1.5 / window)))
            low_len = _odd(p + 1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = STL(deseas, period=p, seasonal=window, trend=trend_len, low_pass=low_len, seasonal_deg=0,
                          robust=robust, seasonal_jump=max(1, window // 10) if window < 1001 else 1,
                          trend_jump=max(1, trend_len // 10),
                          low_pass_jump=max(1, low_len // 10)).fit(outer_iter=outer_iter)
            seasonal[i] = res.seasonal
            deseas = deseas - seasonal[i]
            trend = res.trend
    return seasonal, trend, deseas - trend


def seasonal_fill(z: np.ndarray, filled: np.ndarray, period: int) -> np.ndarray:
    """Fill each run of missing steps with the same steps one cycle earlier (or later), shifted to meet the
    observed values on both sides; runs with no observed cycle next to them keep their straight line."""
    z = np.array(z, dtype="float64", copy=True)
    n = len(z)
    idx = np.flatnonzero(filled)
    if not len(idx) or period < 2:
        return z
    for run in np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1):
        a, b = int(run[0]), int(run[-1])
        for shift in (-period, period):
            src = run + shift
            if src[0] < 0 or src[-1] >= n or filled[src].any():
                continue
            def offset(i: int) -> float | None:
                j = i + shift
                if 0 <= i < n and 0 <= j < n and not filled[i] and not filled[j]:
                    return float(z[i] - z[j])
                return None
            left, right = offset(a - 1), offset(b + 1)
            left = right if left is None else left
            right = left if right is None else right
            if left is None:
                continue
            w = np.arange(1, len(run) + 1) / (len(run) + 1)
            z[run] = z[src] + (1 - w) * left + w * right
            break
    return z


def _odd(x: int) -> int:
    x = int(x)
    return x if x % 2 else x + 1


def _smooth_cycle(x: np.ndarray, k: int) -> np.ndarray:
    """Circular moving average of one seasonal cycle (k odd)."""
    if k <= 1 or len(x) < 2 * k:
        return x
    xx = np.concatenate([x[-k:], x, x[:k]])
    return np.convolve(xx, np.ones(k) / k, mode="same")[k:-k]


# --------------------------------------------------------------------------------------- forecasting


_ALPHAS = np.array([0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])


@dataclass
class _Trend:
    """A fitted model of the deseasonalized series: mean(h) and var(h) for h = 1.. steps ahead."""

    kind: str
    a: float          # the level at the last point and the slope per step
    b: float
    var_a: float
    var_b: float
    cov_ab: float
    phi: float = 0.0  # 'line': persistence of the deviations from the line
    last_dev: float = 0.0
    sigma: float = 0.0  # one-step error
    alpha: float = 0.0  # 'smooth': smoothing weight of the level
    calib: float = 1.0  # variance inflation measured on the held-back stretches

    def mean(self, h: np.ndarray) -> np.ndarray:
        if self.kind == "line":
            return self.a + self.b * h + self.phi**h * self.last_dev
        return self.a + self.b * h

    def var(self, h: np.ndarray) -> np.ndarray:
        if self.kind == "line":
            p2 = self.phi**2
            dev = self.sigma**2 * ((1 - p2**h) / (1 - p2) if p2 < 1 else h)
            ka = 1 - self.phi**h  # the deviation carries the last value; the line takes over as it decays
            return dev + ka**2 * self.var_a + 2 * ka * h * self.cov_ab + h**2 * self.var_b
        return self.sigma**2 * (1 + (h - 1) * self.alpha**2) + h**2 * self.var_b


def _weighted_line(d: np.ndarray, memory: float | None, slope: bool
                   ) -> tuple[float, float, float, float, float, np.ndarray]:
    """Weighted least-squares line (weights fall by e every `memory` steps back from the end).

    Returns (value at the end, slope, var of that value, var of the slope, their covariance, residuals); the
    variances are inflated for the residuals' autocorrelation.
    """
    n = len(d)
    t = np.arange(n, dtype="float64") - (n - 1)  # 0 at the last point
    w = np.ones(n) if memory is None else np.exp(t / max(1.0, memory))
    sw = w.sum()
    tm = float((w * t).sum() / sw)
    dm = float((w * d).sum() / sw)
    sxx = float((w * (t - tm) ** 2).sum())
    b = float((w * (t - tm) * (d - dm)).sum() / sxx) if slope and sxx > 0 else 0.0
    a = dm - b * tm
    r = d - (a + b * t)
    r1 = min(max(_acf1(r), 0.0), 0.99)
    infl = (1 + r1) / (1 - r1)
    s2 = float((w * r**2).sum() / sw) * n / max(1, n - 2)
    n_eff = sw**2 / float((w**2).sum())
    var_b = s2 / sxx * (sw / n_eff) * infl if slope and sxx > 0 else 0.0
    var_a = s2 / n_eff * infl + var_b * tm**2
    return a, b, var_a, var_b, -var_b * tm, r


def _fit_line(d: np.ndarray, memory: float | None, slope: bool) -> _Trend:
    """A line, and AR(1) deviations from it that decay back to it (a series that wanders around a trend)."""
    a, b, var_a, var_b, cov_ab, r = _weighted_line(d, memory, slope)
    phi = min(max(_acf1(r), 0.0), 0.995)
    innov = r[1:] - phi * r[:-1]
    sigma = float(np.sqrt(np.mean(innov**2))) if len(innov) else 0.0
    return _Trend("line", a, b, var_a, var_b, cov_ab, phi=phi, last_dev=float(r[-1]), sigma=sigma)


def _fit_smooth(d: np.ndarray, memory: float | None, slope: bool) -> _Trend:
    """Exponential smoothing of the level with a drift (a series whose level itself wanders, like a disk)."""
    n = len(d)
    _, b, _, var_b, _, _ = _weighted_line(d, memory, slope)
    x = d - b * np.arange(n)
    burn = min(n - 1, max(1, n // 10))
    best = None
    for al in _ALPHAS:
        lv = lfilter([al], [1.0, -(1.0 - al)], x, zi=[(1.0 - al) * x[0]])[0]
        sse = float(np.mean((x[burn:] - lv[burn - 1:-1]) ** 2))
        if best is None or sse < best[0] * (1 - 1e-9):
            best = (sse, float(al), float(lv[-1]))
    sse, al, level = best
    return _Trend("smooth", level + b * (n - 1), b, 0.0, var_b, 0.0, sigma=math.sqrt(sse), alpha=al)


_CANDIDATES = (("line", None), ("smooth", None), ("smooth", 3.0))  # (model, drift memory in days; None: default)


# A smoothing model replaces the line only when it did 30 % better on the held-back days (the line is the
# steadier choice when they are about even).
_MARGIN = 1.3
# At most this much variance inflation from the held-back days.
_CALIB_MAX = 4.0
# The STL remainder understates how far one cycle's pattern is from the next: its variance per cycle is
# scaled by 3 (calibrated on generator and electricity-demand backtests: 90 % intervals then hold ~85-94 %).
_SEAS = 3.0


def _fit_trend(d: np.ndarray, memory: float | None, slope: bool, day: int, horizon: int) -> tuple[_Trend, str]:
    """Choose among a line with mean-reverting deviations, and a smoothed level with a drift over the long or
    the last three days' memory, by their errors on the last stretches of the history (each model refitted
    without them): the one that would have forecast them best is fitted on the whole history."""
    n = len(d)
    k = max(1, min(horizon, 3 * day, n // 4))
    cands = []
    for kind, days in _CANDIDATES:
        mem = memory if days is None else days * day
        cands.append((kind, mem, days))
    if not slope or n < 4 * day or n < 16:
        kind, mem, _ = cands[0]
        return _fit_line(d, mem, slope), ""
    scores, ratios = [], []
    h = np.arange(1, k + 1, dtype="float64")
    for kind, mem, _ in cands:
        err = pred = 0.0
        for o in (n - k, n - 2 * k):
            fit = (_fit_line if kind == "line" else _fit_smooth)(d[:o], mem, slope)
            err += float(np.sum((d[o:o + k] - fit.mean(h)) ** 2))
            pred += float(np.sum(fit.var(h)))
        scores.append(err)
        ratios.append(err / pred if pred > 0 else 1.0)
    scores = [sc * (1.0 if j == 0 else _MARGIN) for j, sc in enumerate(scores)]
    i = int(np.argmin(scores))
    kind, mem, days = cands[i]
    fit = (_fit_line if kind == "line" else _fit_smooth)(d, mem, slope)
    fit.calib = min(max(ratios[i], 1.0), _CALIB_MAX)
    label = {"line": "linear trend + AR(1)", "smooth": "exponential smoothing + drift"}[kind]
    if days is not None:
        label += f" (drift over the last {days:g} days)"
    return fit, label


def _acf1(x: np.ndarray) -> float:
    x = x - x.mean()
    den = float((x * x).sum())
    return float((x[1:] * x[:-1]).sum() / den) if den > 0 else 0.0


def _multiplicative(y: np.ndarray, periods: tuple[int, ...]) -> bool:
    """Use a log scale: positive values, never near zero (over 5 % of the median), whose daily cycle is at
    least 20 % of their level (traffic, response times)."""
    if not periods or np.min(y) <= 0.05 * np.median(y):
        return False
    p = periods[0]
    k = len(y) // p
    prof = y[len(y) - k * p:].reshape(k, p).mean(axis=0)
    return bool((prof.max() - prof.min()) / max(prof.mean(), 1e-12) > 0.2)


def forecast(series: Any, horizon: int, *, seasonal_periods: tuple[int, ...] | None = None, level: float = 0.9,
             freq: Any = None, kind: str = "auto", now: Any = None, nonnegative: bool | str = "auto",
             bounds: tuple[float | None, float | None] | None = None, transform: str | None = "auto",
             trend_memory: Any = "14D") -> ForecastResult:
    """Forecast `horizon` steps after the last point of `series` (a Series on a DatetimeIndex).

    seasonal_periods: cycles in steps (default: daily and weekly for the series' step, e.g. (24, 168) hourly);
    a cycle is modelled only with at least two of them in the history. level: the prediction interval's
    coverage. freq: the step to forecast at (default: the series' median spacing; several points in a step
    are averaged). kind: 'gauge', 'counter' (forecast the per-second rate) or 'auto' (a name ending in
    _total or _count is a counter). now: when the series should have ended; a series that stops earlier gets
    a note. nonnegative: clip at zero ('auto': when the history has no negative value). bounds: (low, high)
    clip, e.g. (0, 100) for percentages. transform: 'log', None, or 'auto' (log for positive series, never
    near zero, whose daily cycle is at least 20 % of their level). trend_memory: the trend line weighs points by
    exp(-age / trend_memory) (None: all alike).
    """
    try:
        horizon = max(0, int(horizon))
    except (TypeError, ValueError):
        horizon = 0
    try:
        level = float(level) if 0 < float(level) < 1 else 0.9
    except (TypeError, ValueError):
        level = 0.9
    try:
        prep = prepare(series, freq=freq, kind=kind, now=now)
    except Exception as exc:  # noqa: BLE001 - a forecast never crashes on data
        prep = Prepared(pd.Series([], dtype="float64", index=pd.DatetimeIndex([], tz="UTC")),
                        np.zeros(0, dtype=bool), None, "gauge", [f"could not read the series: {exc}"])
    try:
        return _forecast(prep, horizon, seasonal_periods, level, nonnegative, bounds, transform, trend_memory)
    except Exception as exc:  # noqa: BLE001
        notes = prep.notes + [f"the model failed ({type(exc).__name__}: {exc}): naive forecast instead"]
        return _naive(prep, horizon, level, notes)


def _future_index(prep: Prepared, horizon: int) -> pd.Index:
    if prep.positional:
        n = len(prep.y)
        return pd.RangeIndex(n, n + horizon)
    if len(prep.y) == 0:
        return pd.RangeIndex(0, horizon)
    step = prep.step or pd.Timedelta(hours=1)
    return pd.date_range(prep.y.index[-1] + step, periods=horizon, freq=step, tz="UTC")


def _result(prep: Prepared, horizon: int, mean, lower, upper, method: str, notes: list[str], level: float,
            nonnegative, bounds) -> ForecastResult:
    idx = _future_index(prep, horizon)
    mean, lower, upper = (np.asarray(a, dtype="float64").copy() for a in (mean, lower, upper))
    y = prep.y.to_numpy()
    lo_clip, hi_clip = (bounds or (None, None))
    if nonnegative is True or (nonnegative == "auto" and len(y) and np.nanmin(y) >= 0):
        lo_clip = 0.0 if lo_clip is None else max(lo_clip, 0.0)
    if lo_clip is not None or hi_clip is not None:
        for a in (mean, lower, upper):
            np.clip(a, lo_clip, hi_clip, out=a)
    if prep.kind == "gauge" and len(y) >= 4 and np.all(np.mod(y, 1) == 0) and np.isfinite(mean).all():
        # a count of things (workers, threads): whole-number forecasts (the median of a count is one; on
        # MariaDB threads and PHP workers this cut the error against seasonal-naive by a quarter)
        mean, lower, upper = np.round(mean), np.floor(lower), np.ceil(upper)
        notes = notes + ["whole-number series: forecast rounded to whole numbers"]
    name = prep.y.name
    last = None if prep.positional or len(prep.y) == 0 else prep.y.index[-1]
    return ForecastResult(pd.Series(mean, index=idx, name=name), pd.Series(lower, index=idx, name=name),
                          pd.Series(upper, index=idx, name=name), method, notes, level, prep.step, prep.kind,
                          last, prep.y)


def _naive(prep: Prepared, horizon: int, level: float, notes: list[str], nonnegative="auto", bounds=None
           ) -> ForecastResult:
    y = prep.y.to_numpy() if len(prep.y) else np.array([])
    if len(y) == 0:
        nan = np.full(horizon, np.nan)
        return _result(prep, horizon, nan, nan, nan, "none", notes + ["no forecast without data"], level,
                       nonnegative, bounds)
    z = norm.ppf(0.5 + level / 2)
    sigma = float(np.std(np.diff(y))) if len(y) >= 3 else (abs(float(y[-1] - y[0])) if len(y) == 2 else 0.0)
    h = np.arange(1, horizon + 1)
    mean = np.full(horizon, y[-1])
    half = z * sigma * np.sqrt(h)
    return _result(prep, horizon, mean, mean - half, mean + half, "naive (last value)", notes, level,
                   nonnegative, bounds)


MIN_POINTS_FOR_TREND = 8


def _forecast(prep: Prepared, horizon: int, seasonal_periods, level: float, nonnegative, bounds, transform,
              trend_memory) -> ForecastResult:
    notes = list(prep.notes)
    y = prep.y.to_numpy(dtype="float64")
    n = len(y)
    if n == 0:
        return _naive(prep, horizon, level, notes, nonnegative, bounds)
    if n < 4:
        notes.append(f"only {n} point(s): naive forecast")
        return _naive(prep, horizon, level, notes, nonnegative, bounds)
    if np.ptp(y) == 0:
        notes.append("the series is constant: forecast flat")
        c = np.full(horizon, y[0])
        return _result(prep, horizon, c, c, c, "constant", notes, level, nonnegative, bounds)

    periods = tuple(sorted(set(int(p) for p in (seasonal_periods if seasonal_periods is not None
                                                 else default_periods(prep.step)) if int(p) >= 2)))
    used = tuple(p for p in periods if n >= 2 * p)
    for p in periods:
        if p not in used:
            notes.append(f"a cycle of {p} steps is not modelled: the history has {n} steps and needs {2 * p}")
    memory = None
    if trend_memory is not None:
        try:
            memory = (pd.Timedelta(trend_memory) / prep.step if prep.step is not None and not prep.positional
                      else float(trend_memory))
        except (TypeError, ValueError):
            memory = None

    log = transform == "log" or (transform == "auto" and _multiplicative(y, used))
    if log and np.min(y) <= 0:
        notes.append("log scale asked for, but the series has values <= 0: modelled as is")
        log = False
    z = np.log(y) if log else y.copy()

    seasonal = np.zeros((0, n))
    if used:
        if prep.filled.any():  # gaps: the same hours of the day before (or after), not a straight line
            z = seasonal_fill(z, prep.filled, used[0])
        seasonal, trend, rem = mstl(z, used)
    d = z - seasonal.sum(axis=0) if used else z
    slope = n >= MIN_POINTS_FOR_TREND
    if not slope:
        notes.append(f"only {n} points: no trend fitted")
    day = 24
    if prep.step is not None and not prep.positional and prep.step > pd.Timedelta(0):
        day = max(4, int(round(DAY / prep.step)))
    tr, label = _fit_trend(d, memory, slope, day, max(horizon, 1))

    h = np.arange(1, horizon + 1, dtype="float64")
    mean = tr.mean(h)
    var_trend = tr.var(h) * tr.calib
    seas_var = 0.0
    rem_var = float(np.var(rem)) if used else 0.0
    step_hours = (prep.step / pd.Timedelta(hours=1)) if prep.step is not None and not prep.positional else 1.0
    for i, p in enumerate(used):
        cycle = seasonal[i, n - p:]
        if i > 0:  # smooth longer cycles over about three hours: four weeks make a noisy weekly pattern
            k = _odd(max(1, round(3 / step_hours)))
            cycle = _smooth_cycle(cycle, k) if k >= 3 else cycle
            seas_var += _SEAS * rem_var / max(1, n // p) / max(1, k)
        else:
            seas_var += _SEAS * rem_var / max(1, n // p)
        mean = mean + cycle[(h.astype(int) - 1) % p]
    var = var_trend + seas_var
    half = norm.ppf(0.5 + level / 2) * np.sqrt(np.maximum(var, 0.0))
    lower, upper = mean - half, mean + half
    if log:
        mean, lower, upper = np.exp(mean), np.exp(lower), np.exp(upper)
        notes.append("modelled on a log scale (the daily cycle scales with the level)")
    parts = []
    if used:
        parts.append("MSTL(" + ",".join(map(str, used)) + ")")
    parts.append(label or ("linear trend + AR(1)" if slope else "level + AR(1)"))
    method = ("log " if log else "") + " + ".join(parts)
    return _result(prep, horizon, mean, lower, upper, method, notes, level, nonnegative, bounds)


# --------------------------------------------------------------------------------------- many at once


def _forecast_one(args: tuple) -> ForecastResult:
    series, horizon, kwargs = args
    return forecast(series, horizon, **kwargs)


def forecast_many(series: Iterable[Any], horizon: int, *, workers: int | None = None, chunksize: int = 8,
                  **kwargs: Any) -> Iterator[ForecastResult]:
    """Forecast many series, in order, on `workers` processes (default: one per CPU; 1: in this process).

    Series are sent in batches, so memory stays bounded however many there are; results come back as they
    are ready, in the order of the input.
    """
    workers = workers or os.cpu_count() or 1
    if workers <= 1:
        for s in series:
            yield forecast(s, horizon, **kwargs)
        return
    from concurrent.futures import ProcessPoolExecutor

    batch = max(1, workers * chunksize * 4)
    it = iter(series)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        while True:
            chunk = [(s, horizon, kwargs) for s in itertools.islice(it, batch)]
            if not chunk:
                break
            yield from pool.map(_forecast_one, chunk, chunksize=chunksize)


# --------------------------------------------------------------------------------------- thresholds


def days_until(fc: ForecastResult, threshold: float, *, direction: str = "up", now: Any = None) -> Crossing:
    """When the forecast reaches `threshold` (direction 'up': rises to it, e.g. disk used vs disk size;
    'down': falls to it, e.g. TLS days left vs 14). `earliest` is when the pessimistic bound gets there
    (upper bound going up), `latest` when the optimistic one does; days are counted from `now` (default: the
    last observation)."""
    if direction not in ("up", "down"):
        raise ValueError("direction must be 'up' or 'down'")
    mean, lower, upper = fc.mean, fc.lower, fc.upper
    pess, opt = (upper, lower) if direction == "up" else (lower, upper)
    idx = mean.index
    if isinstance(idx, pd.DatetimeIndex):
        ref = pd.Timestamp(now) if now is not None else fc.last_observed
        if ref is None and len(idx):
            ref = idx[0] - (fc.step or pd.Timedelta(hours=1))
        if ref is not None and ref.tzinfo is None:
            ref = ref.tz_localize("UTC")
    else:
        ref = None

    def first(s: pd.Series):
        v = s.to_numpy(dtype="float64")
        hit = v >= threshold if direction == "up" else v <= threshold
        if not hit.any():
            return None, None
        t = idx[int(np.argmax(hit))]
        if ref is None:
            return t, float(t)
        return t, (t - ref) / DAY

    hist = fc.history
    already = False
    if hist is not None and len(hist):
        last = float(hist.iloc[-1])
        already = last >= threshold if direction == "up" else last <= threshold
    w, dw = first(mean)
    e, de = first(pess)
    lt, dl = first(opt)
    if already:
        w = e = lt = ref
        dw = de = dl = 0.0
    return Crossing(float(threshold), direction, w, e, lt, dw, de, dl, idx[-1] if len(idx) else None, already)
