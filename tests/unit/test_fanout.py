"""The pure parts of fanning a fleet job out over workers: which children, the host limits, the parent's report."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from blocks.server import Server
from pressfleet.fleet import children, locks
from pressfleet.validate import InvalidInput
from tests.unit.test_server_block import CLIENT_KEY_TEXT

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 1, 2, 30, tzinfo=timezone.utc)


def server(address: str, port: int = 22, **kw) -> Server:
    return Server(address=address, port=port, user="root", private_key=CLIENT_KEY_TEXT, **kw)


def saved(obj, name: str):
    """A block as it comes back from Block.load: with its document's id and name."""
    obj._block_document_id = uuid.uuid4()
    obj._block_document_name = name
    obj._is_anonymous = False
    return obj


def test_a_server_block_says_how_many_operations_at_once_with_a_default_of_two():
    assert server("10.0.0.5").max_operations == 2
    assert server("10.0.0.5", max_operations=5).max_operations == 5
    for bad in (0, -1, 65, "many"):
        with pytest.raises(ValidationError):
            server("10.0.0.5", max_operations=bad)


def test_host_limit_names_are_the_checked_address_and_a_port_other_than_22():
    assert locks.host_lock_name("10.201.0.7") == "pressfleet-host-10.201.0.7"
    assert locks.host_lock_name("Web1.Example.COM.") == "pressfleet-host-web1.example.com"
    assert locks.host_lock_name("10.0.0.5", 2222) == "pressfleet-host-10.0.0.5-2222"
    assert locks.host_lock_name("2001:db8::1") == "pressfleet-host-2001-db8--1"
    for bad in ("", "a b", "x;rm -rf /", "../x", "fe80::1%eth0", None):
        with pytest.raises(InvalidInput):
            locks.host_lock_name(bad)
    with pytest.raises(InvalidInput):
        locks.host_lock_name("10.0.0.5", 0)


def test_host_limits_take_each_host_once_with_its_blocks_smallest_size():
    limits = locks.host_limits([server("10.0.0.5"), server("10.0.0.6", max_operations=4),
                                server("10.0.0.6", max_operations=3), None, server("10.0.0.5", 2222)])
    assert limits == {"pressfleet-host-10.0.0.5": 2, "pressfleet-host-10.0.0.6": 3,
                      "pressfleet-host-10.0.0.5-2222": 2}
    # a block saved before the field existed counts the default
    old = SimpleNamespace(address="10.0.0.9", port=22)
    assert locks.host_limits([old]) == {"pressfleet-host-10.0.0.9": locks.DEFAULT_HOST_OPERATIONS}


def test_the_log_and_refusal_name_the_hosts():
    hosts = {"pressfleet-host-10.0.0.6": 2, "pressfleet-host-10.0.0.5": 2}
    assert locks.held_sentence(["blog"], hosts, "backup-site") == (
        "backup-site holds the lock of site 'blog' and a slot of hosts 10.0.0.5, 10.0.0.6.")
    assert locks.held_sentence([], ["pressfleet-host-10.0.0.5"], "restore-test") == (
        "restore-test holds a slot of host 10.0.0.5.")
    text = locks.busy_sentence(("blog",), 61.2, "backup-site", hosts=["pressfleet-host-10.0.0.5"])
    assert text.startswith("backup-site did not start: site 'blog' or host 10.0.0.5 stayed busy")
    assert "max_operations" in text and "nothing was changed" in text and "\n" not in text
    # the one writer's lock of a host's shared files (provisioning, site removal)
    assert locks.host_files_limits([SimpleNamespace(address="10.0.0.5", port=2222, max_operations=4)]) == {
        "pressfleet-hostfiles-10.0.0.5-2222": 1}
    both = ["pressfleet-host-10.0.0.5", "pressfleet-hostfiles-10.0.0.5"]
    assert locks.held_sentence(["blog"], both, "provision-wordpress") == (
        "provision-wordpress holds the lock of site 'blog' and a slot of host 10.0.0.5 and the shared files of "
        "host 10.0.0.5.")
    text = locks.busy_sentence(("blog",), 3, "provision-wordpress", hosts=both)
    assert text.startswith("provision-wordpress did not start: site 'blog' or host 10.0.0.5 or the shared files of "
                           "host 10.0.0.5 (one provisioning or site removal at a time writes them) stayed busy")
    # without hosts, the sentence of a site lock is unchanged
    assert locks.busy_sentence(("blog",), 5, "x") == locks.busy_sentence(("blog",), 5, "x", hosts=())


def test_one_child_per_site_named_by_reference_with_the_common_parameters():
    a, b = saved(SimpleNamespace(name="b_test"), "site-b"), saved(SimpleNamespace(name="a_test"), "site-a")
    again = saved(SimpleNamespace(name="a_test"), "site-a-copy")
    out = children.site_children([a, b, again], common={"full": True}, host_of=lambda s: "h-" + s.name)
    assert [c.label for c in out] == ["a_test", "b_test"]  # each site once, in name order
    assert out[0].parameters == {"full": True, "site": {"$ref": {"block_document_id": str(b._block_document_id)}}}
    assert out[1].host == "h-b_test"


def test_an_unsaved_block_cannot_be_handed_to_a_child():
    with pytest.raises(InvalidInput, match="must be saved"):
        children.block_ref(server("10.0.0.5"))
    with pytest.raises(InvalidInput):
        children.site_children([SimpleNamespace(name="a_test")])


def test_one_child_per_host_for_collection():
    s1, s2 = saved(server("10.0.0.6"), "lab-b"), saved(server("10.0.0.5"), "lab-a")
    dup = saved(server("10.0.0.5"), "lab-a2")
    out = children.server_children([s1, s2, dup], common={"raw_days": 14}, host_of=lambda s: s.address)
    assert [(c.label, c.parameters["servers"][0]["$ref"]["block_document_id"]) for c in out] == [
        ("10.0.0.5", str(s2._block_document_id)), ("10.0.0.6", str(s1._block_document_id))]
    assert out[0].parameters["raw_days"] == 14


def outcome(label, state="COMPLETED", worker="w1", start=0, end=10, message=""):
    return children.ChildOutcome(label=label, run_name=f"fleet-backup-{label}", run_id=label, state=state,
                                 worker=worker, host="h1", started=T0 + timedelta(seconds=start),
                                 ended=T0 + timedelta(seconds=end) if end is not None else None, message=message)


def test_the_parent_reports_each_child_and_fails_naming_those_that_did_not_complete():
    outs = [outcome("b", worker="w2", start=5, end=7.5), outcome("a"),
            outcome("c", "FAILED", message="backup failed for c: disk full"), outcome("d", "CRASHED", end=None)]
    rows = children.summary_rows(outs)
    assert [r["child"] for r in rows] == ["a", "b", "c", "d"]
    assert rows[1] == {"child": "b", "host": "h1", "worker": "w2", "run": "fleet-backup-b", "state": "COMPLETED",
                       "seconds": "2.5", "message": ""}
    assert rows[3]["seconds"] == "-"
    assert children.summary_line("fleet-backup", outs) == (
        "fleet-backup: 4 child runs on 2 workers, 2 completed, 2 not.")
    assert children.failure_sentence("fleet-backup", outs) == (
        "fleet-backup: 2 of 4 child runs did not complete: c (FAILED: backup failed for c: disk full), d (CRASHED).")
    assert children.failure_sentence("fleet-backup", outs[:2]) == ""
    assert [o.label for o in children.failures(outs)] == ["c", "d"]


INTERVAL = st.tuples(st.integers(0, 50), st.integers(1, 20)).map(
    lambda t: (T0 + timedelta(seconds=t[0]), T0 + timedelta(seconds=t[0] + t[1])))


@given(st.lists(INTERVAL, max_size=12))
def test_most_at_once_is_the_largest_overlap(intervals):
    # brute force: at each start, how many intervals are open (an end at that instant is closed)
    brute = max((sum(1 for s, e in intervals if s <= at < e) for at, _ in intervals), default=0)
    assert children.most_at_once(intervals) == brute


def test_back_to_back_runs_do_not_overlap():
    t = [T0 + timedelta(seconds=s) for s in (0, 10, 20)]
    assert children.most_at_once([(t[0], t[1]), (t[1], t[2])]) == 1
    assert children.most_at_once([(t[0], t[2]), (t[1], t[2]), (t[0], t[1])]) == 2
