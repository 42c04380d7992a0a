"""The terminal progress display (pressfleet/cli/progress.py): counts, labels, bytes; drawn on a terminal only."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from pressfleet.cli import progress

pytestmark = pytest.mark.unit


def test_counts_say_done_of_total_the_last_item_and_failures():
    c = progress.Counts(total=3, what="hosts")
    assert c.label() == "0/3 hosts"
    c.finish("web1")
    c.finish("web2", ok=False)
    assert c.label() == "2/3 hosts (last: web2; 1 failed)" and c.failed == ["web2"]
    c.finish("web3")
    c.finish("again")  # never past the total
    assert c.done == 3
    c.add_bytes(1500)
    c.add_bytes(0)
    assert c.bytes == 1500
    with pytest.raises(ValueError):
        c.add_bytes(-1)


def _terminal(is_terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=is_terminal, width=160, color_system=None), out


def test_a_terminal_shows_items_done_and_bytes_moved():
    console, out = _terminal(True)
    with progress.tracker(2, "sites", console=console) as bar:
        on_bytes = bar.bytes_callback("blog_lab_test files")
        for chunk in (1_000_000, 500_000):
            on_bytes(chunk)
        bar.done("blog_lab_test")
        bar.done("two_lab_test")
    text = out.getvalue()
    assert "2/2 sites (last: two_lab_test)" in text
    assert "blog_lab_test files" in text and "1.5 MB" in text  # rich's DownloadColumn: bytes so far
    assert bar.counts.bytes == 1_500_000


def test_quiet_when_not_a_terminal():
    console, out = _terminal(False)
    with progress.tracker(1, "hosts", console=console) as bar:
        bar.bytes_callback()(4096)
        bar.done("web1")
    assert out.getvalue() == "" and bar.counts.done == 1 and bar.counts.bytes == 4096


def test_each_provisioning_step_that_ends_advances_the_count():
    from tasks.common import on_step_done, step

    console, _ = _terminal(False)
    with progress.tracker(2, "steps", console=console) as bar, on_step_done(lambda r: bar.done(r.name)):
        with step("packages"):
            pass
        with step("nginx"):
            pass
    assert bar.counts.label() == "2/2 steps (last: nginx)"
    with step("php"):  # outside the block nobody listens
        pass
    assert bar.counts.done == 2


def test_fleet_apply_events_count_the_planned_hosts_and_their_ends():
    console, out = _terminal(True)
    with progress.tracker(0, "hosts", console=console) as bar:
        hook = progress.fleet_apply_events(bar)
        hook("hosts", detail=3)
        hook("site-start", "web1", "site-a")  # a site's start moves no host
        hook("host-done", "web1")
        hook("host-failed", "web2", None, "site-b: refused")
    assert bar.counts.total == 3 and bar.counts.done == 2 and bar.counts.failed == ["web2"]
    assert "2/3 hosts (last: web2; 1 failed)" in out.getvalue()
