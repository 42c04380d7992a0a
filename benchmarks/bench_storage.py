"""Storage figures: upload and download MB/s of a 200 MB stream to each backend (median of 3).

The cloud backends run against their emulators on loopback (moto, gcp-storage-emulator, Azurite),
started here and stopped by PID; client and server share this machine's cores, so the figures are
the cost of pressfleet's streaming path (part reads, sha256, SDK, HTTP), not a cloud's bandwidth.
MB = 10^6 bytes. The upload includes hashing the stream; the download reads 1 MiB at a time.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pressfleet.storage.base import DEFAULT_PART_SIZE, MiB

SIZE = 200 * 1000 * 1000
RUNS = 3
REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
AZURITE = REPO / "node_modules" / ".bin" / "azurite-blob"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class PatternStream(io.RawIOBase):
    """`size` bytes cut from one 16 MiB random block (generating random data would dominate the timing)."""

    block = os.urandom(16 * MiB)

    def __init__(self, size: int) -> None:
        self.size, self.pos = size, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.size - self.pos
        n = min(n, self.size - self.pos)
        out, got = [], 0
        while got < n:
            off = (self.pos + got) % len(self.block)
            take = min(n - got, len(self.block) - off)
            out.append(self.block[off:off + take])
            got += take
        self.pos += n
        return out[0] if len(out) == 1 else b"".join(out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    def __init__(self, argv: list[str], port: int, log_dir: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        log = open(log_dir / f"{Path(argv[0]).name}-{port}.log", "wb")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, cwd=log_dir)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{argv[0]} did not start on port {port}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _fs_type(path: Path) -> str:
    best, fstype = "", "?"
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            mnt = parts[1]
            if str(path).startswith(mnt) and len(mnt) > len(best):
                best, fstype = mnt, parts[2]
    return fstype


def _measure(store) -> dict:
    ups, downs = [], []
    for i in range(RUNS):
        key = f"bench/run{i}.bin"
        t0 = time.perf_counter()
        obj = store.put_stream(key, PatternStream(SIZE), size_hint=SIZE)
        ups.append(SIZE / 1e6 / (time.perf_counter() - t0))
        assert obj.size == SIZE
        t0 = time.perf_counter()
        got = 0
        with store.open_read(key) as f:
            while True:
                chunk = f.read(MiB)
                if not chunk:
                    break
                got += len(chunk)
        downs.append(SIZE / 1e6 / (time.perf_counter() - t0))
        assert got == SIZE
        store.delete(key)  # keep the emulators' memory flat
    return {
        "upload_mb_s": round(statistics.median(ups), 1),
        "download_mb_s": round(statistics.median(downs), 1),
        "upload_runs_mb_s": [round(x, 1) for x in ups],
        "download_runs_mb_s": [round(x, 1) for x in downs],
    }


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def run(write_result) -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="pressfleet-bench-storage-"))
    servers: list[_Server] = []
    results: dict = {}
    started = time.monotonic()
    try:
        from pressfleet.storage.local import LocalStore

        (work / "local").mkdir()
        results["local"] = {**_measure(LocalStore(work / "local")), "filesystem": _fs_type(work)}

        import boto3

        from pressfleet.storage.s3 import S3Store

        moto = _Server([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(p := _free_port())], p, work)
        servers.append(moto)
        boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket="bench")
        results["s3"] = _measure(S3Store("bench", endpoint_url=moto.url, access_key_id="testing",
                                         secret_access_key="testing"))
        moto.stop()

        from pressfleet.storage.gcs import GCSStore

        gcs = _Server([str(VENV_BIN / "gcp-storage-emulator"), "start", "--host", "127.0.0.1",
                       "--port", str(p := _free_port()), "--in-memory"], p, work)
        servers.append(gcs)
        store = GCSStore("bench", endpoint=gcs.url, project="bench")
        store.client.create_bucket("bench")
        results["gcs"] = _measure(store)
        gcs.stop()

        if AZURITE.exists():
            from pressfleet.storage.azure import AzureBlobStore

            az = _Server([str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(p := _free_port()),
                          "--inMemoryPersistence", "--skipApiVersionCheck", "--disableTelemetry", "--silent"], p, work)
            servers.append(az)
            conn = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
                    f"BlobEndpoint={az.url}/devstoreaccount1;")
            store = AzureBlobStore("bench", connection_string=conn)
            store.service.create_container("bench")
            results["azure"] = _measure(store)
            az.stop()
        else:
            results["azure"] = {"skipped": "Azurite is not installed (run `npm ci`)"}
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)

    azurite_version = "not installed"
    try:
        azurite_version = json.loads((REPO / "node_modules" / "azurite" / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        pass
    write_result("storage", {
        "object_bytes": SIZE,
        "unit": "MB/s, MB = 10^6 bytes",
        "runs": RUNS,
        "part_size_bytes": DEFAULT_PART_SIZE,
        "backends": results,
        "servers": {
            "s3": f"moto {_version('moto')}",
            "gcs": f"gcp-storage-emulator {_version('gcp-storage-emulator')}",
            "azure": f"azurite {azurite_version}",
        },
        "note": "emulators on loopback, sharing the client's cores; upload includes sha256 of the stream",
        "total_seconds": round(time.monotonic() - started, 1),
    })


if __name__ == "__main__":
    run(lambda name, data: print(name, json.dumps(data, indent=2)))
