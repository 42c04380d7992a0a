"""Shared fixtures: real lab hosts (systemd-nspawn) and an in-process Prefect harness.

The suite leaves the operator's own fleet alone. Before anything else, this module sets for the whole
session (and every process a test starts, which inherits it):
- PRESSFLEET_LAB_NAMESPACE=test: the lab of the tests, with its own bridge, address range (10.201.0.0/24),
  apt proxy, mirror server and hosts folder; `lab down --all` there never stops the demo's hosts;
- PRESSFLEET_STATE, PREFECT_HOME: a temporary folder (never `.state/` or ~/.prefect), PREFECT_API_URL unset
  and PRESSFLEET_PREFECT_PORT a free port, so a `pressfleet` command a test runs never finds the demo's
  Prefect server; tests that want a Prefect API pass the harness's or the test stack's.
Lab hosts booted here are named `pt-*`; each is torn down at the end of the session, by PID. They boot from the
pristine template, or (`stack=True`, `stack_hosts`, `writable_host`) from the lab's stack template, which has the
stack's Debian packages installed already (built on first need, once per machine, about a minute).
Under `make test` (PRESSFLEET_NO_SKIP=1) a skipped test fails: CI must really run every test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time


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
from hypothesis import settings as hypothesis_settings  # noqa: E402

# An example's wall time on a loaded 2-core machine (the lab's hosts share it) says nothing about the code.
hypothesis_settings.register_profile("pressfleet", deadline=None)
hypothesis_settings.load_profile("pressfleet")

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


def stack_packages() -> list[str]:
    """The stack's Debian packages (what the provision flow installs): the stack template's list."""
    from tasks.base import stack_packages as packages

    return packages()


class LabPool:
    """Boots lab hosts on demand for the session and stops them all at its end.

    `stack=True` boots a host from the lab's stack template (the stack's Debian packages already installed,
    built once per machine on first need): for tests whose point is not the install. Tests of installing
    packages or of a pristine host keep the default (the pristine template)."""

    def __init__(self) -> None:
        self.hosts: dict[str, lab.LabHost] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _up(name: str, stack: bool) -> lab.LabHost:
        return lab.up(name, log=lambda m: None, packages=stack_packages() if stack else None)

    @staticmethod
    def _template(stack: bool) -> str:
        return lab.stack_template_path(stack_packages()).name if stack else "pristine"

    def get(self, short: str, *, stack: bool = False) -> lab.LabHost:
        """Host SHORT (prefixed), booted if it is not up; one of the other template is booted again."""
        name = TEST_PREFIX + short
        with self._lock:
            known = self.hosts.get(name)
            if known is None or not lab.is_running(name) or known.template != self._template(stack):
                lab.down(name)
                self.hosts[name] = self._up(name, stack)
            return self.hosts[name]

    def fresh(self, short: str, *, stack: bool = False) -> lab.LabHost:
        """A host just booted from its template (pristine, or the stack's), even if one of that name was used
        before in this session."""
        name = TEST_PREFIX + short
        with self._lock:
            lab.down(name)
            self.hosts[name] = self._up(name, stack)
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


STACK_FIXTURES = {"stack_hosts", "writable_host"}
_wants_stack = threading.Event()


def pytest_collection_modifyitems(session, config, items):
    """Note whether the session will boot stack-template hosts (see lab_pool)."""
    if any(STACK_FIXTURES & set(getattr(item, "fixturenames", ())) for item in items):
        _wants_stack.set()


def _prebuild_stack_template() -> None:
    """Build the stack template in the background (the first stack host waits for it under its lock), so that
    on a fresh machine its apt install overlaps the session's pristine `provisioned` host's."""
    def build():
        try:
            lab.ensure_stack_template(stack_packages(), log=lambda m: None)
        except Exception:  # noqa: BLE001 - the first stack host builds it again and reports why
            pass

    if _wants_stack.is_set():
        threading.Thread(target=build, name="stack-template", daemon=True).start()


@pytest.fixture(scope="session")
def lab_pool():
    try:
        lab.preflight()
        lab.ensure_template()
    except lab.LabError as exc:
        pytest.fail(f"the lab cannot run here: {exc}", pytrace=False)
    _prebuild_stack_template()
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
        self.cut: dict = {}  # what cutting its first run's connection did (see the provisioned fixture)

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


@contextlib.contextmanager
def held_by_another_run(sites, job: str, **lock_options):
    """While the block runs, a thread holds `site_lock(sites, job, **lock_options)`, as a second flow run on
    another worker would."""
    from pressfleet.fleet.locks import site_lock

    held, release = threading.Event(), threading.Event()

    def other_run():
        with site_lock(sites, job, **lock_options):
            held.set()
            release.wait(120)

    holder = threading.Thread(target=other_run, daemon=True)
    holder.start()
    try:
        assert held.wait(60), "the other run never got its locks"
        yield
    finally:
        release.set()
        holder.join(60)


def unreachable_server(**fields):
    """A Server block for a closed port on this machine, with a fresh key: a run that reaches for the host
    fails on a refused connection, so one that never gets there is seen."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from blocks.server import Server
    from tests.storage.conftest import free_port

    key = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()).decode()
    return Server(**{"address": "127.0.0.1", "port": free_port(), "private_key": key, **fields})


def save_copy(block, name: str):
    """A new copy of BLOCK saved under NAME (returned). Prefect's `save(name, overwrite=True)` on a block object
    that was saved or loaded before updates *that* document by its id (ObjectNotFound once it is deleted), so a
    session fixture's block is never itself saved under a test's name."""
    copy = type(block)(**block.model_dump())
    copy.save(name, overwrite=True)
    return copy


# The PID of the sshd process serving the session that runs `apt-get install` (its nearest sshd ancestor).
SSHD_OF_APT = r"""
p=$(pgrep -f '^apt-get .*install' | head -1)
while [ -n "$p" ] && [ "$p" != 1 ]; do
  if [ "$(cat /proc/$p/comm)" = sshd ]; then echo "$p"; break; fi
  p=$(ps -o ppid= -p "$p" | tr -d ' ')
done
"""


def cut_while_apt_installs(host: lab.LabHost, call) -> dict:
    """Run CALL in a thread and kill (SIGKILL) the sshd process serving its session once `apt-get install`
    runs under it: the connection drops half-way. Returns {"killed": bool, "error": what CALL raised, if any}."""
    from pressfleet.ssh.remote import run

    outcome: dict = {"killed": False}

    def target():
        try:
            outcome["result"] = call()
        except BaseException as exc:  # noqa: BLE001 - the failure is what the caller looks at
            outcome["error"] = exc

    worker = threading.Thread(target=target)
    worker.start()
    with connect_lab(host) as watcher:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and worker.is_alive():
            sshd = run(watcher, ["sh", "-c", SSHD_OF_APT], check=False).stdout.strip()
            if sshd.isdigit():
                run(watcher, ["kill", "-9", sshd], check=False)
                outcome["killed"] = True
                break
            time.sleep(0.2)
    worker.join(600)
    return outcome


@pytest.fixture(scope="session")
def provisioned(lab_pool, prefect_harness) -> Provisioned:
    """A pristine lab host turned into a WordPress server by provision_wordpress (once per session).

    On the way its first run's SSH session is cut while apt-get installs the stack, and the re-run completes
    it (test_provision.py's dropped-connection test checks `cut`): one pristine install serves both."""
    from flows.provision_wordpress import provision_wordpress
    from pressfleet.lab.blocks import server_for

    host = lab_pool.fresh("w")
    server = server_for(host)
    site = make_site()
    cut = cut_while_apt_installs(host, lambda: provision_wordpress(server=server, site=site))
    report = provision_wordpress(server=server, site=site)
    provisioned = Provisioned(host, server, site, report)
    provisioned.cut = cut
    return provisioned


@pytest.fixture(scope="session")
def stack_hosts(lab_pool) -> list[lab.LabHost]:
    """Two lab hosts booted from the stack template (packages installed, nothing provisioned): cheap hosts for
    fleet and fan-out tests. Provisioning one takes a re-provision's packages step plus the rest."""
    return [lab_pool.get(short, stack=True) for short in ("s1", "s2")]


def new_key() -> tuple[str, str]:
    """(private key text, public key line) of a fresh Ed25519 key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return private, public


_HUMAN = r"""
set -eu
name=$1 key=$2; shift 2
id -u "$name" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$name"
for g in "$@"; do usermod -a -G "$g" "$name"; done
install -d -m 700 -o "$name" -g "$name" "/home/$name/.ssh"
printf '%s\n' "$key" > "/home/$name/.ssh/authorized_keys"
chown "$name:$name" "/home/$name/.ssh/authorized_keys"; chmod 600 "/home/$name/.ssh/authorized_keys"
"""


def add_human(conn, name: str, groups: list[str]) -> str:
    """A human account NAME with an SSH key of its own in GROUPS; returns its private key."""
    from pressfleet.ssh.remote import run

    private, public = new_key()
    run(conn, ["sh", "-c", _HUMAN, "sh", name, public, *groups])
    return private


class WritableHost:
    """A stack-template lab host whose site `priv` has "PHP may write only to uploads" off (its user owns its
    web root), with two human SSH accounts made before pressfleet ran: alice (in sudo) and bob (named on the
    Server block, `server`). Shared by the privilege and re-provisioning modules (each adds its own site)."""

    lab: lab.LabHost
    server: object
    keys: dict[str, str]
    site: object
    report: object


@pytest.fixture(scope="session")
def writable_host(lab_pool, prefect_harness) -> WritableHost:
    from flows.provision_wordpress import provision_wordpress
    from pressfleet.lab.blocks import server_for

    h = WritableHost()
    h.lab = lab_pool.fresh("wr", stack=True)
    base = server_for(h.lab)
    conn = base.connect()
    # Before pressfleet ever runs: an admin in Debian's sudo group, and a deploy account named on the block.
    h.keys = {"alice": add_human(conn, "alice", ["sudo"]), "bob": add_human(conn, "bob", [])}
    conn.close()
    h.server = base.model_copy(update={"ssh_admins": ["bob"]})
    h.site = make_site(name="priv", domain="priv.lab.test", uploads_only_writable=False)
    h.report = provision_wordpress(server=h.server, site=h.site)
    return h


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
