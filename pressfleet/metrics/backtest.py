"""Rolling-origin backtests: how well a forecaster does on a series' own past, against seasonal-naive.

    res = backtest(series, horizon=24, origins=5)
    res.mase            # mean absolute error / in-sample MAE of seasonal-naive (Hyndman's MASE)
    res.mase_snaive     # the same for the seasonal-naive forecast itself (about 1 when h <= the season)
    res.relative_mae    # MAE of the method / MAE of seasonal-naive over the same held-out points (< 1: better)
    res.relative_mase   # MAE(method) / MAE(seasonal-naive) at each origin, averaged over the origins
    res.coverage        # share of held-out points inside the prediction interval
    res.per_origin      # one row per origin

The series is cleaned once as the forecaster would (regular grid, counters as rates); held-out steps that
were filled in rather than observed are not scored. Seasonal-naive repeats the last full cycle of the
longest season that fits twice into the shortest training window (168 for 30 days hourly).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pressfleet.metrics.forecast import ForecastResult, default_periods, forecast, prepare


@dataclass
class BacktestResult:
    mase: float
    mase_snaive: float
    relative_mae: float
    coverage: float
    season: int
    horizon: int
    per_origin: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    relative_mase: float = float("nan")  # mean over origins of MAE(method) / MAE(seasonal-naive)

    def as_dict(self) -> dict[str, Any]:
        return {"mase": self.mase, "mase_snaive": self.mase_snaive, "relative_mae": self.relative_mae,
                "relative_mase": self.relative_mase, "coverage": self.coverage, "season": self.season,
                "horizon": self.horizon, "origins": len(self.per_origin)}


def seasonal_naive(train: np.ndarray, horizon: int, m: int) -> np.ndarray:
    """Repeat the last `m` values (the last value when m < 1 or the history is shorter)."""
    if m < 1 or len(train) < m:
        return np.full(horizon, train[-1])
    last = train[len(train) - m:]
    return last[np.arange(horizon) % m]


def backtest(series: pd.Series, horizon: int, origins: int | Sequence[Any] = 5, *, step: int | None = None,
             min_train: int | None = None, train_window: int | None = None, season: int | None = None,
             level: float = 0.9,
             forecaster: Callable[..., ForecastResult] = forecast, **forecast_kwargs: Any) -> BacktestResult:
    """Forecast `horizon` steps from several origins and score against what happened.

    origins: a count (the last origins, `step` apart, default `horizon`) or explicit origins (timestamps, or
    positions in the cleaned series): each forecast sees only the points before its origin (the last
    `train_window` of them when given: "30 days of history" at every origin). min_train: the
    fewest training points an origin needs (default two longest seasons, or half the series). season: the
    seasonal-naive period (default: the longest daily/weekly cycle that fits twice into the training).
    Extra keyword arguments go to the forecaster.
    """
    freq = forecast_kwargs.pop("freq", None)
    prep = prepare(series, freq=freq, kind=forecast_kwargs.pop("kind", "auto"))
    y = prep.y
    n = len(y)
    notes = list(prep.notes)
    periods = forecast_kwargs.get("seasonal_periods") or default_periods(prep.step)
    if min_train is None:
        min_train = 2 * max(periods) if periods and n >= 2 * max(periods) + horizon else max(4, n // 2)
    if isinstance(origins, (int, np.integer)):
        step = step or horizon
        last = n - horizon
        pos = [last - k * step for k in range(int(origins))]
        pos = sorted(p for p in pos if p >= min_train)
    else:
        pos = []
        for o in origins:
            if isinstance(o, (int, np.integer)):
                pos.append(int(o))
            else:
                ts = pd.Timestamp(o)
                ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
                pos.append(int(y.index.searchsorted(ts)))
        pos = sorted(p for p in pos if 2 <= p <= n - 1)
    if not pos:
        notes.append(f"no origin has {min_train} training points and {horizon} held-out points")
    if season is None:
        shortest = min(pos) if pos else n
        fits = [p for p in periods if 2 * p <= shortest]
        season = max(fits) if fits else 1
    rows = []
    for o in pos:
        a = max(0, o - train_window) if train_window else 0
        train = y.iloc[a:o].copy()
        train[prep.filled[a:o]] = np.nan  # the forecaster sees the gaps and fills them its own way
        test = y.to_numpy()[o:o + horizon]
        observed = ~prep.filled[o:o + horizon]
        if not observed.any():
            continue
        fc = forecaster(train, len(test), level=level, kind="gauge", **forecast_kwargs)
        tr = y.to_numpy()[a:o]  # seasonal-naive repeats the cleaned (gap-filled) history
        sn = seasonal_naive(tr, len(test), season)
        obs = ~prep.filled[a:o]
        both = obs[season:] & obs[:-season] if len(tr) > season else np.zeros(0, dtype=bool)
        scale = float(np.mean(np.abs(tr[season:] - tr[:-season])[both])) if both.any() else float("nan")
        err = np.abs(fc.mean.to_numpy() - test)[observed]
        err_sn = np.abs(sn - test)[observed]
        inside = ((test >= fc.lower.to_numpy()) & (test <= fc.upper.to_numpy()))[observed]
        rows.append({
            "origin": y.index[o], "train": o, "points": int(observed.sum()),
            "mae": float(err.mean()), "mae_snaive": float(err_sn.mean()), "scale": scale,
            "coverage": float(inside.mean()), "method": fc.method,
        })
    df = pd.DataFrame(rows, columns=["origin", "train", "points", "mae", "mae_snaive", "scale", "coverage",
                                     "method"])
    if df.empty:
        nan = float("nan")
        return BacktestResult(nan, nan, nan, nan, season, horizon, df, notes)
    ok = df["scale"] > 0
    if not ok.all():
        notes.append("seasonal-naive is exact in-sample for some origins (a flat or perfectly periodic "
                     "series): MASE undefined there")
    mase = float((df.loc[ok, "mae"] / df.loc[ok, "scale"]).mean()) if ok.any() else float("nan")
    mase_sn = float((df.loc[ok, "mae_snaive"] / df.loc[ok, "scale"]).mean()) if ok.any() else float("nan")
    tot_sn = float((df["mae_snaive"] * df["points"]).sum())
    size = float(np.nanmean(np.abs(y.to_numpy()))) if n else 0.0
    if tot_sn > 1e-9 * max(size, 1e-300) * float(df["points"].sum()):
        rel = float((df["mae"] * df["points"]).sum() / tot_sn)
    else:
        rel = float("nan")
        notes.append("seasonal-naive is exact on the held-out points: no relative error")
    cov = float((df["coverage"] * df["points"]).sum() / df["points"].sum())
    pos_sn = df["mae_snaive"] > 0
    rel_mase = float((df.loc[pos_sn, "mae"] / df.loc[pos_sn, "mae_snaive"]).mean()) if pos_sn.any() else float("nan")
    return BacktestResult(mase, mase_sn, rel, cov, season, horizon, df, notes, rel_mase)
