"""The lab's refusals: bad names, not root, a missing capability, each in one sentence."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pressfleet import lab

pytestmark = pytest.mark.unit

CLI = [sys.executable, "-m", "pressfleet.cli"]


@pytest.mark.parametrize("name", ["", "A", "1abc", "a;rm -rf /", "a b", "../etc", "abcdefghijklm", "a_b", "-a"])
def test_bad_names_are_refused(name):
    with pytest.raises(lab.LabError, match="not valid"):
        lab.validate_name(name)


@pytest.mark.parametrize("name", ["a", "web1", "pt-a", "abcdefghijkl"])
def test_good_names_pass(name):
    assert lab.validate_name(name) == name


def _one_sentence_no_traceback(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, proc
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_not_root_is_one_clear_sentence():
    proc = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *CLI, "lab", "up", "x"],
        capture_output=True, text=True, cwd="/", env={**os.environ, "PRESSFLEET_STATE": "/tmp"},
    )
    assert "needs root" in _one_sentence_no_traceback(proc)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop a capability")
def test_missing_capability_is_one_clear_sentence():
    proc = subprocess.run(
        ["setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin", *CLI, "lab", "up", "x"],
        capture_output=True, text=True,
    )
    assert "CAP_NET_ADMIN" in _one_sentence_no_traceback(proc)


def test_bad_name_through_cli_changes_nothing(tmp_path):
    env = {**os.environ, "PRESSFLEET_LAB_DIR": str(tmp_path / "lab")}
    proc = subprocess.run([*CLI, "lab", "up", "a;rm -rf /"], capture_output=True, text=True, env=env)
    assert "not valid" in _one_sentence_no_traceback(proc)
    assert not (tmp_path / "lab").exists()
