"""Fleet analyses over the metrics store: capacity forecasts, anomalies, cost and trends (no Prefect here).

Each analysis reads the store (`pressfleet.metrics.store`) and returns pandas DataFrames plus conclusions
(advice, notes); `charts` draws them (matplotlib, Agg) and `report` writes the folders and markdown the flows
publish. The same functions back the flows in flows/ and the notebooks in notebooks/.

- `capacity.capacity_report(store)`: disk per mount, memory, CPU and traffic forecast per host (and database
  size per site), days until a disk fills and until headroom runs out, with prediction intervals and advice.
- `anomalies.anomaly_report(store)`: flagged periods per series and the stated false-alarm rate.
- `cost.cost_report(store, prices)`: backup storage cost per provider and class, server cost and utilization,
  right-sizing with monthly savings and payback.
- `trends.trend_report(store)`: week-over-week change per metric, each host's bottleneck, suggestions.

Short series, gaps, counter resets and hosts that stopped reporting give answers with notes, never exceptions.
"""
