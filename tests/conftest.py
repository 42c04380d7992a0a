"""Shared fixtures: real lab hosts (systemd-nspawn) and an in-process Prefect harness.

Lab hosts booted here are named `pt-*` so they never collide with hosts a person runs for the
demo; each is torn down at the end of the session, by PID.
"""

from __future__ import annotations

import subprocess
import threading

import pytest

from pressfleet import lab

import os

# Another prefix lets two sessions share the machine (e.g. a developer's run beside CI): PRESSFLEET_TEST_PREFIX=pu-
TEST_PREFIX = os.environ.get("PRESSFLEET_TEST_PREFIX", "pt-")


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
    from pressfleet.labblocks import server_for

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
    from pressfleet.labblocks import server_for

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
