"""collect-metrics against real lab hosts: a pristine host, the provisioned WordPress host, unreachable hosts,
and a round stored twice.

Uses the session fixtures `lab_pool`, `provisioned` and `prefect_harness` from tests/conftest.py; this
module's own hosts are pt-mc and pt-mcx (stopped again by the test that uses it).
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from blocks.server import Server
from blocks.storage import LocalStorage
from flows.collect_metrics import ARTIFACT_KEY, CollectSummary, HostResult, collect_metrics, host_label
from pressfleet.lab import hosts as lab
from pressfleet.lab.blocks import server_for
from pressfleet.metrics.store import MetricsStore
from pressfleet.ssh.remote import run
from tests.conftest import connect_lab

pytestmark = pytest.mark.lab

UNUSED_LAB_ADDRESS = str(lab.namespace().network.network_address + 250)  # on the bridge, no host there


@pytest.fixture(autouse=True)
def _own_state(tmp_path, monkeypatch):
    """Counters of previous rounds and the default store live in this test's folder, not in .state/."""
    monkeypatch.setenv("PRESSFLEET_STATE", str(tmp_path / "state"))


@pytest.fixture
def store_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'metrics.db'}"


@pytest.fixture
def plain(lab_pool):
    return lab_pool.get("mc")


def one(summary: CollectSummary, host: str) -> HostResult:
    [result] = [h for h in summary.hosts if h.host == host]
    return result


def remote_text(host, *args: str) -> str:
    with connect_lab(host) as conn:
        return run(conn, list(args)).stdout


def test_a_plain_host(plain, prefect_harness, store_url):
    server = server_for(plain)
    summary = collect_metrics(servers=[server], store_url=store_url)
    assert isinstance(summary, CollectSummary)
    assert (summary.up, summary.down) == (1, 0) and summary.backend == "sqlite"
    h = one(summary, plain.address)
    assert h.up and h.error is None and h.notes == [] and h.sites == []
    v = h.values
    meminfo = {k: v_.split() for k, v_ in (line.split(":", 1) for line in remote_text(plain, "cat", "/proc/meminfo").splitlines())}
    assert v["mem_total_bytes"] == int(meminfo["MemTotal"][0]) * 1024
    assert 0 < v["mem_used_bytes"] < v["mem_total_bytes"]
    assert v["cpu_count"] == int(remote_text(plain, "nproc").strip())
    assert 0 <= v["cpu_percent"] <= 100 and v["load1"] >= 0
    assert v["swap_used_bytes"] >= 0
    # the root filesystem (an overlay in the lab), sized as df on the host sees it
    df = remote_text(plain, "df", "-P", "-B1", "/").splitlines()[1].split()
    assert v["disk_total_bytes{mount=/}"] == int(df[1])
    assert 0 < v["disk_used_bytes{mount=/}"] <= v["disk_total_bytes{mount=/}"]
    assert 0 < v["inodes_used{mount=/}"] < v["inodes_total{mount=/}"]
    assert not any(k.startswith(("disk_", "inodes_")) and "mount=/proc" in k for k in v)
    assert v["net_rx_bytes"] > 0 and v["net_tx_bytes"] > 0  # this very SSH session went through host0
    # a pristine host has no nginx, PHP, MariaDB or Redis: those metrics are absent, not zero
    assert not any(k.startswith(("nginx_", "php_", "mariadb_", "redis_", "http_", "tls_")) for k in v)
    assert v["up"] == 1.0
    # the round is in the store, every point at the round's time
    store = MetricsStore(store_url)
    try:
        assert store.count() == summary.points == summary.stored == len(v)
        s = store.read_series("mem_total_bytes", plain.address)
        assert s.tolist() == [v["mem_total_bytes"]] and s.index[0] == summary.time
        assert store.read_series("disk_total_bytes", plain.address, labels={"mount": "/"}).tolist() == [int(df[1])]
    finally:
        store.close()


def verified_backup(folder: Path, site: str, taken: datetime) -> LocalStorage:
    """A LocalStorage block whose catalog holds one backup of SITE taken at TAKEN, proved by a restore test."""
    from pressfleet.backup import catalog
    from pressfleet.backup.manifest import BackupManifest

    folder.mkdir()
    block = LocalStorage(path=str(folder))
    store = block.store()
    backup_id = catalog.new_backup_id(taken)
    manifest = BackupManifest(site=site, backup_id=backup_id, started_at=taken, ended_at=taken + timedelta(seconds=30),
                              wordpress_version="6.1.1")
    store.put_bytes(catalog.manifest_key(site, backup_id), manifest.to_json().encode())
    catalog.mark_verified(store, site, catalog.Verification(backup_id=backup_id, verified_at=taken + timedelta(hours=1),
                                                            seconds=42.0, target="pt-test"))
    assert catalog.newest_verified(store, site) == taken
    return block


def test_the_provisioned_wordpress_host(provisioned, prefect_harness, store_url, tmp_path):
    domain = provisioned.config.domain
    host = host_label(provisioned.server)
    taken = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)
    storage = verified_backup(tmp_path / "backups", provisioned.config.name, taken)
    first = collect_metrics(servers=[provisioned.server], sites=[provisioned.site], storage=storage,
                            store_url=store_url)
    h = one(first, host)
    print(json.dumps(h.model_dump(mode="json"), indent=1))
    assert h.up and h.notes == [], h.notes
    assert h.sites == [domain]
    v = h.values
    assert v[f"backup_age_seconds{{site={domain}}}"] == (first.time - taken).total_seconds()
    assert v[f"http_status{{site={domain}}}"] == 200
    assert 0 < v[f"ttfb_seconds{{site={domain}}}"] < 10
    # the self-signed certificate provisioning made: 397 days
    assert 390 < v[f"tls_days_left{{site={domain}}}"] <= 397
    end = remote_text(provisioned.host, "openssl", "x509", "-noout", "-enddate", "-in", provisioned.config.tls_cert_path)
    expires = datetime.strptime(end.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y %Z").replace(tzinfo=timezone.utc)
    assert v[f"tls_days_left{{site={domain}}}"] == pytest.approx((expires - first.time).total_seconds() / 86400, abs=0.01)
    assert v["nginx_requests"] >= 1 and v["nginx_active_connections"] >= 1  # the status request itself
    assert v["php_active_processes"] >= 0 and v["php_max_children_reached"] >= 0 and v["php_slow_requests"] >= 0
    assert v["mariadb_threads_connected"] >= 1 and v["mariadb_queries"] > 0 and v["mariadb_slow_queries"] >= 0
    assert 0 <= v["mariadb_buffer_pool_hit_ratio"] <= 1
    # WordPress's tables, measured by MariaDB itself
    size = remote_text(provisioned.host, "mariadb", "-N", "-B", "-e",
                       "SELECT SUM(data_length + index_length) FROM information_schema.tables "
                       f"WHERE table_schema = '{provisioned.config.db_name}'")
    assert v[f"mariadb_db_bytes{{site={domain}}}"] == int(size.strip()) > 0
    assert v["redis_used_memory_bytes"] > 0
    assert 0 <= v["redis_hit_ratio"] <= 1  # WordPress's object cache has been used: there are lookups
    # the status endpoints answer on loopback only: not from this machine
    outside = subprocess.run(["curl", "-sS", "--max-time", "3", f"http://{provisioned.host.address}:8081/nginx-status"],
                             capture_output=True, text=True)
    assert outside.returncode != 0 and "Active connections" not in outside.stdout

    for _ in range(5):
        assert provisioned.curl("/").stdout
    second = collect_metrics(servers=[provisioned.server], sites=[provisioned.site], store_url=store_url)
    v2 = one(second, host).values
    assert v2["nginx_requests"] >= v["nginx_requests"] + 5
    store = MetricsStore(store_url)
    try:
        assert store.read_series("nginx_requests", host).tolist() == [v["nginx_requests"], v2["nginx_requests"]]
        assert store.read_series("http_status", host, site=domain).tolist() == [200.0, 200.0]
    finally:
        store.close()


def test_unreachable_hosts_are_down_and_the_others_collected(lab_pool, plain, prefect_harness, store_url):
    stopped = lab_pool.get("mcx")
    stopped_server = server_for(stopped)
    lab_pool.stop("mcx")
    nobody = Server(address=UNUSED_LAB_ADDRESS, private_key=Path(plain.private_key_path).read_text(),
                    host_key=plain.host_key)
    t0 = time.monotonic()
    summary = collect_metrics(servers=[nobody, server_for(plain), stopped_server], store_url=store_url)
    elapsed = time.monotonic() - t0
    assert (summary.up, summary.down) == (1, 2)
    assert [h.host for h in summary.hosts] == [UNUSED_LAB_ADDRESS, plain.address, stopped.address]
    for down in (one(summary, UNUSED_LAB_ADDRESS), one(summary, stopped.address)):
        assert not down.up and down.values == {"up": 0.0} and down.error
    assert one(summary, plain.address).values["mem_total_bytes"] > 0
    assert summary.seconds < 15 and elapsed < 60  # the connect timeout bounds a dead host, in parallel
    store = MetricsStore(store_url)
    try:
        assert store.read_series("up", UNUSED_LAB_ADDRESS).tolist() == [0.0]
        assert store.read_series("up", stopped.address).tolist() == [0.0]
        assert store.read_series("up", plain.address).tolist() == [1.0]
        assert store.read_series("mem_total_bytes", UNUSED_LAB_ADDRESS).empty
    finally:
        store.close()


def test_a_round_stored_twice_is_stored_once(plain, prefect_harness, store_url):
    at = datetime.now(timezone.utc).replace(microsecond=0)
    first = collect_metrics(servers=[server_for(plain)], store_url=store_url, at=at)
    assert first.stored == first.points > 10 and first.time == at
    again = collect_metrics(servers=[server_for(plain)], store_url=store_url, at=at)
    assert again.time == at and again.points == first.points and again.stored == 0
    store = MetricsStore(store_url)
    try:
        assert store.count() == first.points
        # the first round's values are the ones kept
        kept = store.read_series("net_rx_bytes", plain.address).tolist()
        assert kept == [one(first, plain.address).values["net_rx_bytes"]]
    finally:
        store.close()


def test_the_round_is_published_as_a_table_artifact(plain, prefect_harness, store_url):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    summary = collect_metrics(servers=[server_for(plain)], store_url=store_url)
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[ARTIFACT_KEY])))
    latest = max(artifacts, key=lambda a: a.created)
    rows = latest.data if isinstance(latest.data, list) else json.loads(latest.data)
    [row] = [r for r in rows if r["host"] == plain.address]
    assert row["up"] == "yes" and row["cpu"].endswith("%") and row["disk /"].endswith("%")
    assert f"{summary.up} of 1 servers up" in latest.description


def test_the_collect_command(plain, prefect_harness, store_url):
    import typer
    from typer.testing import CliRunner

    from pressfleet.cli.collect import EXIT_FAILED, EXIT_HOST_DOWN, register

    app = typer.Typer()
    app.callback()(lambda: None)  # a command group, as in `pressfleet`
    register(app)
    server_for(plain).save("pt-mc-collect", overwrite=True)
    Server(address=UNUSED_LAB_ADDRESS, private_key=Path(plain.private_key_path).read_text(),
           host_key=plain.host_key).save("pt-mc-nobody", overwrite=True)
    runner = CliRunner()

    ok = runner.invoke(app, ["collect", "pt-mc-collect", "--no-sites", "--store-url", store_url, "--json"])
    assert ok.exit_code == 0, ok.output
    summary = json.loads(ok.stdout)
    assert summary["up"] == 1 and summary["hosts"][0]["host"] == plain.address
    assert summary["hosts"][0]["values"]["mem_total_bytes"] > 0

    down = runner.invoke(app, ["collect", "pt-mc-collect", "pt-mc-nobody", "--no-sites", "--store-url", store_url])
    assert down.exit_code == EXIT_HOST_DOWN, down.output
    lines = down.stdout.splitlines()
    assert lines[0].split()[:3] == ["host", "up", "cpu"]
    assert any(line.startswith(UNUSED_LAB_ADDRESS) and " NO " in line for line in lines)
    assert "1 of 2 servers up" in lines[-1]

    unknown = runner.invoke(app, ["collect", "pt-no-such-block", "--store-url", store_url])
    assert unknown.exit_code == EXIT_FAILED and "refused before anything ran" in unknown.output
    not_storage = runner.invoke(app, ["collect", "pt-mc-collect", "--storage", "server/pt-mc-collect",
                                      "--store-url", store_url])
    assert not_storage.exit_code == EXIT_FAILED and "is not a storage block" in not_storage.output


def test_no_servers_means_every_saved_server_block(plain, prefect_harness, store_url):
    from flows.collect_metrics import saved_block_names

    server_for(plain).save("pt-mc-saved", overwrite=True)
    names = saved_block_names("server")
    assert "pt-mc-saved" in names
    server_for(plain).save("pt-mc-saved-too", overwrite=True)  # the same host under a second name
    summary = collect_metrics(sites=[], store_url=store_url)
    addresses = {Server.load(name).address for name in saved_block_names("server")}
    assert sorted(h.host for h in summary.hosts) == sorted(addresses)  # each host once
    assert one(summary, plain.address).up
