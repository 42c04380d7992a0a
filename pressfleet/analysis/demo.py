"""For the demo: fill the metrics store with a generated fleet history (once) and forecast its capacity."""

from __future__ import annotations

from typing import Any

import pandas as pd

from pressfleet.metrics.generate import generate_history
from pressfleet.metrics.store import open_store

DEMO_SEED = 0
DEMO_HOSTS = 4
DEMO_DAYS = 30


def _shown(url: str) -> str:
    import sqlalchemy as sa

    return sa.engine.make_url(url).render_as_string(hide_password=True)


def fill(store_url: str | None = None, *, end: Any = None) -> dict:
    """Write a generated history of `DEMO_HOSTS` hosts (web-01...) ending at today's midnight UTC, unless the
    store already holds the generated fleet. Idempotent: points already stored are skipped."""
    st = open_store(store_url)
    existing = st.list_series(metric="cpu_percent", host="web-01")
    if len(existing):
        return {"written": 0, "already": True, "url": _shown(st.url)}
    end_ts = pd.Timestamp(end) if end is not None else pd.Timestamp.now(tz="UTC").floor("D")
    hist = generate_history(seed=DEMO_SEED, hosts=DEMO_HOSTS, days=DEMO_DAYS, end=end_ts)
    return {"written": st.write_points(hist.points), "already": False, "url": _shown(st.url),
            "hosts": hist.hosts, "end": end_ts.isoformat()}
