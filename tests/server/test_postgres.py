"""The Prefect server of pressfleet.stack.control on PostgreSQL 15 instead of SQLite.

A private PostgreSQL cluster is created for the test by tests/pg.py (initdb as the `postgres` user, trust
auth, data dir and unix socket in a temporary folder, TCP on 127.0.0.1 and a free port), the stack's
server runs on it, a flow run recorded through the API is read back through the API and straight
from PostgreSQL; both servers are stopped by PID.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest

from pressfleet.stack import control as stack
from pressfleet.paths import ROOT
from tests.pg import running_cluster
from tests.server.conftest import api_settings, make_config, pid_alive

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

DB_USER = "prefect"
DB_NAME = "prefect"


async def _query(url: str, sql: str) -> list[tuple]:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


@pytest.fixture
def pg_cluster():
    with running_cluster(DB_USER, [DB_NAME]) as cluster:
        yield cluster


def test_prefect_server_on_postgres(pg_cluster, tmp_path):
    url = pg_cluster.url("asyncpg")
    cfg = make_config(tmp_path, database_url=url)
    env = stack.prefect_env(cfg)
    assert env["PREFECT_API_DATABASE_CONNECTION_URL"] == url
    try:
        t0 = time.monotonic()
        server_pid = stack.start_server(cfg)
        print(f"prefect server on postgres healthy in {time.monotonic() - t0:.1f} s (pid {server_pid})")
        assert stack.healthy(cfg)
        st = stack.status(cfg)
        assert st.database == url and st.pids["server"] == server_pid
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
            url,
            "SELECT f.name, fr.state_type::text, fr.id::text FROM flow_run fr JOIN flow f ON f.id = fr.flow_id",
        ))
        assert rows == [("pf-test-add", "COMPLETED", str(runs[0].id))]
    finally:
        stopped = stack.down(cfg)
    assert set(stopped) == {"server"} and not pid_alive(stopped["server"])
    assert pg_cluster.proc.poll() is None  # postgres outlives the prefect server, stopped by the fixture
