"""Sizing formulas: fixed examples, and properties over the whole range of hosts we may meet."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pressfleet.plan import sizing
from pressfleet.plan.sizing import (
    DEFAULT_WORKER_RSS,
    GiB,
    InsufficientMemory,
    MiB,
    PHP_OPCACHE_PRIMES,
    innodb_settings,
    opcache_settings,
    php_fpm_max_children,
    plan_host,
    redis_settings,
    worker_rss_from_samples,
)
from pressfleet.validate import InvalidInput

pytestmark = pytest.mark.unit

RAM = st.integers(min_value=512 * MiB, max_value=512 * GiB)
RSS = st.integers(min_value=16 * MiB, max_value=512 * MiB)
SITES = st.integers(min_value=1, max_value=40)
CPUS = st.one_of(st.none(), st.integers(min_value=1, max_value=128))


def _plan_or_refusal(ram, rss, sites=1, cpus=None):
    try:
        return plan_host(ram, worker_rss_bytes=rss, sites=sites, cpus=cpus)
    except InsufficientMemory as exc:
        assert str(exc).endswith(".") and "\n" not in str(exc)
        return None


# --- properties -----------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(RAM, RSS, SITES, CPUS)
def test_budgets_never_exceed_ram_and_settings_stay_within_budgets(ram, rss, sites, cpus):
    plan = _plan_or_refusal(ram, rss, sites, cpus)
    if plan is None:
        return
    budget = plan.budget()
    assert sum(budget.values()) <= ram
    assert all(b > 0 for b in budget.values())
    assert plan.unallocated_bytes >= 0
    # What is written into config files fits inside what was budgeted for it.
    inno = plan.innodb
    assert inno.buffer_pool_bytes + inno.log_buffer_bytes + inno.key_buffer_bytes + inno.aria_pagecache_bytes + 2 * inno.tmp_table_bytes <= inno.budget_bytes
    assert plan.redis.maxmemory_bytes <= plan.redis.budget_bytes
    assert plan.opcache.memory_consumption_mb * MiB <= plan.opcache.budget_bytes
    assert plan.php.process_max * plan.php.worker_cost_bytes <= plan.php.budget_bytes + plan.php.process_max


@settings(max_examples=300, deadline=None)
@given(RAM, RSS, SITES, CPUS)
def test_php_fpm_rules_hold(ram, rss, sites, cpus):
    plan = _plan_or_refusal(ram, rss, sites, cpus)
    if plan is None:
        return
    php = plan.php
    assert php.max_children >= 2 and php.process_max >= 2
    if cpus is not None:
        assert php.process_max <= max(2, 4 * cpus)
    if php.pm == "dynamic":
        assert 1 <= php.min_spare_servers <= php.start_servers <= php.max_spare_servers <= php.max_children
        # dynamic pools never oversubscribe process.max
        assert php.max_children * sites <= php.process_max
    else:
        assert php.start_servers is None
    assert plan.innodb.max_connections >= php.process_max + 10


@settings(max_examples=200, deadline=None)
@given(RAM, RAM, RSS, SITES)
def test_workers_are_monotonic_in_ram(ram_a, ram_b, rss, sites):
    low, high = sorted((ram_a, ram_b))
    a = _plan_or_refusal(low, rss, sites)
    b = _plan_or_refusal(high, rss, sites)
    if a is None:
        return
    assert b is not None, "a larger host was refused where a smaller one was not"
    assert b.php.process_max >= a.php.process_max
    assert b.innodb.buffer_pool_bytes >= a.innodb.buffer_pool_bytes
    assert b.redis.maxmemory_bytes >= a.redis.maxmemory_bytes
    assert b.opcache.memory_consumption_mb >= a.opcache.memory_consumption_mb


@settings(max_examples=200, deadline=None)
@given(RAM, RSS, RSS)
def test_workers_never_grow_with_worker_memory(ram, rss_a, rss_b):
    small, big = sorted((rss_a, rss_b))
    a = _plan_or_refusal(ram, small)
    b = _plan_or_refusal(ram, big)
    if b is None:
        return
    assert a is not None
    assert a.php.process_max >= b.php.process_max


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1 * GiB, max_value=512 * GiB), st.integers(min_value=16 * MiB, max_value=128 * MiB))
def test_ordinary_hosts_are_never_refused(ram, rss):
    plan = plan_host(ram, worker_rss_bytes=rss)
    assert plan.php.process_max >= 2


@settings(max_examples=200, deadline=None)
@given(RAM, RSS, st.integers(min_value=0, max_value=512 * MiB))
def test_php_fpm_max_children_refuses_only_when_two_do_not_fit(ram, rss, reserved):
    assume(reserved < ram)
    cost = rss * 1.25 + 3 * MiB * 1.1
    try:
        php = php_fpm_max_children(ram, rss, reserved)
    except InsufficientMemory:
        assert ram - reserved - MiB < 2 * cost + 1
        return
    assert php.process_max * cost <= ram - reserved


# --- fixed examples -------------------------------------------------------------------------------------


def test_typical_hosts():
    one = plan_host(1 * GiB)
    assert one.php.pm == "ondemand" and 2 <= one.php.max_children <= 6
    four = plan_host(4 * GiB)
    assert four.php.pm == "dynamic" and 12 <= four.php.max_children <= 30
    assert four.innodb.buffer_pool_bytes == 1216 * MiB  # 30 % of 4 GiB, rounded down to 32 MiB
    assert four.redis.maxmemory_bytes == 256 * MiB
    assert four.opcache.memory_consumption_mb == 256
    assert four.opcache.max_accelerated_files == 16229
    assert four.php.max_requests == 500


def test_default_worker_memory_is_documented_range_top():
    assert DEFAULT_WORKER_RSS == 64 * MiB
    assert plan_host(2 * GiB).php.worker_rss_bytes == DEFAULT_WORKER_RSS


def test_measured_small_workers_give_more_children():
    assert plan_host(2 * GiB, worker_rss_bytes=32 * MiB).php.process_max > plan_host(2 * GiB).php.process_max


def test_tiny_host_is_refused_with_a_reason():
    with pytest.raises(InsufficientMemory, match=r"512 MiB of RAM is \d+ MiB short"):
        plan_host(512 * MiB)


def test_squeezing_the_buffer_pool_makes_room_for_two_workers():
    plan = plan_host(768 * MiB, worker_rss_bytes=64 * MiB)
    assert plan.php.process_max == 2
    assert 64 * MiB <= plan.innodb.buffer_pool_bytes < int(0.3 * 768 * MiB)


def test_cpus_cap_workers():
    assert plan_host(64 * GiB, cpus=2).php.process_max == 8
    assert plan_host(64 * GiB).php.process_max > 8


def test_several_sites_share_process_max():
    plan = plan_host(8 * GiB, sites=4, cpus=8)
    assert plan.php.process_max == 32 and plan.php.max_children == 8
    crowded = plan_host(2 * GiB, sites=10)
    assert crowded.php.pm == "ondemand" and crowded.php.max_children == 2
    assert crowded.php.process_max < 2 * 10  # pools may each grow to 2; process.max bounds the sum
    assert crowded.opcache.validate_permission and crowded.opcache.memory_consumption_mb >= 64 + 32 * 9


def test_innodb_details():
    inno = innodb_settings(8 * GiB, max_children_total=40, sites=2)
    assert inno.buffer_pool_bytes % (128 * MiB) == 0
    assert inno.log_file_bytes == inno.buffer_pool_bytes // 4
    assert inno.max_connections == 40 + 10 + 4
    assert inno.tmp_table_bytes == 64 * MiB
    assert innodb_settings(8 * GiB).max_connections == 151
    small_db = innodb_settings(8 * GiB, db_data_bytes=100 * MiB)
    # min(30 % of RAM, max(128 MiB, 2 x 100 MiB)) = 200 MiB, on a 32 MiB grain: 192 MiB.
    assert small_db.buffer_pool_bytes == 192 * MiB


def test_opcache_primes():
    assert opcache_settings(4 * GiB).max_accelerated_files == 16229
    assert opcache_settings(4 * GiB, sites=5).max_accelerated_files == 32531
    assert opcache_settings(4 * GiB, sites=1000).max_accelerated_files == PHP_OPCACHE_PRIMES[-1]
    o = opcache_settings(512 * MiB)
    assert (o.memory_consumption_mb, o.interned_strings_buffer_mb) == (64, 8)
    assert opcache_settings(2 * GiB).memory_consumption_mb == 128


def test_redis():
    r = redis_settings(1 * GiB)
    assert (r.maxmemory_bytes, r.maxmemory_policy, r.databases) == (64 * MiB, "allkeys-lru", 16)
    assert redis_settings(512 * GiB).maxmemory_bytes == 4 * GiB
    assert redis_settings(1 * GiB, sites=40).databases == 40


def test_worker_rss_from_samples():
    assert worker_rss_from_samples([40 * MiB, 60 * MiB]) == 50 * MiB
    assert worker_rss_from_samples([1, 2]) == 2
    with pytest.raises(InvalidInput):
        worker_rss_from_samples([])
    with pytest.raises(InvalidInput):
        worker_rss_from_samples([0])


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "4G", None])
def test_bad_inputs_are_refused(bad):
    with pytest.raises(InvalidInput):
        plan_host(bad)
    with pytest.raises(InvalidInput):
        plan_host(4 * GiB, sites=bad)


def test_readme_section_is_in_the_module_docstring():
    doc = sizing.__doc__
    assert "## Sizing" in doc and "| budget | formula | why |" in doc
    for fn in (php_fpm_max_children, innodb_settings, opcache_settings, redis_settings, plan_host):
        assert fn.__doc__ and len(fn.__doc__) > 80
