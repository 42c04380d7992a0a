"""Pure provisioning rules: component selection and the worker-memory hysteresis that keeps re-runs still."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, strategies as st

from pressfleet.plan import desired as provision
from pressfleet.plan.sizing import GiB, InsufficientMemory, MiB

pytestmark = pytest.mark.unit


def test_components_in_dependency_order_and_unknown_refused():
    assert provision.selected(None) == list(provision.COMPONENTS)
    assert provision.selected(["nginx", "packages", "php"]) == ["packages", "php", "nginx"]
    with pytest.raises(ValueError, match="unknown component"):
        provision.selected(["nginx", "rm -rf /"])


def test_worker_memory_choice():
    assert provision.choose_worker_memory([], None) is None
    assert provision.choose_worker_memory([], 32 * MiB) == 32 * MiB
    assert provision.choose_worker_memory([13 * MiB, 14 * MiB, 30 * MiB], None) == 16 * MiB  # median, up to 4 MiB
    assert provision.choose_worker_memory([35 * MiB], 32 * MiB) == 32 * MiB  # within 25 %: keep
    assert provision.choose_worker_memory([60 * MiB], 32 * MiB) == 60 * MiB


@given(ram=st.integers(1 * GiB, 64 * GiB), cpus=st.integers(1, 32),
       recorded=st.integers(8, 256).map(lambda m: m * MiB),
       jitter=st.floats(0.5, 2.0))
def test_plan_keeps_the_recorded_figure_unless_the_pool_size_changes(ram, cpus, recorded, jitter):
    samples = [int(recorded * jitter)]
    try:
        plan = provision.plan_for(ram, cpus, samples, recorded)
        fresh = provision.plan_for(ram, cpus, samples, None)
    except InsufficientMemory:
        assume(False)  # a host too small for such workers is refused, which sizing's own tests cover
    # Either nothing moved (the recorded figure is kept), or the pool really is sized differently.
    assert plan.php.worker_rss_bytes == recorded or plan.php.max_children == fresh.php.max_children
    # And a second run with the same measurement changes nothing.
    again = provision.plan_for(ram, cpus, samples, plan.php.worker_rss_bytes)
    assert again == plan
