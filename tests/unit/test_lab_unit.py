"""The lab's refusals: bad names, not root, a missing capability, each in one sentence."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pressfleet.lab import hosts as lab

pytestmark = pytest.mark.unit

CLI = [sys.executable, "-m", "pressfleet.cli.main"]


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


# --- namespaces (issue 9 item 18): the tests' lab is not the operator's ------------------------------------


def test_the_default_namespace_is_the_operators_lab_as_before():
    ns = lab.namespace("default")
    assert (ns.bridge, str(ns.network), str(ns.bridge_address), ns.netns_prefix, ns.veth_prefix) == \
        ("pfbr0", "10.200.0.0/24", "10.200.0.1", "pf-", "pfv")
    assert ns.dir == lab.lab_dir()


def test_the_test_namespace_shares_nothing_with_the_default_but_the_template(monkeypatch):
    default, test = lab.namespace("default"), lab.namespace("test")
    assert test.bridge != default.bridge and not test.network.overlaps(default.network)
    assert test.dir != default.dir and default.dir / "hosts" not in [test.dir / "hosts", *(test.dir / "hosts").parents]
    for a, b in ((default.netns_prefix, test.netns_prefix), (default.veth_prefix, test.veth_prefix)):
        assert not b.startswith(a) and not a.startswith(b)  # down --all in one never matches the other's names
    assert len(test.veth_prefix + "209") <= 15 and len(test.bridge) <= 15  # Linux interface names
    monkeypatch.setenv(lab.NAMESPACE_ENV, "test")
    test_tpl = lab.template_path()
    monkeypatch.delenv(lab.NAMESPACE_ENV)
    assert lab.template_path() == test_tpl


def test_the_suite_runs_in_a_lab_namespace_of_its_own():
    assert os.environ.get(lab.NAMESPACE_ENV) and not lab.namespace().is_default  # conftest: "test" unless told


@pytest.mark.parametrize("name", ["Test", "te-st", "1a", "abcdefg", "a b", "../x"])
def test_bad_namespace_names_are_refused(name):
    with pytest.raises(lab.LabError, match="not valid"):
        lab.namespace(name)


def test_an_unknown_namespace_needs_its_own_private_24(monkeypatch):
    monkeypatch.delenv(lab.NETWORK_ENV, raising=False)
    with pytest.raises(lab.LabError, match="PRESSFLEET_LAB_NETWORK"):
        lab.namespace("ci2")
    for bad in ("10.200.0.0/24", "10.201.0.0/24", "8.8.8.0/24", "10.202.0.0/16", "10.202.0.1/24"):
        monkeypatch.setenv(lab.NETWORK_ENV, bad)
        with pytest.raises(lab.LabError):
            lab.namespace("ci2")
    monkeypatch.setenv(lab.NETWORK_ENV, "10.202.0.0/24")
    assert lab.namespace("ci2").bridge == "pfci2br"


def test_forwarding_rules_drop_only_what_is_routed_through_the_bridge():
    text = lab.forwarding_rules(lab.namespace("test"))
    assert "hook forward" in text and "policy accept" in text
    assert 'iifname "pftestbr" oifname != "pftestbr" drop' in text
    assert 'oifname "pftestbr" iifname != "pftestbr" drop' in text
    assert "flush ruleset" not in text and text.count("delete table inet pressfleet_lab_test") == 1


def test_the_suite_never_uses_the_operators_state_or_prefect():
    """Every `pressfleet` command a test runs inherits a temporary state folder and Prefect home, and a
    Prefect port of its own: never `.state/`, ~/.prefect, or the demo's server on 4200."""
    from pressfleet.paths import ROOT

    proc = subprocess.run([*CLI, "stack", "status"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert str(ROOT / ".state") not in proc.stdout
    assert f"PREFECT_HOME {os.environ['PRESSFLEET_STATE']}" in proc.stdout
    assert ":4200" not in proc.stdout
    assert "PREFECT_API_URL" not in os.environ


def test_a_skip_fails_under_make_test(tmp_path):
    """`make test` sets PRESSFLEET_NO_SKIP=1: a test that would be skipped fails, saying why."""
    from pressfleet.paths import ROOT

    (tmp_path / "test_skipping.py").write_text("import pytest\n\ndef test_x():\n    pytest.skip('no such tool')\n")
    cmd = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-q", "-c", "/dev/null", "-p", "no:cacheprovider",
           str(tmp_path / "test_skipping.py")]
    strict = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120,
                            env={**os.environ, "PRESSFLEET_NO_SKIP": "1"})
    assert strict.returncode == 1 and "skipped under make test" in strict.stdout and "no such tool" in strict.stdout
    lenient = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120,
                             env={k: v for k, v in os.environ.items() if k != "PRESSFLEET_NO_SKIP"})
    assert lenient.returncode == 0 and "1 skipped" in lenient.stdout
