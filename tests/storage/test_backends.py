"""The storage layer against real servers: one test body per behaviour, run on every backend.

Local-folder cases are marked ``unit``; the others talk to moto, gcp-storage-emulator and Azurite,
which tests/storage/conftest.py starts on free loopback ports for the session.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import time
import traceback
import tracemalloc
from datetime import datetime, timedelta, timezone

import pytest

from pressfleet.storage import InvalidKey, ObjectNotFound, ObjectStore, StorageError, validate_key
from pressfleet.storage.base import MiB

from .conftest import (
    AZURITE_ACCOUNT,
    CLOUD_BACKENDS,
    TEST_PART_SIZE,
    free_port,
    make_store,
    start_azurite,
    start_gcs,
    start_moto,
)

OBJECT_SIZE = 40 * MiB


class RandomStream(io.RawIOBase):
    """`size` pseudo-random bytes, produced on demand (never all in memory); optionally fails at `fail_at`."""

    def __init__(self, size: int, seed: int = 1, fail_at: int | None = None) -> None:
        self.size, self.pos, self.fail_at = size, 0, fail_at
        self.rng = random.Random(seed)
        self.sha = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.fail_at is not None and self.pos >= self.fail_at:
            raise OSError("source broke half-way")
        if n is None or n < 0:
            n = self.size - self.pos
        n = min(n, self.size - self.pos, 1 * MiB)
        if self.fail_at is not None:
            n = min(n, self.fail_at - self.pos)
        data = self.rng.randbytes(n)
        self.pos += n
        self.sha.update(data)
        return data


def sha256_of(stream, chunk: int = MiB) -> tuple[str, int]:
    h, total = hashlib.sha256(), 0
    with stream:
        while True:
            data = stream.read(chunk)
            if not data:
                break
            h.update(data)
            total += len(data)
    return h.hexdigest(), total


def keys(store, prefix: str = "") -> list[str]:
    return [o.key for o in store.list(prefix)]


# --- the same behaviour on every backend ------------------------------------------------------


def _reset_rss_peak() -> int:
    """Reset this process's resident-memory high-water mark (Linux) and return the current RSS in bytes."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _rss_peak()


def _rss_peak() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def test_round_trip_40mib_in_bounded_memory(store):
    assert isinstance(store, ObjectStore)
    src = RandomStream(OBJECT_SIZE, seed=7)
    store.in_flight = 1  # memory is about (in_flight + 2) parts; other tests run the default (2)
    store.exists("warm-up")  # SDK set-up (service models, connection pools) is a fixed cost: not measured
    tracemalloc.start()
    try:
        rss0 = _reset_rss_peak()
        obj = store.put_stream("site1/2026-01-31/files.tar.zst", src, metadata={"site": "site1"})
        up_rss = _rss_peak() - rss0
        _, up_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        rss0 = _reset_rss_peak()
        digest, size = sha256_of(store.open_read("site1/2026-01-31/files.tar.zst"))
        down_rss = _rss_peak() - rss0
        _, down_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert obj.key == "site1/2026-01-31/files.tar.zst"
    assert obj.size == size == OBJECT_SIZE
    assert obj.sha256 == digest == src.sha.hexdigest()
    # Eight 5 MiB parts went up and the object came back in 1-4 MiB pieces: the whole object was never
    # held in memory. Upload holds about three parts: one being sent, one being read (and its copy).
    report = (f"upload: Python peak {up_peak / MiB:.1f} MiB, RSS +{up_rss / MiB:.1f} MiB; "
              f"download: Python peak {down_peak / MiB:.1f} MiB, RSS +{down_rss / MiB:.1f} MiB")
    print(store.backend, report)
    assert up_peak < OBJECT_SIZE / 2, report
    assert up_rss < OBJECT_SIZE / 2, report
    assert down_rss < OBJECT_SIZE / 2, report
    if store.backend != "Azure Blob":
        assert down_peak < OBJECT_SIZE / 4, report
    # azure-storage-blob joins each ranged GET with list(response), and the response's __len__ is its
    # Content-Length: list() preallocates 8 bytes per byte of the 4 MiB chunk (32 MiB, never written, so
    # not resident). tracemalloc counts it; the RSS check above is the one that tells.
    [listed] = store.list("site1/")
    assert (listed.key, listed.size) == (obj.key, OBJECT_SIZE)
    stat = store.stat(obj.key)
    assert stat.size == OBJECT_SIZE and stat.metadata.get("site") == "site1"
    # recorded where the backend can at commit time: local and Azure always; S3 and GCS only for an object
    # that fits in one part (this one took eight)
    assert stat.sha256 == (obj.sha256 if store.backend in ("local folder", "Azure Blob") else None)


def test_list_exists_stat_delete(store):
    manifest = json.dumps({"site": "site1", "files": 3}).encode()
    a = store.put_bytes("site1/2026-01-31/manifest.json", manifest, metadata={"kind": "manifest"})
    store.put_bytes("site1/2026-02-01/manifest.json", b"{}")
    store.put_bytes("site10/2026-01-31/manifest.json", b"{}")
    store.put_bytes("site2/db.sql.zst", b"x" * 1000)
    empty = store.put_bytes("site2/empty", b"")

    assert a.sha256 == hashlib.sha256(manifest).hexdigest() and a.size == len(manifest)
    assert empty.size == 0 and empty.sha256 == hashlib.sha256(b"").hexdigest()
    assert keys(store) == ["site1/2026-01-31/manifest.json", "site1/2026-02-01/manifest.json",
                           "site10/2026-01-31/manifest.json", "site2/db.sql.zst", "site2/empty"]
    assert keys(store, "site1/") == ["site1/2026-01-31/manifest.json", "site1/2026-02-01/manifest.json"]
    assert keys(store, "site1") == keys(store, "site1/") + ["site10/2026-01-31/manifest.json"]
    assert keys(store, "site1/2026-01") == ["site1/2026-01-31/manifest.json"]
    assert keys(store, "nothing/") == []

    stat = store.stat("site1/2026-01-31/manifest.json")
    assert stat.size == len(manifest) and stat.sha256 == a.sha256  # small objects carry their digest
    assert dict(stat.metadata) == {"kind": "manifest"}
    assert json.loads(store.get_bytes("site1/2026-01-31/manifest.json")) == {"site": "site1", "files": 3}
    assert store.get_bytes("site2/empty") == b""
    with pytest.raises(StorageError, match="larger than"):
        store.get_bytes("site2/db.sql.zst", max_bytes=100)

    # overwrite replaces
    store.put_bytes("site2/db.sql.zst", b"y" * 10)
    assert store.get_bytes("site2/db.sql.zst") == b"y" * 10

    assert store.exists("site2/db.sql.zst") and not store.exists("site2/db.sql")
    store.delete("site2/db.sql.zst")
    assert not store.exists("site2/db.sql.zst")
    store.delete("site2/db.sql.zst")  # deleting what is gone is not an error
    assert keys(store, "site2/") == ["site2/empty"]

    with pytest.raises(ObjectNotFound) as err:
        store.open_read("site2/db.sql.zst")
    assert "'site2/db.sql.zst'" in str(err.value) and store.backend in str(err.value)
    with pytest.raises(ObjectNotFound):
        store.stat("missing/key")


def test_failure_half_way_leaves_no_object_and_a_rerun_succeeds(store):
    key = "site1/2026-01-31/db.sql.zst"
    store.put_bytes(key, b"yesterday's good backup")
    other = "site1/2026-02-01/db.sql.zst"

    with pytest.raises(OSError, match="source broke half-way"):
        store.put_stream(other, RandomStream(OBJECT_SIZE, seed=3, fail_at=20 * MiB))
    with pytest.raises(OSError, match="source broke half-way"):
        store.put_stream(key, RandomStream(OBJECT_SIZE, seed=4, fail_at=20 * MiB))

    assert keys(store) == [key]                       # nothing partial is listed
    assert not store.exists(other)
    assert store.get_bytes(key) == b"yesterday's good backup"  # a failed overwrite left the old object whole
    if store.backend == "S3":
        assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []
    if store.backend == "local folder":
        assert list((store.root / ".pressfleet" / "tmp").iterdir()) == []

    src = RandomStream(OBJECT_SIZE, seed=3)
    obj = store.put_stream(other, src)
    assert obj.size == OBJECT_SIZE and obj.sha256 == src.sha.hexdigest()
    assert sha256_of(store.open_read(other)) == (obj.sha256, OBJECT_SIZE)
    assert keys(store) == [key, other]


def test_stream_ending_on_a_part_boundary(store):
    """Exactly two parts: the last read returns nothing and the upload must still complete."""
    src = RandomStream(2 * store.part_size, seed=5)
    obj = store.put_stream("exact/two-parts.bin", src)
    assert obj.size == 2 * store.part_size
    assert sha256_of(store.open_read("exact/two-parts.bin")) == (src.sha.hexdigest(), obj.size)


def test_put_if_absent(store, request, tmp_path):
    """A conditional create: the first writer wins, every later or concurrent one gets None, nothing is replaced.

    On GCS this runs on fake-gcs-server: gcp-storage-emulator ignores ifGenerationMatch=0 (real GCS and
    fake-gcs-server answer 412)."""
    if store.backend == "GCS":
        store = make_store("gcs", request, tmp_path, attempts=2, gcs_emulator="fake_gcs_emulator")
    first = store.put_if_absent("locks/nightly", b"run-1")
    assert first is not None and first.sha256 == hashlib.sha256(b"run-1").hexdigest()
    assert store.put_if_absent("locks/nightly", b"run-2") is None
    assert store.get_bytes("locks/nightly") == b"run-1"
    assert store.put_if_absent("locks/other", b"") is not None  # an empty object is an object too
    assert store.put_if_absent("locks/other", b"x") is None and store.get_bytes("locks/other") == b""

    from concurrent.futures import ThreadPoolExecutor

    racers = [f"racer-{i}".encode() for i in range(8)]
    with ThreadPoolExecutor(max_workers=len(racers)) as pool:  # all at once: exactly one wins
        won = [data for data, obj in zip(racers, pool.map(lambda d: store.put_if_absent("locks/race", d), racers))
               if obj is not None]
    assert len(won) == 1 and store.get_bytes("locks/race") == won[0]


BAD_KEYS = ["", "/etc/passwd", "../up", "a/../../b", "a/./b", "a//b", "a/", ".", "..", "a\\b", "a\x00b",
            "line\nbreak", ".pressfleet/tmp/x", "x" * 1000, None, b"bytes"]


@pytest.mark.unit
@pytest.mark.parametrize("backend", ["local", *CLOUD_BACKENDS])
@pytest.mark.parametrize("key", BAD_KEYS, ids=lambda k: repr(k)[:20])
def test_bad_keys_are_refused_before_any_request(backend, key, tmp_path):
    """Validation happens before any network call: the cloud stores here point at a closed port."""
    port = free_port()
    store = _closed_port_store(backend, port, tmp_path)
    for call in (lambda: store.put_bytes(key, b"x"), lambda: store.open_read(key), lambda: store.stat(key),
                 lambda: store.delete(key), lambda: store.put_stream(key, io.BytesIO(b"x"))):
        with pytest.raises(InvalidKey):
            call()


@pytest.mark.unit
def test_key_and_prefix_rules():
    assert validate_key("site1/2026-01-31/db.sql.zst") == "site1/2026-01-31/db.sql.zst"
    assert validate_key("a b/ünïcode.tar") == "a b/ünïcode.tar"
    from pressfleet.storage import validate_prefix

    assert validate_prefix("") == "" and validate_prefix("site1/") == "site1/" and validate_prefix("site1/db-") == "site1/db-"
    for bad in ("/x", "a/../b", "a//", "..", "../"):
        with pytest.raises(InvalidKey):
            validate_prefix(bad)
    from pressfleet.storage.base import validate_metadata

    assert validate_metadata({"site": "site1"}) == {"site": "site1"}
    for bad in ({"Bad Name": "x"}, {"sha256": "x"}, {"ok": "caf\u00e9"}, {"ok": "a\nb"}):
        with pytest.raises(InvalidKey):
            validate_metadata(bad)


# --- storage down -----------------------------------------------------------------------------

SECRET = "SUPERSECRET-do-not-print-0123456789"


def _closed_port_store(backend: str, port: int, tmp_path, secret: str = SECRET):
    url = f"http://127.0.0.1:{port}"
    if backend == "local":
        from pressfleet.storage.local import LocalStore

        return LocalStore(tmp_path / "not-mounted")
    if backend == "s3":
        from pressfleet.storage.s3 import S3Store

        return S3Store("backups", endpoint_url=url, access_key_id="AKIDEXAMPLE", secret_access_key=secret,
                       attempts=2, connect_timeout=2, read_timeout=5)
    if backend == "gcs":
        from pressfleet.storage.gcs import GCSStore

        return GCSStore("backups", endpoint=url, project="test", attempts=2, connect_timeout=2, read_timeout=5)
    if backend == "azure":
        from pressfleet.storage.azure import AzureBlobStore

        b64_secret = "U1VQRVJTRUNSRVQtZG8tbm90LXByaW50LTAxMjM0NTY3ODk="
        return AzureBlobStore("backups", account_name=AZURITE_ACCOUNT, account_key=b64_secret,
                              endpoint=f"{url}/{AZURITE_ACCOUNT}", attempts=2, connect_timeout=2, read_timeout=5)
    raise ValueError(backend)


def _assert_clear(err: StorageError, store, key: str | None, secrets: list[str]) -> None:
    text = str(err)
    assert text.startswith(store.backend + " "), text
    if key is not None:
        assert repr(key) in text, text
    assert text.count("\n") == 0 and text.endswith("."), text
    full = "".join(traceback.format_exception(err))
    for s in secrets:
        assert s not in text and s not in full and s not in repr(store)


@pytest.mark.unit
def test_block_secret_fields_are_declared():
    import uuid

    from blocks.storage import AzureBlobStorage, GCSStorage, LocalStorage, S3Storage

    expected = {LocalStorage: [], S3Storage: ["secret_access_key"], GCSStorage: ["service_account_json"],
                AzureBlobStorage: ["connection_string", "account_key"]}
    for cls, secrets in expected.items():
        schema = cls._to_block_schema(block_type_id=uuid.uuid4())
        assert sorted(schema.fields.get("secret_fields", [])) == sorted(secrets), cls.__name__


@pytest.mark.parametrize("backend", [pytest.param("local", marks=pytest.mark.unit), *CLOUD_BACKENDS])
def test_storage_unreachable_gives_a_clear_error(backend, tmp_path):
    store = _closed_port_store(backend, free_port(), tmp_path)
    secrets = [SECRET, "U1VQRVJTRUNSRVQtZG8tbm90LXByaW50LTAxMjM0NTY3ODk="]
    calls = {
        "site1/db.sql.zst": lambda: store.put_stream("site1/db.sql.zst", RandomStream(12 * MiB)),
        "site1/manifest.json": lambda: store.put_bytes("site1/manifest.json", b"{}"),
        "site1/read.bin": lambda: store.open_read("site1/read.bin"),
        "site1/x": lambda: store.exists("site1/x"),
        None: lambda: store.list("site1/"),
    }
    for key, call in calls.items():
        started = time.monotonic()
        with pytest.raises(StorageError) as err:
            call()
        assert not isinstance(err.value, ObjectNotFound)
        assert time.monotonic() - started < 20
        _assert_clear(err.value, store, key, secrets)
        expected = "does not exist" if backend == "local" else "could not be reached"
        assert expected in str(err.value), str(err.value)


@pytest.mark.parametrize("backend", CLOUD_BACKENDS)
def test_emulator_stopped_mid_session(backend, tmp_path_factory):
    """A store that worked, then its server goes away: clear StorageError, no credential in it."""
    logs = tmp_path_factory.mktemp(f"stop-{backend}")
    start = {"s3": start_moto, "gcs": start_gcs, "azure": start_azurite}[backend]
    emu = start(logs)
    try:
        from .conftest import azurite_connection_string, s3_client

        if backend == "s3":
            from pressfleet.storage.s3 import S3Store

            s3_client(emu.url).create_bucket(Bucket="backups")
            store = S3Store("backups", endpoint_url=emu.url, access_key_id="testing", secret_access_key="testing",
                            attempts=2, connect_timeout=2, read_timeout=5)
            secrets = []
        elif backend == "gcs":
            from pressfleet.storage.gcs import GCSStore

            store = GCSStore("backups", endpoint=emu.url, project="test", attempts=2, connect_timeout=2, read_timeout=5)
            store.client.create_bucket("backups")
            secrets = []
        else:
            from pressfleet.storage.azure import AzureBlobStore
            from .conftest import AZURITE_KEY

            conn = azurite_connection_string(emu.port)
            store = AzureBlobStore("backups", connection_string=conn, attempts=2, connect_timeout=2, read_timeout=5)
            store.service.create_container("backups")
            secrets = [AZURITE_KEY, conn]
        store.put_bytes("site1/manifest.json", b"{}")
        assert store.exists("site1/manifest.json")
    finally:
        emu.stop()
    for key, call in {"site1/manifest.json": lambda: store.get_bytes("site1/manifest.json"),
                      "site1/new.bin": lambda: store.put_stream("site1/new.bin", RandomStream(12 * MiB)),
                      None: lambda: store.list()}.items():
        with pytest.raises(StorageError) as err:
            call()
        _assert_clear(err.value, store, key, secrets)
        assert "could not be reached" in str(err.value)


def test_s3_outage_mid_upload_aborts_the_multipart_upload(moto_emulator, request, tmp_path):
    """The service drops every connection half-way through a multipart upload and comes back only when the
    client aborts: the write fails with one clear sentence, the abort is retried, and moto (which kept its
    state through the outage) holds no unfinished upload and no object."""
    import threading

    from tests.outage_proxy import OutageProxy

    from .conftest import s3_client

    direct = make_store("s3", request, tmp_path)
    proxy = OutageProxy(moto_emulator.port)
    request.addfinalizer(proxy.close)
    from pressfleet.storage.s3 import S3Store

    store = S3Store(direct.bucket, endpoint_url=proxy.url, region="us-east-1", access_key_id="testing",
                    secret_access_key="testing", part_size=TEST_PART_SIZE, attempts=3)
    client = s3_client(moto_emulator.url)
    outcome: dict = {}

    def upload():
        try:
            outcome["result"] = store.put_stream("site1/files.tar.zst", RandomStream(OBJECT_SIZE, seed=9))
        except Exception as exc:  # noqa: BLE001 - inspected below
            outcome["error"] = exc

    worker = threading.Thread(target=upload, daemon=True)
    worker.start()
    deadline = time.monotonic() + 30
    while not client.list_multipart_uploads(Bucket=direct.bucket).get("Uploads"):
        assert time.monotonic() < deadline, "the multipart upload never started"
        time.sleep(0.02)
    proxy.cut(until_abort=True)
    worker.join(120)
    assert isinstance(outcome.get("error"), StorageError), outcome
    _assert_clear(outcome["error"], store, "site1/files.tar.zst", ["testing"])
    assert "could not be reached" in str(outcome["error"])
    assert any(line.startswith("DELETE ") and "uploadId=" in line for line in proxy.refused)  # first abort dropped
    assert client.list_multipart_uploads(Bucket=direct.bucket).get("Uploads", []) == []  # the retry aborted it
    assert keys(direct) == []


@pytest.mark.parametrize("backend", [pytest.param("local", marks=pytest.mark.unit), *CLOUD_BACKENDS])
def test_missing_bucket_is_not_a_missing_object(backend, request, tmp_path):
    """exists() must not answer False when the bucket / container / folder itself is missing."""
    store = make_store(backend, request, tmp_path)
    if backend == "local":
        store.root = tmp_path / "unmounted"
    elif backend == "azure":
        store.container, store._container_client = "no-such-container", None
    else:
        store.bucket_name = "no-such-bucket"
        if backend == "gcs":
            store._bucket = None
        else:
            store.bucket = "no-such-bucket"
    for call in (lambda: store.exists("a/b"), lambda: store.list(), lambda: store.open_read("a/b"),
                 lambda: store.put_bytes("a/b", b"x"), lambda: store.put_stream("a/c", RandomStream(6 * MiB))):
        with pytest.raises(StorageError) as err:
            call()
        assert not isinstance(err.value, ObjectNotFound), str(err.value)
        assert "does not exist" in str(err.value), str(err.value)


# --- immutability -----------------------------------------------------------------------------


def test_s3_object_lock_blocks_delete(request, tmp_path):
    store = make_store("s3", request, tmp_path, object_lock_bucket=True, lock_days=1)
    until = datetime.now(timezone.utc) + timedelta(days=2)
    big = store.put_stream("site1/files.tar.zst", RandomStream(12 * MiB), immutable_until=until)  # multipart
    small = store.put_bytes("site1/manifest.json", b"{}")                                   # single part, lock_days
    mode, retained = store.retention(big.key)
    assert mode == "governance" and retained >= until.replace(microsecond=0)
    mode, retained = store.retention(small.key)
    assert mode == "governance" and retained > datetime.now(timezone.utc) + timedelta(hours=23)
    for key in (big.key, small.key):
        with pytest.raises(StorageError, match="locked by S3 Object Lock"):
            store.delete(key)
        assert store.exists(key)
    with pytest.raises(StorageError, match="in the past"):
        store.put_bytes("x", b"x", immutable_until=datetime.now(timezone.utc) - timedelta(seconds=1))


@pytest.mark.parametrize("backend", ["gcs", "azure"])
def test_immutability_request_is_sent_where_the_emulator_cannot_keep_it(backend, request, tmp_path):
    """GCS object retention and Azure immutability policies are sent with the write; the emulators
    accept and drop them (see shared/STORAGE.md), so only acceptance is checked here."""
    store = make_store(backend, request, tmp_path, lock_days=1)
    obj = store.put_stream("site1/files.tar.zst", RandomStream(12 * MiB))
    assert store.stat(obj.key).size == 12 * MiB
    assert store.retention(obj.key) is None  # the emulator dropped it; real services return the date


@pytest.mark.unit
def test_local_folder_refuses_immutability(tmp_path):
    from pressfleet.storage.local import LocalStore

    store = LocalStore(tmp_path)
    with pytest.raises(StorageError, match="cannot make objects immutable"):
        store.put_bytes("a", b"x", immutable_until=datetime.now(timezone.utc) + timedelta(days=1))
    assert store.list() == []


# --- the Prefect blocks -----------------------------------------------------------------------


@pytest.mark.unit
def test_blocks_keep_secrets_out_of_repr_and_errors(tmp_path):
    from blocks.storage import AzureBlobStorage, GCSStorage, LocalStorage, S3Storage

    s3 = S3Storage(bucket="backups", prefix="fleet/", endpoint_url=f"http://127.0.0.1:{free_port()}",
                   access_key_id="AKIDEXAMPLE", secret_access_key=SECRET)
    azure = AzureBlobStorage(container="backups", account_name="acct", account_key=SECRET,
                             endpoint=f"http://127.0.0.1:{free_port()}/acct")
    gcs = GCSStorage(bucket="backups", endpoint=f"http://127.0.0.1:{free_port()}")
    for block in (s3, azure, gcs):
        assert SECRET not in repr(block) and SECRET not in str(block.model_dump())
        store = block.store()
        assert SECRET not in repr(store)
    with pytest.raises(ValueError) as err:
        S3Storage(bucket="bad/bucket", access_key_id="AKIDEXAMPLE", secret_access_key=SECRET)
    assert SECRET not in str(err.value)
    with pytest.raises(ValueError, match="either a connection string or"):
        AzureBlobStorage(container="backups")
    with pytest.raises(ValueError, match="absolute"):
        LocalStorage(path="relative/path")
    assert LocalStorage(path=str(tmp_path)).store().root == tmp_path


def test_blocks_store_round_trip(request, tmp_path):
    """Each block, configured as a person would in the UI, gives a working store."""
    from pydantic import SecretStr

    from blocks.storage import AzureBlobStorage, GCSStorage, LocalStorage, S3Storage

    from .conftest import azurite_connection_string, s3_client

    moto, gcs, azurite = (request.getfixturevalue(n) for n in ("moto_emulator", "gcs_emulator", "azurite_emulator"))
    s3_client(moto.url).create_bucket(Bucket="blocks-s3")
    blocks = [
        LocalStorage(path=str(tmp_path)),
        S3Storage(bucket="blocks-s3", prefix="fleet", endpoint_url=moto.url, access_key_id="testing",
                  secret_access_key=SecretStr("testing")),
        GCSStorage(bucket="blocks-gcs", prefix="fleet/", project="test", endpoint=gcs.url),
        AzureBlobStorage(container="blocks-azure", prefix="fleet/",
                         connection_string=SecretStr(azurite_connection_string(azurite.port))),
    ]
    blocks[2].store().client.create_bucket("blocks-gcs")
    blocks[3].store().service.create_container("blocks-azure")
    for block in blocks:
        store = block.store()
        obj = store.put_bytes("site1/manifest.json", b'{"ok": true}')
        assert store.get_bytes(obj.key) == b'{"ok": true}'
        assert [o.key for o in store.list()] == ["site1/manifest.json"]
        store.delete(obj.key)
