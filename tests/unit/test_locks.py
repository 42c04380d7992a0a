"""The pure parts of the per-site lock (pressfleet.fleet.locks): names, what to acquire, what a run says."""

from __future__ import annotations

import contextvars

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pressfleet.fleet import locks
from pressfleet.validate import InvalidInput, site_name

pytestmark = pytest.mark.unit

def _is_site_name(text: str) -> bool:
    try:
        site_name(text)
        return True
    except InvalidInput:
        return False


# valid site names only: the generator also makes reserved ones ('lp', 'pf_x'), which lock_name rightly refuses
SITE = st.from_regex(r"[a-z][a-z0-9_]{0,30}", fullmatch=True).filter(_is_site_name)


def test_lock_names_are_the_checked_site_name_behind_one_prefix():
    assert locks.lock_name("blog") == "pressfleet-site-blog"
    assert locks.lock_name("example_com") == "pressfleet-site-example_com"
    for bad in ("", "Blog", "a b", "../x", "a/b", "blog%", "x" * 40, None):
        with pytest.raises(InvalidInput):
            locks.lock_name(bad)


@given(st.lists(SITE, max_size=8), st.lists(SITE, max_size=8))
def test_to_acquire_is_sorted_unique_and_skips_what_is_held(wanted, held):
    out = locks.to_acquire(wanted, held)
    assert list(out) == sorted(set(wanted) - set(held))
    assert locks.to_acquire(wanted + wanted[::-1]) == tuple(sorted(set(wanted)))


def test_a_bad_site_name_is_refused_before_any_lock_is_taken():
    with pytest.raises(InvalidInput):
        locks.to_acquire(["blog", "shop; rm -rf /"])


def test_the_wait_is_said_only_when_there_was_one():
    assert locks.wait_note(["blog"], 0.2, "backup-site") == ""
    assert locks.wait_note([], 50.0, "backup-site") == ""
    assert locks.wait_note(["blog"], 12.34, "backup-site") == (
        "backup-site waited 12.3 s for site 'blog' (another run was writing to it).")
    assert locks.wait_note(["a", "b", "c"], 2.0, "prune-backups") == (
        "prune-backups waited 2.0 s for sites 'a', 'b' and 'c' (another run was writing to it).")
    info = locks.LockInfo(("blog",), 3.0, "restore-site")
    assert info.note == "restore-site waited 3.0 s for site 'blog' (another run was writing to it)."


def test_the_refusal_is_one_sentence_that_says_nothing_changed():
    text = locks.busy_sentence(("blog",), 3600.4, "backup-site")
    assert text.startswith("backup-site did not start: site 'blog' stayed locked by another run")
    assert "for 3600 s" in text and "nothing was changed" in text
    assert text.endswith(".") and text.count(". ") == 0 and "\n" not in text
    assert issubclass(locks.SiteBusy, InvalidInput)  # the CLI prints it as one line, exit 1


def test_a_run_that_holds_the_site_already_does_not_wait_on_itself():
    """restore-site holds 'blog' and provisions the recovery host: provision-wordpress passes through.

    No Prefect API is reachable here: passing through must not touch it."""

    def inside():
        locks._HELD.set(frozenset({"blog"}))
        with locks.site_lock(["blog"], "provision-wordpress", wait_seconds=0) as info:
            assert info.waited == 0.0 and info.note == "" and info.sites == ("blog",)
            assert locks.held_sites() == frozenset({"blog"})
        return locks.held_sites()

    assert contextvars.copy_context().run(inside) == frozenset({"blog"})
    assert locks.held_sites() == frozenset()
    with locks.site_lock([], "ship-binlogs") as info:  # an empty fleet locks nothing
        assert info.sites == () and info.note == ""


def test_the_wait_limit_comes_from_the_environment_and_is_checked():
    assert locks.wait_limit("") == locks.DEFAULT_WAIT_SECONDS == 3 * 3600
    assert locks.wait_limit("0") == 0 and locks.wait_limit("90.5") == 90.5
    for bad in ("-1", "86401", "soon", "nan", "1e9"):
        with pytest.raises(InvalidInput, match="PRESSFLEET_SITE_LOCK_WAIT must be a number of seconds"):
            locks.wait_limit(bad)
