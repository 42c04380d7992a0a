"""A metrics store filled with a generated fleet (tmp SQLite), and a private state folder for reports."""

from __future__ import annotations

import pytest

from pressfleet.metrics.generate import generate_history
from pressfleet.metrics.store import MetricsStore


@pytest.fixture(scope="session")
def fleet(tmp_path_factory):
    """(history, store URL): three hosts, 21 days hourly, a disk filling, a traffic spike, a memory leak, counter
    resets, gaps, and the last host stops reporting."""
    hist = generate_history(seed=3, hosts=3, sites_per_host=1, days=21)
    url = f"sqlite:///{tmp_path_factory.mktemp('analysis') / 'metrics.db'}"
    st = MetricsStore(url)
    st.write_points(hist.points)
    st.close()
    return hist, url


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("PRESSFLEET_STATE", str(tmp_path / "state"))
    return tmp_path / "state"
