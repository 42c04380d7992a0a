"""Retention pruning: restic-style buckets by example, and the safety rules as properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pressfleet.backup.retention import BackupRecord, RetentionError, RetentionPolicy, plan_prune

pytestmark = pytest.mark.unit

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def full(id: str, when: str, verified: bool = False) -> BackupRecord:
    return BackupRecord(id=id, taken_at=at(when), kind="full", verified=verified)


def inc(id: str, when: str, parent: str, verified: bool = False) -> BackupRecord:
    return BackupRecord(id=id, taken_at=at(when), kind="incremental", parent=parent, verified=verified)


def plan(backups, **policy):
    return plan_prune(backups, RetentionPolicy(**policy), now=NOW)


# --- the bucket rules, by example ---------------------------------------------------------------


def test_keep_last_keeps_the_newest_n():
    bs = [full(f"b{i}", f"2024-05-0{i} 03:00") for i in range(1, 6)]
    p = plan(bs, keep_last=3)
    assert p.keep == ["b5", "b4", "b3"]
    assert p.delete == ["b2", "b1"]
    assert p.reasons["b5"] == ["last"]


def test_keep_daily_takes_the_newest_of_each_day_and_skips_days_without_backups():
    bs = [
        full("d1-early", "2024-05-01 01:00"),
        full("d1-late", "2024-05-01 23:00"),
        full("d3", "2024-05-03 02:00"),  # 05-02 has no backup: it is not a bucket
        full("d4-early", "2024-05-04 01:00"),
        full("d4-late", "2024-05-04 05:00"),
    ]
    p = plan(bs, keep_daily=2)
    assert p.keep == ["d4-late", "d3"]
    assert p.reasons["d3"] == ["daily 2024-05-03"]
    p = plan(bs, keep_daily=3)
    assert p.keep == ["d4-late", "d3", "d1-late"]


def test_keep_weekly_uses_iso_weeks_monday_to_sunday_across_the_year_end():
    bs = [
        full("sun", "2024-12-29 10:00"),  # Sunday, 2024-W52
        full("mon", "2024-12-30 10:00"),  # Monday, ISO 2025-W01
        full("wed", "2025-01-01 10:00"),  # 2025-W01
    ]
    p = plan(bs, keep_weekly=2)
    assert p.keep == ["wed", "sun"]
    assert p.reasons["wed"] == ["weekly 2025-W01"]
    assert p.reasons["sun"] == ["weekly 2024-W52"]
    assert p.delete == ["mon"]


def test_keep_monthly_and_yearly():
    bs = [
        full("2023-11", "2023-11-15 00:00"),
        full("2023-12a", "2023-12-01 00:00"),
        full("2023-12b", "2023-12-31 23:59"),
        full("2024-01a", "2024-01-01 00:00"),
        full("2024-01b", "2024-01-20 00:00"),
    ]
    assert plan(bs, keep_monthly=2).keep == ["2024-01b", "2023-12b"]
    assert plan(bs, keep_yearly=1).keep == ["2024-01b"]
    p = plan(bs, keep_yearly=2)
    assert p.keep == ["2024-01b", "2023-12b"]
    assert p.reasons["2023-12b"] == ["yearly 2023"]


def test_oldest_is_kept_when_a_bucket_rule_is_not_filled():
    bs = [
        full("a1", "2024-05-01 01:00"),
        full("a2", "2024-05-01 02:00"),
        full("b1", "2024-05-02 01:00"),
        full("b2", "2024-05-02 02:00"),
    ]
    p = plan(bs, keep_daily=5)
    assert p.keep == ["b2", "a2", "a1"]
    assert p.reasons["a1"] == ["oldest (daily has buckets left)"]
    # keep_last is not a bucket rule: it keeps no extra oldest
    assert plan(bs, keep_last=3).keep == ["b2", "b1", "a2"]


def test_rules_combine_and_reasons_name_every_rule():
    bs = [full(f"b{i}", f"2024-05-0{i} 03:00") for i in range(1, 4)]
    p = plan(bs, keep_last=1, keep_daily=1, keep_monthly=1)
    assert p.keep == ["b3"]
    assert p.reasons["b3"] == ["last", "daily 2024-05-03", "monthly 2024-05"]


def test_times_in_other_zones_are_bucketed_in_utc():
    paris = timezone(timedelta(hours=2))
    a = BackupRecord(id="a", taken_at=datetime(2024, 5, 2, 1, 0, tzinfo=paris))  # 2024-05-01 23:00 UTC
    b = BackupRecord(id="b", taken_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    assert a.taken_at.tzinfo == UTC
    assert plan([a, b], keep_daily=1).keep == ["a"]


def test_empty_list_gives_an_empty_plan():
    p = plan([], keep_last=1)
    assert (p.keep, p.delete, p.reasons) == ([], [], {})


# --- the safety rules, by example ---------------------------------------------------------------


def test_newest_verified_is_kept_whatever_the_policy():
    bs = [
        full("old", "2024-05-01 03:00", verified=True),
        full("mid", "2024-05-02 03:00", verified=True),
        full("new", "2024-05-03 03:00"),
    ]
    p = plan(bs, keep_last=1)
    assert p.keep == ["new", "mid"]
    assert p.reasons["mid"] == ["newest verified"]
    assert p.delete == ["old"]


def test_a_kept_incremental_keeps_its_whole_chain():
    bs = [
        full("f0", "2024-04-30 03:00"),
        full("f1", "2024-05-01 03:00"),
        inc("i1", "2024-05-02 03:00", parent="f1"),
        inc("i2", "2024-05-03 03:00", parent="i1"),
    ]
    p = plan(bs, keep_last=1)
    assert p.keep == ["i2", "i1", "f1"]
    assert p.reasons["i1"] == ["needed by i2"]
    assert p.reasons["f1"] == ["needed by i1"]
    assert p.delete == ["f0"]


# --- refused input ------------------------------------------------------------------------------


def test_a_policy_that_keeps_nothing_is_refused():
    with pytest.raises(ValueError, match="keeps nothing"):
        RetentionPolicy()
    with pytest.raises(ValueError, match="keeps nothing"):
        RetentionPolicy(keep_last=0, keep_daily=0, keep_weekly=0, keep_monthly=0, keep_yearly=0)


@pytest.mark.parametrize("field", ["keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly"])
def test_negative_counts_are_refused(field):
    with pytest.raises(ValidationError):
        RetentionPolicy(**{"keep_last": 1, field: -1})


def test_duplicate_ids_are_refused():
    bs = [full("x", "2024-05-01 03:00"), full("x", "2024-05-02 03:00")]
    with pytest.raises(RetentionError, match="'x' appears more than once"):
        plan(bs, keep_last=1)


def test_unknown_parent_is_refused():
    with pytest.raises(RetentionError, match="depends on 'ghost', which is not among"):
        plan([inc("i", "2024-05-02 03:00", parent="ghost")], keep_last=5)


def test_parent_not_older_than_its_child_is_refused():
    bs = [full("f", "2024-05-02 03:00"), inc("i", "2024-05-02 03:00", parent="f")]
    with pytest.raises(RetentionError, match="not older than it"):
        plan(bs, keep_last=5)


def test_backup_dated_in_the_future_is_refused():
    with pytest.raises(RetentionError, match="after now"):
        plan([full("f", "2031-01-01 00:00")], keep_last=1)


def test_records_are_checked():
    with pytest.raises(ValidationError, match="no time zone"):
        BackupRecord(id="a", taken_at=datetime(2024, 1, 1))
    with pytest.raises(ValidationError, match="has no parent"):
        BackupRecord(id="a", taken_at=NOW, kind="incremental")
    with pytest.raises(ValidationError, match="only incrementals have one"):
        BackupRecord(id="a", taken_at=NOW, kind="full", parent="b")
    with pytest.raises(ValidationError):
        BackupRecord(id="a", taken_at=NOW, kind="differential")


def test_refused_input_is_a_value_error():
    assert issubclass(RetentionError, ValueError)


# --- properties ---------------------------------------------------------------------------------

BASE = datetime(2022, 1, 1, tzinfo=UTC)


@st.composite
def backup_sets(draw):
    hours = draw(st.lists(st.integers(min_value=0, max_value=3 * 366 * 24), max_size=40))
    hours.sort()
    records: list[BackupRecord] = []
    for i, h in enumerate(hours):
        older = [r for r in records if r.taken_at < BASE + timedelta(hours=h)]
        parent = draw(st.none() | st.sampled_from(older)) if older else None
        records.append(
            BackupRecord(
                id=f"b{i:02d}",
                taken_at=BASE + timedelta(hours=h),
                kind="incremental" if parent else "full",
                parent=parent.id if parent else None,
                verified=draw(st.booleans()),
            )
        )
    return draw(st.permutations(records))


COUNT = st.integers(min_value=0, max_value=6)
FIELDS = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
policies = (
    st.tuples(COUNT, COUNT, COUNT, COUNT, COUNT)
    .filter(any)
    .map(lambda c: RetentionPolicy(**dict(zip(FIELDS, c))))
)

PROPS = settings(max_examples=100, deadline=None)


@PROPS
@given(backup_sets(), policies)
def test_keep_and_delete_partition_all_backups(bs, policy):
    p = plan_prune(bs, policy, now=NOW)
    assert set(p.keep) | set(p.delete) == {b.id for b in bs}
    assert not set(p.keep) & set(p.delete)
    assert len(p.keep) + len(p.delete) == len(bs)
    assert set(p.reasons) == set(p.keep)
    assert all(p.reasons[k] for k in p.keep)


@PROPS
@given(backup_sets(), policies)
def test_newest_verified_is_always_kept(bs, policy):
    verified = [b for b in bs if b.verified]
    p = plan_prune(bs, policy, now=NOW)
    if verified:
        newest = max(verified, key=lambda b: (b.taken_at, b.id))
        assert newest.id in p.keep
    if bs:
        assert p.keep, "a policy that keeps something keeps at least one backup"


@PROPS
@given(backup_sets(), policies)
def test_no_kept_backup_depends_on_a_deleted_one(bs, policy):
    by_id = {b.id: b for b in bs}
    p = plan_prune(bs, policy, now=NOW)
    deleted = set(p.delete)
    for k in p.keep:
        b = by_id[k]
        while b.parent is not None:
            assert b.parent not in deleted, f"{k} needs {b.parent}, which would be deleted"
            b = by_id[b.parent]


@PROPS
@given(backup_sets(), policies)
def test_pruning_is_idempotent(bs, policy):
    p = plan_prune(bs, policy, now=NOW)
    kept = [b for b in bs if b.id in set(p.keep)]
    again = plan_prune(kept, policy, now=NOW)
    assert again.delete == []
    assert again.keep == p.keep


@PROPS
@given(backup_sets(), policies, st.tuples(COUNT, COUNT, COUNT, COUNT, COUNT))
def test_a_stronger_policy_never_keeps_fewer(bs, policy, extra):
    stronger = RetentionPolicy(
        keep_last=policy.keep_last + extra[0],
        keep_daily=policy.keep_daily + extra[1],
        keep_weekly=policy.keep_weekly + extra[2],
        keep_monthly=policy.keep_monthly + extra[3],
        keep_yearly=policy.keep_yearly + extra[4],
    )
    weak = plan_prune(bs, policy, now=NOW)
    strong = plan_prune(bs, stronger, now=NOW)
    assert set(weak.keep) <= set(strong.keep)


@PROPS
@given(backup_sets(), policies)
def test_order_of_the_input_does_not_matter(bs, policy):
    assert plan_prune(bs, policy, now=NOW) == plan_prune(list(reversed(bs)), policy, now=NOW)


@settings(max_examples=30, deadline=None)
@given(backup_sets().filter(bool), policies, st.data())
def test_bad_input_raises_and_plans_nothing(bs, policy, data):
    victim = data.draw(st.sampled_from(bs))
    dup = victim.model_copy(update={"taken_at": victim.taken_at - timedelta(seconds=1)})
    with pytest.raises(RetentionError, match="more than once"):
        plan_prune([*bs, dup], policy, now=NOW)
    orphan = BackupRecord(id="orphan", taken_at=NOW, kind="incremental", parent="missing")
    with pytest.raises(RetentionError, match="not among the backups"):
        plan_prune([*bs, orphan], policy, now=NOW)


# --- shipped binary logs ------------------------------------------------------------------------------------

from pressfleet.backup.retention import binlogs_not_needed  # noqa: E402

OLD_SERVER, NEW_SERVER = "0f0e0d0c-0b0a-4908-8706-050403020100", "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d"


def log(n: int) -> str:
    return f"mysql-bin.{n:06d}"


def test_logs_older_than_the_oldest_kept_snapshot_go_and_the_rest_stay():
    shipped = {OLD_SERVER: [log(1), log(2), log(3), log(4)]}
    assert binlogs_not_needed([(OLD_SERVER, log(3)), (OLD_SERVER, log(4))], shipped) == {OLD_SERVER: [log(1), log(2)]}
    assert binlogs_not_needed([(OLD_SERVER, log(1))], shipped) == {}


def test_a_server_no_kept_backup_came_from_loses_all_its_logs_whatever_their_names():
    # the host a site was recovered to numbers its logs from 1 again: the names say nothing across servers
    shipped = {OLD_SERVER: [log(7), log(8)], NEW_SERVER: [log(1), log(2)], None: [log(5)]}
    assert binlogs_not_needed([(NEW_SERVER, log(2))], shipped) == {
        OLD_SERVER: [log(7), log(8)], NEW_SERVER: [log(1)], None: [log(5)]}
    # a backup taken with the binary log off needs no log
    assert binlogs_not_needed([(NEW_SERVER, None)], {NEW_SERVER: [log(1)]}) == {NEW_SERVER: [log(1)]}


servers = st.sampled_from([OLD_SERVER, NEW_SERVER, None])
logs_ = st.integers(min_value=1, max_value=30).map(log)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(servers, st.one_of(st.none(), logs_)), max_size=8),
       st.dictionaries(servers, st.lists(logs_, unique=True, max_size=12), max_size=3))
def test_no_log_a_kept_backup_rolls_forward_from_is_removed_and_nothing_else_stays(kept, shipped):
    gone = binlogs_not_needed(kept, shipped)
    for instance, names in shipped.items():
        removed = set(gone.get(instance, []))
        assert removed <= set(names)
        for name in names:
            needed = any(i == instance and start is not None and start <= name for i, start in kept)
            assert (name in removed) != needed
    # pruning what is left removes nothing more
    left = {i: [n for n in names if n not in gone.get(i, [])] for i, names in shipped.items()}
    assert binlogs_not_needed(kept, left) == {}
