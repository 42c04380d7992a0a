"""Shared fixtures: real lab hosts (systemd-nspawn) and an in-process Prefect harness.

The suite leaves the operator's own fleet alone. Before anything else, this module sets for the whole
session (and every process a test starts, which inherits it):
- PRESSFLEET_LAB_NAMESPACE=test: the lab of the tests, with its own bridge, address range (10.201.0.0/24),
  apt proxy, mirror server and hosts folder; `lab down --all` there never stops the demo's hosts;
- PRESSFLEET_STATE, PREFECT_HOME: a temporary folder (never `.state/` or ~/.prefect), PREFECT_API_URL unset
  and PRESSFLEET_PREFECT_PORT a free port, so a `pressfleet` command a test runs never finds the demo's
  Prefect server; tests that want a Prefect API pass the harness's or the test stack's.
Lab hosts booted here are named `pt-*`; each is torn down at the end of the session, by PID.
Under `make test` (PRESSFLEET_NO_SKIP=1) a skipped test fails: CI must really run every test.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


os.environ.setdefault("PRESSFLEET_LAB_NAMESPACE", "test")
SESSION_STATE = tempfile.mkdtemp(prefix="pressfleet-test-state-")
os.environ["PRESSFLEET_STATE"] = SESSION_STATE
os.environ["PREFECT_HOME"] = os.path.join(SESSION_STATE, "prefect-home")
os.environ["PRESSFLEET_PREFECT_PORT"] = str(_free_port())
os.environ.pop("PREFECT_API_URL", None)

import pytest  # noqa: E402 - after the environment above, which prefect reads when imported

from pressfleet.lab import hosts as lab  # noqa: E402

# Another prefix lets two sessions share the machine (e.g. a developer's run beside CI): PRESSFLEET_TEST_PREFIX=pu-
TEST_PREFIX = os.environ.get("PRESSFLEET_TEST_PREFIX", "pt-")
NO_SKIP = os.environ.get("PRESSFLEET_NO_SKIP") == "1"


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(SESSION_STATE, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under `make test` a skip is a failure, saying why it would have been skipped."""
    outcome = yield
    report = outcome.get_result()
    if NO_SKIP and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under make test (PRESSFLEET_NO_SKIP=1), which must run every test: {reason}"


class LabPool:
    """Boots lab hosts on demand for the session and stops them all at its end."""

    def __init__(self) -> None:
        self.hosts: dict[str, lab.LabHost] = {}
        self._lock = threading.Lock()

    def get(self, short: str) -> lab.LabHost:
        name = TEST_PREFIX + short
        with self._lock:
            if name not in self.hosts or not lab.is_running(name):
                self.hosts[name] = lab.up(name, log=lambda m: None)
            return self.hosts[name]

    def fresh(self, short: str) -> lab.LabHost:
        """A pristine host, even if one of that name was used before in this session."""
        name = TEST_PREFIX + short
        with self._lock:
            lab.down(name)
            self.hosts[name] = lab.up(name, log=lambda m: None)
            return self.hosts[name]

    def stop(self, short: str) -> None:
        name = TEST_PREFIX + short
        with self._lock:
            lab.down(name)
            self.hosts.pop(name, None)

    def close(self) -> None:
        lab.shutdown_together(list(self.hosts))  # all power off at once; down() then waits for each
        for name in list(self.hosts):
            lab.down(name)
        self.hosts.clear()


@pytest.fixture(scope="session")
def lab_pool():
    try:
        lab.preflight()
        lab.ensure_template()
    except lab.LabError as exc:
        pytest.fail(f"the lab cannot run here: {exc}", pytrace=False)
    pool = LabPool()
    yield pool
    pool.close()


@pytest.fixture
def lab_host(lab_pool) -> lab.LabHost:
    """One Debian 12 lab host shared by the session's read-only tests (booted again if it was stopped)."""
    return lab_pool.get("a")


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """An in-process Prefect API (temporary SQLite database) for flows run by tests."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


def connect_lab(host: lab.LabHost):
    """A pinned-key Fabric connection to a lab host, through the same Server block `lab up` saves."""
    from pressfleet.lab.blocks import server_for

    return server_for(host).connect()


class Provisioned:
    """A lab host provisioned with a WordPress site by the real flow (shared by the session's tests)."""

    def __init__(self, host, server, site, report):
        self.host, self.server, self.site, self.report = host, server, site, report

    @property
    def config(self):
        return self.site.config()

    def curl(self, path: str = "/", *args: str, scheme: str = "https") -> subprocess.CompletedProcess:
        """curl from this machine to the site on the lab host (through its firewall), SNI and Host set."""
        port = 443 if scheme == "https" else 80
        domain = self.config.domain
        return subprocess.run(
            ["curl", "-ksS", "--max-time", "20", "--resolve", f"{domain}:{port}:{self.host.address}",
             *args, f"{scheme}://{domain}{path}"], capture_output=True, text=True, timeout=60)


def make_site(**overrides):
    from blocks.site import WordPressSite

    release = lab.ensure_mirror()
    fields = dict(name="blog", domain="blog.lab.test", admin_email="admin@lab.test", title="pressfleet test",
                  tls_mode="self-signed", release_url=release["url"], release_sha256=release["sha256"])
    fields.update(overrides)
    return WordPressSite(**fields)


@pytest.fixture(scope="session")
def provisioned(lab_pool, prefect_harness) -> Provisioned:
    """A pristine lab host turned into a WordPress server by provision_wordpress (once per session)."""
    from flows.provision_wordpress import provision_wordpress
    from pressfleet.lab.blocks import server_for

    host = lab_pool.fresh("w")
    server = server_for(host)
    site = make_site()
    report = provision_wordpress(server=server, site=site)
    return Provisioned(host, server, site, report)


def in_background(call) -> tuple[threading.Thread, dict]:
    """Start call() in a thread; the dict gets "result" or "error" (the failure a fault test looks at)."""
    outcome: dict = {}

    def body():
        try:
            outcome["result"] = call()
        except BaseException as exc:  # noqa: BLE001 - recorded for the test to inspect
            outcome["error"] = exc

    worker = threading.Thread(target=body, daemon=True)
    worker.start()
    return worker, outcome
