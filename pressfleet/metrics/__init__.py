"""Fleet metrics: the store, synthetic histories, forecasts, anomalies and backtests (pure functions; no flows).

- `store`: SQLAlchemy tables (SQLite by default, PostgreSQL by URL): idempotent writes, hourly and daily
  rollups, retention, `read_series` / `list_series`.
- `generate`: deterministic synthetic fleet histories (daily and weekly cycles, growth, incidents, gaps).
- `forecast`: `forecast(series, horizon)` with prediction intervals; `days_until(forecast, threshold)`.
- `anomalies`: `detect_anomalies(series)` with a stated false-alarm rate.
- `backtest`: rolling-origin backtests, MASE against seasonal-naive.

Import the submodules (they load pandas, SQLAlchemy and statsmodels only when used).
"""
