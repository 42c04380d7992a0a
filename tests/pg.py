"""A private PostgreSQL 15 cluster for tests: Debian's server binaries, nothing installed or configured.

`PgCluster().start()` runs initdb in a fresh temporary folder (as the `postgres` user when the tests run as
root, trust authentication), starts the postmaster on 127.0.0.1 and a free port with its unix socket in that
folder, and creates the databases asked for; `stop()` stops it by its PID (fast shutdown, SIGKILL of its
process group if it lingers) and removes the folder. `running_cluster()` wraps that for a fixture and checks
that the server's PID is gone afterwards.

Used by tests/server/test_postgres.py (the Prefect server on PostgreSQL) and by the metrics store tests
(tests/unit/test_metrics_store.py), which run on SQLite and on this cluster.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    """Alive and not a zombie (an exited child of this process is reaped here)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def skip_unless_available() -> None:
    """Skip the calling test (or fixture) when this machine cannot run a PostgreSQL 15 cluster."""
    if not (PG_BIN / "initdb").exists() or not (PG_BIN / "postgres").exists():
        pytest.skip(f"PostgreSQL 15 server binaries not found in {PG_BIN} (Debian package postgresql-15)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("no `postgres` user to run PostgreSQL as (Debian package postgresql-15)")


class PgCluster:
    """One private cluster; `user` is its superuser (trust auth on 127.0.0.1 and the socket)."""

    def __init__(self, user: str = "pressfleet", databases: Sequence[str] = ("pressfleet",)) -> None:
        skip_unless_available()
        self.as_root = os.geteuid() == 0
        self.user = user
        self.databases = list(databases)
        # not under pytest's tmp dir: that is mode 0700 for root, and the server runs as postgres
        self.base = Path(tempfile.mkdtemp(prefix="pressfleet-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        if self.as_root:
            shutil.chown(self.base, "postgres", "postgres")

    def url(self, driver: str = "psycopg", database: str | None = None) -> str:
        """A SQLAlchemy URL: driver `psycopg` (synchronous, psycopg 3) or `asyncpg`."""
        return f"postgresql+{driver}://{self.user}@127.0.0.1:{self.port}/{database or self.databases[0]}"

    def _as_postgres(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if self.as_root else cmd

    def start(self, timeout: float = 60.0) -> PgCluster:
        subprocess.run(
            self._as_postgres(
                [str(PG_BIN / "initdb"), "-D", str(self.data), "--auth=trust", f"--username={self.user}",
                 "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions"]
            ),
            check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=120,
        )
        user = {"user": "postgres", "group": "postgres", "extra_groups": []} if self.as_root else {}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(PG_BIN / "postgres"), "-D", str(self.data),
                 "-c", "listen_addresses=127.0.0.1", "-p", str(self.port),
                 "-c", f"unix_socket_directories={self.base}",
                 "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, **user,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}:\n{_tail(self.log)}")
            ready = subprocess.run(
                [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user],
                capture_output=True,
            )
            if ready.returncode == 0:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"postgres did not accept connections in {timeout:.0f} s:\n{_tail(self.log)}")
        for database in self.databases:
            subprocess.run(
                [str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, database],
                check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=60,
            )
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Fast shutdown (SIGINT) of the postmaster by its PID; SIGKILL its group if it lingers."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def running_cluster(user: str = "pressfleet", databases: Sequence[str] = ("pressfleet",),
                    log=print) -> Iterator[PgCluster]:
    """A started cluster, stopped (and its PID checked gone) on the way out."""
    cluster = PgCluster(user, databases)
    t0 = time.monotonic()
    try:
        cluster.start()
        log(f"postgres 15 cluster ready in {time.monotonic() - t0:.1f} s (pid {cluster.proc.pid})")
        yield cluster
    finally:
        pid = cluster.proc.pid if cluster.proc else None
        cluster.stop()
        assert pid is None or not pid_alive(pid), f"postgres pid {pid} survived"
