"""The storage interface every backup target implements, and the pieces the backends share.

An object store keeps named objects (keys such as ``site1/2026-01-31/db.sql.zst``). Writes stream:
``put_stream`` reads the source in parts of a fixed size (8-16 MiB by default), sends each part as it
is read and hashes it on the way, so memory stays bounded whatever the object's size. The object
becomes visible only once complete (S3 multipart complete, Azure commit block list, GCS resumable
finalize, local rename); if anything fails half-way the upload is aborted and no object is listed.

Errors from the storage service surface as :class:`StorageError`: one sentence naming the backend,
the operation and the key, never a credential. Errors raised by the *source* stream a caller hands
to ``put_stream`` propagate unchanged (after the upload is aborted), so the caller sees the real
cause (a failed dump on the host, say).
"""

from __future__ import annotations

import hashlib
import io
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import IO, Callable, Iterator, Mapping, Optional, Protocol, runtime_checkable

MiB = 1024 * 1024
DEFAULT_PART_SIZE = 16 * MiB
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last
DEFAULT_GET_BYTES_LIMIT = 64 * MiB
RESERVED_SEGMENT = ".pressfleet"  # the local backend keeps temporary files and metadata under it
LOCK_MODES = ("governance", "compliance")

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_METADATA_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class StorageError(Exception):
    """A storage operation failed. ``str(error)`` is one sentence: backend, operation, key, reason."""

    def __init__(self, message: str, *, backend: str = "", key: Optional[str] = None, operation: str = "") -> None:
        super().__init__(message)
        self.backend = backend
        self.key = key
        self.operation = operation


class ObjectNotFound(StorageError):
    """The object does not exist (a missing bucket, container or folder is a plain StorageError)."""


class InvalidKey(StorageError, ValueError):
    """A key or prefix that is not a plain relative object name."""


@dataclass(frozen=True)
class StoredObject:
    """One object as the store holds it.

    ``sha256`` is the hex digest of the content: always set on what ``put_stream``/``put_bytes``
    return (computed while streaming); in ``stat``/``list`` it is set where the backend recorded it
    at commit time (local, Azure, and objects that fit in one part on S3 and GCS), else None.
    """

    key: str
    size: int
    sha256: Optional[str]
    etag: Optional[str]
    modified: Optional[datetime] = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class ObjectStore(Protocol):
    """What the backup flows need from a storage target. Keys are relative to the store's prefix."""

    backend: str
    provider: str  # local, s3, gcs, azure: the cost report's price table keys

    def put_stream(
        self,
        key: str,
        stream: IO[bytes],
        *,
        size_hint: Optional[int] = None,
        metadata: Optional[Mapping[str, str]] = None,
        immutable_until: Optional[datetime] = None,
    ) -> StoredObject: ...

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        metadata: Optional[Mapping[str, str]] = None,
        immutable_until: Optional[datetime] = None,
    ) -> StoredObject: ...

    def put_if_absent(self, key: str, data: bytes, *, metadata: Optional[Mapping[str, str]] = None) -> Optional[StoredObject]: ...

    def open_read(self, key: str) -> IO[bytes]: ...

    def get_bytes(self, key: str, *, max_bytes: int = DEFAULT_GET_BYTES_LIMIT) -> bytes: ...

    def stat(self, key: str) -> StoredObject: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> list[StoredObject]: ...

    def delete(self, key: str) -> None: ...

    def retention(self, key: str) -> Optional[tuple[str, datetime]]: ...

    def describe(self) -> str: ...


# --- keys --------------------------------------------------------------------------------------


def _check_text(value, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidKey(f"The {what} must be text, not {type(value).__name__}.")
    if _CONTROL_RE.search(value):
        raise InvalidKey(f"The {what} {value[:80]!r} contains a control character.")
    if "\\" in value:
        raise InvalidKey(f"The {what} {value[:80]!r} contains a backslash; use / between parts.")
    if len(value.encode("utf-8")) > 900:
        raise InvalidKey(f"The {what} {value[:80]!r}... is longer than 900 bytes.")
    return value


def _check_segments(value: str, what: str, segments: list[str]) -> None:
    for seg in segments:
        if seg in ("", ".", ".."):
            raise InvalidKey(
                f"The {what} {value[:80]!r} has an empty, '.' or '..' part; "
                "use plain names joined by single slashes, e.g. site1/2026-01-31/db.sql.zst."
            )
        if seg.startswith(RESERVED_SEGMENT):
            raise InvalidKey(f"The {what} {value[:80]!r} uses the reserved name {RESERVED_SEGMENT!r}.")


def validate_key(key) -> str:
    """A relative object name: parts joined by single '/', no leading '/', no '.' or '..' parts."""
    key = _check_text(key, "key")
    if not key:
        raise InvalidKey("The key is empty.")
    if key.startswith("/"):
        raise InvalidKey(f"The key {key[:80]!r} starts with '/'; keys are relative, e.g. site1/db.sql.zst.")
    if key.endswith("/"):
        raise InvalidKey(f"The key {key[:80]!r} ends with '/'; that names a folder, not an object.")
    _check_segments(key, "key", key.split("/"))
    return key


def validate_prefix(prefix) -> str:
    """A listing prefix or a store prefix: empty, or like a key, optionally ending with '/'."""
    prefix = _check_text(prefix if prefix is not None else "", "prefix")
    if not prefix:
        return ""
    if prefix.startswith("/"):
        raise InvalidKey(f"The prefix {prefix[:80]!r} starts with '/'; prefixes are relative, e.g. backups/.")
    body = prefix[:-1] if prefix.endswith("/") else prefix
    segments = body.split("/")
    # The last part of a listing prefix may be a partial name ("db-2026"), but never '.' or '..'.
    _check_segments(prefix, "prefix", segments)
    return prefix


def normalize_store_prefix(prefix: Optional[str]) -> str:
    """A store's own prefix, as a folder: '' or 'a/b/'."""
    prefix = validate_prefix(prefix or "")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return prefix


def validate_metadata(metadata: Optional[Mapping[str, str]]) -> dict[str, str]:
    """Small ASCII metadata that every backend can keep: lower-case names, printable ASCII values."""
    out: dict[str, str] = {}
    for name, value in (metadata or {}).items():
        if not isinstance(name, str) or not _METADATA_KEY_RE.match(name):
            raise InvalidKey(
                f"The metadata name {str(name)[:40]!r} is not allowed; use lower-case letters, digits and _."
            )
        if not isinstance(value, str) or not value.isascii() or _CONTROL_RE.search(value) or len(value) > 1024:
            raise InvalidKey(f"The metadata value for {name!r} must be printable ASCII text up to 1024 characters.")
        out[name] = value
    if "sha256" in out:
        raise InvalidKey("The metadata name 'sha256' is reserved: the store records the content's sha256 itself.")
    return out


def resolve_lock(
    immutable_until: Optional[datetime], default_days: Optional[int], *, backend: str, key: str
) -> Optional[datetime]:
    """The retain-until time for a write: the explicit one, or now + the store's default lock days."""
    if immutable_until is None:
        if not default_days:
            return None
        immutable_until = datetime.now(timezone.utc) + timedelta(days=default_days)
    if immutable_until.tzinfo is None:
        raise StorageError(
            f"{backend} write of {key!r} was refused: immutable_until must carry a time zone (e.g. UTC).",
            backend=backend, key=key, operation="write",
        )
    if immutable_until <= datetime.now(timezone.utc):
        raise StorageError(
            f"{backend} write of {key!r} was refused: immutable_until {immutable_until.isoformat()} is in the past.",
            backend=backend, key=key, operation="write",
        )
    return immutable_until.astimezone(timezone.utc)


def part_size_for(part_size: int, size_hint: Optional[int], max_parts: int, multiple: int = 1) -> int:
    """The part size to use: the configured one, grown so that size_hint fits in max_parts parts."""
    size = part_size
    if size_hint and size_hint > size * max_parts:
        size = -(-size_hint // max_parts)
    if size % multiple:
        size += multiple - size % multiple
    return size


# --- streaming helpers -------------------------------------------------------------------------


class SourceError(Exception):
    """Internal marker: wraps an exception raised by the caller's source stream."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


class HashingSource:
    """Reads a caller's stream in exact-size parts, hashing and counting what it read.

    Exceptions from the caller's stream are wrapped in SourceError so the backends can tell them
    from storage failures (and re-raise the original after aborting the upload).
    """

    def __init__(self, stream: IO[bytes]) -> None:
        if not hasattr(stream, "read"):
            raise TypeError("put_stream needs a binary stream with .read(n), e.g. open(path, 'rb')")
        self._stream = stream
        self._sha = hashlib.sha256()
        self.size = 0
        self.eof = False

    def read_part(self, n: int) -> bytes:
        """Exactly n bytes, or fewer only at the end of the stream."""
        if self.eof:
            return b""
        try:
            first = self._stream.read(n)
            if first is None:
                first = b""
            if not isinstance(first, (bytes, bytearray, memoryview)):
                raise TypeError(f"the source stream returned {type(first).__name__}, not bytes")
            if len(first) == n or not first:
                data = bytes(first) if not isinstance(first, bytes) else first
            else:
                # Fill one preallocated buffer (no list of pieces, no join): at most two copies of a part
                # exist at once, the buffer and the bytes handed to the SDK.
                buf = bytearray(n)
                view = memoryview(buf)
                got = len(first)
                view[:got] = first
                del first
                while got < n:
                    more = self._stream.read(n - got)
                    if not more:
                        break
                    view[got:got + len(more)] = more
                    got += len(more)
                    del more
                view.release()
                data = bytes(buf) if got == n else bytes(memoryview(buf)[:got])
                del buf
        except Exception as exc:
            raise SourceError(exc) from exc
        if len(data) < n:
            self.eof = True
        self._sha.update(data)
        self.size += len(data)
        return data

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()


def upload_parts(
    src: HashingSource,
    first: list,
    part_size: int,
    send: Callable[[int, bytes, bool], object],
    *,
    in_flight: int = 1,
    max_parts: Optional[int] = None,
    too_many: Optional[Callable[[], BaseException]] = None,
) -> list:
    """Send the part in ``first`` (a one-item list, emptied here so that the caller holds no reference
    to it) and every further part of ``src`` with ``send(number, data, last)`` (numbers from 1; ``last``
    is True for a part known to be the final one, i.e. shorter than part_size; a stream that ends
    exactly on a part boundary has no part marked last).

    With ``in_flight`` >= 1, up to that many parts are being sent by worker threads while the next one
    is read and hashed, so a slow source and a slow service overlap instead of adding up. Memory stays
    at about (in_flight + 2) parts. Returns send's results in part order. On any failure no further
    part is sent, running sends are waited for, and the first exception is raised (a source failure
    as SourceError).
    """
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    results: dict[int, object] = {}
    if in_flight <= 0:  # plain sequential: send, then read the next part
        data, number = first.pop(), 1
        while data:
            if max_parts is not None and number > max_parts:
                raise too_many() if too_many else ValueError("too many parts")
            results[number] = send(number, data, src.eof)
            data = None
            data = src.read_part(part_size)
            number += 1
        return [results[n] for n in sorted(results)]

    pending: dict = {}
    pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="pressfleet-upload")
    try:
        data, number = first.pop(), 1
        while data:
            if max_parts is not None and number > max_parts:
                raise too_many() if too_many else ValueError("too many parts")
            while len(pending) >= in_flight:
                done, _ = wait(pending, return_when=FIRST_EXCEPTION)
                for fut in done:
                    results[pending.pop(fut)] = fut.result()  # raises the send's exception
            pending[pool.submit(send, number, data, src.eof)] = number
            data = None
            data = src.read_part(part_size)
            number += 1
        for fut in list(pending):
            results[pending.pop(fut)] = fut.result()
    except BaseException:
        for fut in pending:
            fut.cancel()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [results[n] for n in sorted(results)]


class ChunkReader(io.RawIOBase):
    """A read-only binary stream over an iterator of byte chunks (a streamed download).

    ``translate`` turns a backend exception raised while reading into a StorageError.
    """

    def __init__(
        self,
        chunks: Iterator[bytes],
        *,
        translate: Callable[[BaseException], BaseException],
        on_close: Optional[Callable[[], None]] = None,
    ) -> None:
        super().__init__()
        self._chunks = chunks
        self._translate = translate
        self._on_close = on_close
        self._buf = b""
        self._pos = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self.closed:
            raise ValueError("read from a closed storage stream")
        while self._pos >= len(self._buf):
            if self._done:
                return 0
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self._done = True
                self._buf, self._pos = b"", 0
                return 0
            except StorageError:
                raise
            except Exception as exc:
                raise self._translate(exc) from exc
            self._buf, self._pos = bytes(chunk), 0
        n = min(len(b), len(self._buf) - self._pos)
        with memoryview(self._buf) as view:
            b[:n] = view[self._pos:self._pos + n]
        self._pos += n
        if self._pos >= len(self._buf):
            self._buf, self._pos = b"", 0
        return n

    def close(self) -> None:
        if not self.closed:
            self._buf = b""
            if self._on_close is not None:
                try:
                    self._on_close()
                except Exception:
                    pass
        super().close()


def buffered(raw: io.RawIOBase, size: int = MiB) -> io.BufferedReader:
    return io.BufferedReader(raw, buffer_size=size)


def read_all_limited(stream: IO[bytes], limit: int, *, backend: str, key: str) -> bytes:
    pieces, total = [], 0
    with stream:
        while True:
            chunk = stream.read(MiB)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise StorageError(
                    f"{backend} read of {key!r} was stopped: the object is larger than the "
                    f"{limit} bytes get_bytes allows (use open_read to stream it).",
                    backend=backend, key=key, operation="read",
                )
            pieces.append(chunk)
    return b"".join(pieces)


def backoff_delays(attempts: int, first: float = 0.5, cap: float = 8.0) -> Iterator[float]:
    """Delays between tries: 0.5, 1, 2, 4, 8, 8... for attempts-1 retries."""
    delay = first
    for _ in range(max(0, attempts - 1)):
        yield delay
        delay = min(cap, delay * 2)


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def scrub(text: str, secrets: list[str]) -> str:
    """Text with every non-trivial secret replaced by ***, cut to one short line."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    text = " ".join(str(text).split())
    return text[:300]


def strip_url_userinfo(url: Optional[str]) -> Optional[str]:
    """An endpoint URL without any user:password@ part and without its query string."""
    if not url:
        return url
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class StoreBase:
    """Shared behaviour: key/prefix handling, put_bytes/get_bytes/exists on top of the primitives, and
    ``list`` on top of the backend's ``_iter_objects``."""

    backend = "storage"

    def __init__(self, prefix: Optional[str] = "", *, lock_days: Optional[int] = None, lock_mode: str = "governance") -> None:
        self.prefix = normalize_store_prefix(prefix)
        if lock_days is not None and (not isinstance(lock_days, int) or lock_days < 1):
            raise ValueError("lock_days must be a whole number of days, at least 1")
        if lock_mode not in LOCK_MODES:
            raise ValueError(f"lock_mode must be one of {LOCK_MODES}")
        self.lock_days = lock_days
        self.lock_mode = lock_mode

    # names ---------------------------------------------------------------------------------
    def _full(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _rel(self, full: str) -> str:
        return full[len(self.prefix):] if self.prefix and full.startswith(self.prefix) else full

    def _where(self) -> str:  # overridden: "bucket 'x' at http://..."
        return ""

    def describe(self) -> str:
        return f"{self.backend} {self._where()}".strip()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    def _error(self, op: str, key: Optional[str], reason: str, cls=StorageError) -> StorageError:
        what = f"{op} of {key!r}" if key is not None else op
        where = self._where()
        msg = f"{self.backend} {what}{' in ' + where if where else ''} failed: {reason.rstrip('.')}."
        return cls(msg, backend=self.backend, key=key, operation=op)

    # conveniences on top of the primitives --------------------------------------------------
    def put_bytes(self, key, data: bytes, *, metadata=None, immutable_until=None) -> StoredObject:
        return self.put_stream(key, io.BytesIO(bytes(data)), size_hint=len(data), metadata=metadata,
                               immutable_until=immutable_until)

    def get_bytes(self, key, *, max_bytes: int = DEFAULT_GET_BYTES_LIMIT) -> bytes:
        return read_all_limited(self.open_read(key), max_bytes, backend=self.backend, key=key)

    def exists(self, key) -> bool:
        try:
            self.stat(key)
            return True
        except ObjectNotFound:
            return False

    def _described(self, full: str, size, etag: Optional[str], modified, metadata) -> StoredObject:
        """An object as the service describes it; the sha256 recorded at commit time rides in its metadata."""
        meta = dict(metadata or {})
        sha = meta.pop("sha256", None)
        return StoredObject(key=self._rel(full), size=int(size or 0), sha256=sha, etag=etag, modified=modified,
                            metadata=meta)

    # listing: the backend yields the objects under a full prefix, in any order -----------------
    _service_errors: tuple = (Exception,)  # what _translate turns into a StorageError

    def _check_available(self, op: str, key: Optional[str]) -> None:  # local: is the folder there?
        pass

    def _iter_objects(self, full_prefix: str) -> Iterator[StoredObject]:
        raise NotImplementedError

    def _translate(self, op: str, key: Optional[str], exc: BaseException) -> StorageError:
        raise NotImplementedError

    def list(self, prefix: str = "") -> list[StoredObject]:
        prefix = validate_prefix(prefix)
        self._check_available("list", None)
        try:
            out = [*self._iter_objects(self.prefix + prefix)]
        except self._service_errors as exc:
            raise self._translate("list", prefix or None, exc) from exc
        out.sort(key=lambda o: o.key)
        return out


class CloudStoreBase(StoreBase):
    """What the S3, GCS and Azure stores share: transfer settings and the streamed write.

    ``put_stream`` reads the first part; an object that fits in it is one request (``_put_single``),
    a larger one goes up in parts (``_put_parts``, which cleans up its own half-done upload). Either
    way a failure of the caller's stream re-raises the original exception, and a service error
    becomes a StorageError through the backend's ``_translate``.
    """

    max_parts: int  # the service's limit on parts per object: parts grow so that size_hint fits
    part_multiple = 1  # part sizes are rounded up to a multiple of this
    part_word = "parts"  # what the service calls them, for messages
    max_single_put: Optional[int] = None  # the largest object one request may write (put_if_absent)

    def _set_transfer(self, part_size: int, in_flight: int, attempts: int, connect_timeout: float,
                      read_timeout: float) -> None:
        self.part_size = part_size
        self.in_flight = in_flight  # parts being sent while the next one is read (0: send, then read)
        self._attempts = attempts
        self._timeouts = (connect_timeout, read_timeout)

    def _connect(self) -> None:
        """Set up the service client, where that can fail, before the caller's stream is read."""

    def _put_single(self, key: str, full: str, data: bytes, sha256: str, meta: dict, until: Optional[datetime], *,
                    if_absent: bool) -> Optional[StoredObject]:
        raise NotImplementedError

    def _put_parts(self, key: str, full: str, src: HashingSource, first: list, part_size: int, meta: dict,
                   until: Optional[datetime]) -> StoredObject:
        raise NotImplementedError

    def put_stream(self, key, stream: IO[bytes], *, size_hint=None, metadata=None, immutable_until=None) -> StoredObject:
        full = self._full(key)
        meta = validate_metadata(metadata)
        until = resolve_lock(immutable_until, self.lock_days, backend=self.backend, key=key)
        part_size = part_size_for(self.part_size, size_hint, self.max_parts, self.part_multiple)
        src = HashingSource(stream)
        self._connect()
        try:
            first = src.read_part(part_size)
        except SourceError as exc:
            raise exc.original from None
        if src.eof:
            return self._put_single(key, full, first, src.sha256, meta, until, if_absent=False)
        holder = [first]
        del first  # upload_parts empties holder: no reference to the part outlives its send
        try:
            return self._put_parts(key, full, src, holder, part_size, meta, until)
        except SourceError as exc:
            raise exc.original from None
        except StorageError:
            raise
        except Exception as exc:
            raise self._translate("write", key, exc) from exc

    def _upload_parts(self, key: str, src: HashingSource, first: list, part_size: int,
                      send: Callable[[int, bytes, bool], object]) -> list:
        """upload_parts with this store's concurrency and part limit."""
        return upload_parts(
            src, first, part_size, send, in_flight=self.in_flight, max_parts=self.max_parts,
            too_many=lambda: self._error("write", key, f"the stream needs more than {self.max_parts} {self.part_word} "
                                         "(pass size_hint or a larger part size)"),
        )

    def put_if_absent(self, key, data: bytes, *, metadata=None) -> Optional[StoredObject]:
        """Write only if no object has this key; None if one does.

        One conditional request: If-None-Match: * on S3 and Azure, ifGenerationMatch=0 on GCS.
        """
        full = self._full(key)
        meta = validate_metadata(metadata)
        data = bytes(data)
        if self.max_single_put is not None and len(data) > self.max_single_put:
            raise self._error("write", key, f"put_if_absent takes at most {self.max_single_put // (1024 * MiB)} GiB")
        until = resolve_lock(None, self.lock_days, backend=self.backend, key=key)
        return self._put_single(key, full, data, hashlib.sha256(data).hexdigest(), meta, until, if_absent=True)

    # a missing object, or a missing bucket? ------------------------------------------------------
    _bucket_seen = False  # set once the bucket is known to exist

    def _bucket_exists(self) -> bool:
        raise NotImplementedError

    def _not_found(self, op: str, key: str) -> StorageError:
        """The error for a 404 on an object: the bucket is asked about once per store, only on this path."""
        if not self._bucket_seen:
            try:
                exists = self._bucket_exists()
            except Exception as exc:
                return self._translate(op, key, exc)
            if not exists:
                return self._error(op, key, "the bucket does not exist")
            self._bucket_seen = True
        return self._error(op, key, "no such object", ObjectNotFound)


def located(what: str, endpoint: Optional[str]) -> str:
    """``what`` (e.g. "bucket 'x'"), followed by the endpoint it is at, without credentials."""
    return f"{what} at {strip_url_userinfo(endpoint)}" if endpoint else what


def unquote_etag(etag: Optional[str]) -> Optional[str]:
    return etag.strip('"') if isinstance(etag, str) else etag
