"""The Prefect server of pressfleet.stack on PostgreSQL 15 instead of SQLite.

A private PostgreSQL cluster is created for the test (initdb as the `postgres` user, trust auth,
data dir and unix socket in a temporary folder, TCP on 127.0.0.1 and a free port), the stack's
server runs on it, a flow run recorded through the API is read back through the API and straight
from PostgreSQL; both servers are stopped by PID.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pressfleet import stack
from pressfleet.paths import ROOT
from tests.server.conftest import api_settings, free_port, make_config, pid_alive

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

PG_BIN = Path("/usr/lib/postgresql/15/bin")
DB_USER = "prefect"
DB_NAME = "prefect"


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


class PgCluster:
    def __init__(self) -> None:
        self.as_root = os.geteuid() == 0
        if self.as_root:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("no `postgres` user to run PostgreSQL as (Debian package postgresql-15)")
        # not under pytest's tmp dir: that is mode 0700 for root, and the server runs as postgres
        self.base = Path(tempfile.mkdtemp(prefix="pressfleet-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        if self.as_root:
            shutil.chown(self.base, "postgres", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{DB_USER}@127.0.0.1:{self.port}/{DB_NAME}"

    def _as_postgres(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if self.as_root else cmd

    def start(self, timeout: float = 60.0) -> None:
        subprocess.run(
            self._as_postgres(
                [str(PG_BIN / "initdb"), "-D", str(self.data), "--auth=trust", f"--username={DB_USER}",
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
                [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", DB_USER],
                capture_output=True,
            )
            if ready.returncode == 0:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"postgres did not accept connections in {timeout:.0f} s:\n{_tail(self.log)}")
        subprocess.run(
            [str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", DB_USER, DB_NAME],
            check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=60,
        )

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


async def _query(url: str, sql: str) -> list[tuple]:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


@pytest.fixture
def pg_cluster():
    if not (PG_BIN / "initdb").exists() or not (PG_BIN / "postgres").exists():
        pytest.skip(f"PostgreSQL 15 server binaries not found in {PG_BIN} (Debian package postgresql-15)")
    cluster = PgCluster()
    t0 = time.monotonic()
    try:
        cluster.start()
        print(f"postgres 15 cluster ready in {time.monotonic() - t0:.1f} s (pid {cluster.proc.pid})")
        yield cluster
    finally:
        pid = cluster.proc.pid if cluster.proc else None
        cluster.stop()
        assert pid is None or not pid_alive(pid), f"postgres pid {pid} survived"


def test_prefect_server_on_postgres(pg_cluster, tmp_path):
    cfg = make_config(tmp_path, database_url=pg_cluster.url)
    env = stack.prefect_env(cfg)
    assert env["PREFECT_API_DATABASE_CONNECTION_URL"] == pg_cluster.url
    try:
        t0 = time.monotonic()
        server_pid = stack.start_server(cfg)
        print(f"prefect server on postgres healthy in {time.monotonic() - t0:.1f} s (pid {server_pid})")
        assert stack.healthy(cfg)
        st = stack.status(cfg)
        assert st.database == pg_cluster.url and st.pids["server"] == server_pid
        assert not (cfg.home / "prefect.db").exists()  # not SQLite

        # a flow run recorded through the API, by a separate process with the stack's environment
        t0 = time.monotonic()
        res = subprocess.run(
            [sys.executable, "-c",
             "import json; from tests.server.flows_for_tests import add; print(json.dumps(add(a=20, b=22)))"],
            env=env, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180,
        )
        assert res.returncode == 0, res.stdout + res.stderr
        assert json.loads(res.stdout.strip().splitlines()[-1])["sum"] == 42
        print(f"flow run against the postgres-backed API in {time.monotonic() - t0:.1f} s")

        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowFilter, FlowFilterName

        with api_settings(cfg, tmp_path / "client-home"):
            with get_client(sync_client=True) as client:
                runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["pf-test-add"])))
        assert len(runs) == 1
        assert runs[0].state.is_completed() and runs[0].parameters == {"a": 20, "b": 22}

        rows = asyncio.run(_query(
            pg_cluster.url,
            "SELECT f.name, fr.state_type::text, fr.id::text FROM flow_run fr JOIN flow f ON f.id = fr.flow_id",
        ))
        assert rows == [("pf-test-add", "COMPLETED", str(runs[0].id))]
    finally:
        stopped = stack.down(cfg)
    assert set(stopped) == {"server"} and not pid_alive(stopped["server"])
    assert pg_cluster.proc.poll() is None  # postgres outlives the prefect server, stopped by the fixture
