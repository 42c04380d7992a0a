"""Google Cloud Storage as an object store, with google-cloud-storage.

Large writes are resumable uploads: a session is opened, then one chunk (16 MiB by default, a
multiple of 256 KiB) is read, hashed and sent at a time; the object appears only when the last chunk
finalizes the session. On failure the session is cancelled (or left to expire after a week): an
unfinalized upload is never listed. Objects that fit in one chunk are a single upload carrying their
sha256 as metadata.

Object retention: with ``lock_days`` (or ``immutable_until`` on a write) each object is written with
a retention (mode Unlocked for "governance", Locked for "compliance"); the bucket must have object
retention enabled. Credentials: a service-account key (JSON), else Application Default
Credentials; with a custom endpoint (an emulator) and no key, anonymous access.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import IO, Optional

from pressfleet.storage.base import (
    DEFAULT_PART_SIZE,
    ChunkReader,
    CloudStoreBase,
    HashingSource,
    MiB,
    ObjectNotFound,
    StorageError,
    StoredObject,
    backoff_delays,
    buffered,
    located,
    scrub,
    sleep,
    upload_parts,
)

CHUNK_MULTIPLE = 256 * 1024
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class GCSStore(CloudStoreBase):
    backend = "GCS"
    provider = "gcs"  # as the PriceTable block names it
    max_parts = 1 << 30  # chunks are not counted; this only sizes them (the configured size, in practice)
    part_multiple = CHUNK_MULTIPLE

    def __init__(
        self,
        bucket: str,
        prefix: Optional[str] = "",
        *,
        project: Optional[str] = None,
        endpoint: Optional[str] = None,
        service_account_info=None,
        anonymous: Optional[bool] = None,
        part_size: int = DEFAULT_PART_SIZE,
        lock_days: Optional[int] = None,
        lock_mode: str = "governance",
        in_flight: int = 1,
        attempts: int = 5,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ) -> None:
        super().__init__(prefix, lock_days=lock_days, lock_mode=lock_mode)
        if not bucket:
            raise ValueError("the GCS bucket name is empty")
        if part_size < CHUNK_MULTIPLE or part_size % CHUNK_MULTIPLE:
            raise ValueError("the GCS chunk size must be a positive multiple of 256 KiB")
        self.bucket_name = bucket
        self.project = project
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        # in_flight 0: send, then read; 1 (the most): read the next chunk while one is sent
        self._set_transfer(part_size, in_flight, max(1, attempts), connect_timeout, read_timeout)
        if isinstance(service_account_info, str):
            try:
                service_account_info = json.loads(service_account_info)
            except ValueError:
                raise ValueError("the GCS service-account key is not valid JSON") from None
        self._sa_info = service_account_info
        self._anonymous = bool(self.endpoint and not service_account_info) if anonymous is None else anonymous
        self._client = None
        self._bucket = None
        self._http = None
        self._media_http = None
        self._credentials = None

    # client --------------------------------------------------------------------------------
    def _where(self) -> str:
        return located(f"bucket {self.bucket_name!r}", self.endpoint)

    def _secrets(self) -> list[str]:
        info = self._sa_info or {}
        return [str(info.get("private_key", "")), str(info.get("private_key_id", ""))]

    @property
    def client(self):
        if self._client is None:
            from google.cloud import storage

            kwargs = {}
            if self.endpoint:
                kwargs["client_options"] = {"api_endpoint": self.endpoint}
            scopes = ["https://www.googleapis.com/auth/devstorage.read_write"]
            try:
                if self._sa_info:
                    from google.oauth2 import service_account

                    creds = service_account.Credentials.from_service_account_info(self._sa_info, scopes=scopes)
                    project = self.project or self._sa_info.get("project_id")
                elif self._anonymous:
                    from google.auth.credentials import AnonymousCredentials

                    creds, project = AnonymousCredentials(), self.project or "pressfleet"
                else:
                    import google.auth

                    creds, found = google.auth.default(scopes=scopes)
                    project = self.project or found
                self._credentials = creds
                self._client = storage.Client(project=project, credentials=creds, **kwargs)
            except Exception as exc:
                raise self._error("connection setup", None, "the credentials could not be loaded ("
                                  + scrub(f"{type(exc).__name__}: {exc}", self._secrets()) + ")") from None
        return self._client

    @property
    def media_http(self):
        """An authorized requests session for streamed downloads (one GET per object, not per chunk)."""
        if self._media_http is None:
            from google.auth.transport.requests import AuthorizedSession

            self.client  # loads the credentials
            self._media_http = AuthorizedSession(self._credentials)
        return self._media_http

    @property
    def bucket(self):
        if self._bucket is None:
            self._bucket = self.client.bucket(self.bucket_name)
        return self._bucket

    @property
    def http(self):
        if self._http is None:
            import requests

            self._http = requests.Session()  # resumable session URLs carry their own authorization
        return self._http

    @property
    def retry(self):
        from google.cloud.storage.retry import DEFAULT_RETRY

        total = sum(backoff_delays(self._attempts)) + 0.01
        return DEFAULT_RETRY.with_delay(initial=0.5, maximum=8.0, multiplier=2.0).with_timeout(total)

    def _translate(self, op: str, key: Optional[str], exc: BaseException) -> StorageError:
        import requests
        from google.api_core import exceptions as gexc

        if isinstance(exc, StorageError):
            return exc
        if isinstance(exc, gexc.RetryError) and exc.cause is not None:
            exc = exc.cause
        if isinstance(exc, gexc.NotFound):
            if op == "list" or "bucket" in str(getattr(exc, "message", "")).lower():
                return self._error(op, key, "the bucket does not exist")
            return self._error(op, key, "no such object", ObjectNotFound)
        if isinstance(exc, (gexc.Forbidden, gexc.Unauthorized)):
            msg = scrub(str(getattr(exc, "message", "")), self._secrets())
            if "retention" in msg.lower() or "hold" in msg.lower():
                return self._error(op, key, f"the object is under retention ({msg})")
            return self._error(op, key, "access was denied (check the service account and its roles)")
        if isinstance(exc, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
            return self._error(op, key, "the service could not be reached (connection refused or timed out)")
        if isinstance(exc, gexc.GoogleAPICallError):
            msg = scrub(str(getattr(exc, "message", "")), self._secrets())
            return self._error(op, key, f"the service answered {exc.code}{': ' + msg if msg else ''}")
        try:
            from google.auth import exceptions as aexc

            if isinstance(exc, aexc.GoogleAuthError):
                return self._error(op, key, "the credentials could not be used ("
                                   + scrub(f"{type(exc).__name__}: {exc}", self._secrets()) + ")")
        except ImportError:  # pragma: no cover
            pass
        return self._error(op, key, scrub(f"{type(exc).__name__}: {exc}", self._secrets()))

    def _bucket_exists(self) -> bool:
        return self.bucket.exists(timeout=self._timeouts, retry=self.retry)

    # writing -------------------------------------------------------------------------------
    def _blob_for_write(self, full: str, meta: dict, until: Optional[datetime]):
        blob = self.bucket.blob(full)
        blob.metadata = meta or None
        if until is not None:
            blob.retention.mode = "Locked" if self.lock_mode == "compliance" else "Unlocked"
            blob.retention.retain_until_time = until
        return blob

    def _put_parts(self, key, full, src: HashingSource, first: list, chunk: int, meta, until) -> StoredObject:
        """A resumable upload, cancelled unless its last chunk finalized it."""
        url = self._blob_for_write(full, meta, until).create_resumable_upload_session(
            content_type="application/octet-stream", timeout=self._timeouts, retry=self.retry, client=self.client,
        )
        final: dict = {}
        offsets = [0]

        def send(number: int, data: bytes, last: bool) -> None:
            # One chunk at a time, in order (in_flight is at most 1): the next is read meanwhile.
            offset = offsets[0]
            total = offset + len(data) if last else None
            resource = self._send(url, data, offset, total, key)
            offsets[0] = offset + len(data)
            if last:
                final["resource"] = resource

        try:
            upload_parts(src, first, chunk, send, in_flight=min(1, self.in_flight))
            if "resource" not in final:  # the stream ended exactly on a chunk boundary: finalize with no bytes
                final["resource"] = self._send(url, b"", src.size, src.size, key)
        except BaseException:
            if "resource" not in final:
                self._cancel(url)
            raise
        resource = final["resource"]
        size = int(resource.get("size", -1))
        if size != src.size:
            raise self._error("write", key, f"the service stored {size} bytes, {src.size} were sent")
        return StoredObject(key=self._rel(full), size=src.size, sha256=src.sha256, etag=resource.get("etag"),
                            modified=_parse_time(resource.get("updated")), metadata=meta)

    def _send(self, url: str, data: bytes, offset: int, total: Optional[int], key: str) -> Optional[dict]:
        """One chunk of a resumable upload; retried, resuming from what the service persisted.

        Returns the object resource once the upload is final, else None.
        """
        import requests

        delays = backoff_delays(self._attempts)
        while True:
            failure = None
            if data:
                crange = f"bytes {offset}-{offset + len(data) - 1}/{total if total is not None else '*'}"
            else:
                crange = f"bytes */{total}"
            try:
                r = self.http.put(url, data=data, headers={"Content-Range": crange}, timeout=self._timeouts)
            except (requests.ConnectionError, requests.Timeout) as exc:
                failure, r = exc, None
            if r is not None:
                if r.status_code in (200, 201):
                    return r.json()
                if r.status_code == 308:
                    persisted = _persisted(r)
                    end = offset + len(data)
                    if persisted >= end:
                        return None
                    if persisted > offset:  # the service kept part of the chunk: send the rest
                        data, offset = data[persisted - offset:], persisted
                    failure = self._error("write", key, "the service kept only part of a chunk")
                elif r.status_code in _RETRY_STATUS:
                    failure = self._error("write", key, f"the service answered {r.status_code}")
                elif r.status_code in (404, 410):
                    raise self._error("write", key, "the resumable upload session expired or was cancelled")
                elif r.status_code in (401, 403):
                    raise self._error("write", key, "access was denied (check the service account and its roles)")
                else:
                    raise self._error("write", key, f"the service answered {r.status_code}: "
                                      + scrub(r.text, self._secrets())[:200])
            delay = next(delays, None)
            if delay is None:
                if isinstance(failure, StorageError):
                    raise failure
                raise failure  # a requests error: translated by the caller
            sleep(delay)
            status = self._status(url)
            if isinstance(status, dict):
                return status
            if status is not None and status > offset:
                data, offset = data[status - offset:], status

    def _status(self, url: str):
        """Bytes the service persisted for the session (or the resource if it is complete); None if unknown."""
        try:
            r = self.http.put(url, data=b"", headers={"Content-Range": "bytes */*"}, timeout=self._timeouts)
        except Exception:
            return None
        if r.status_code in (200, 201):
            return r.json()
        if r.status_code == 308:
            return _persisted(r)
        return None

    def _cancel(self, url: str) -> None:
        try:
            self.http.delete(url, timeout=self._timeouts)
        except Exception:
            pass  # an unfinalized session is never listed and expires on its own

    def _put_single(self, key, full, data, sha256, meta, until, *, if_absent: bool) -> Optional[StoredObject]:
        from google.api_core import exceptions as gexc

        blob = self._blob_for_write(full, {**meta, "sha256": sha256}, until)
        try:
            blob.upload_from_string(
                data, content_type="application/octet-stream", timeout=self._timeouts, retry=self.retry,
                if_generation_match=0 if if_absent else None, client=self.client,
            )
        except gexc.PreconditionFailed:
            if if_absent:
                return None
            raise
        except Exception as exc:
            if isinstance(exc, gexc.RetryError) and isinstance(exc.cause, gexc.PreconditionFailed) and if_absent:
                return None
            raise self._translate("write", key, exc) from exc
        return StoredObject(key=self._rel(full), size=len(data), sha256=sha256, etag=blob.etag,
                            modified=blob.updated, metadata=meta)

    # reading -------------------------------------------------------------------------------
    def _get_blob(self, op: str, key: str, full: str):
        try:
            blob = self.bucket.get_blob(full, timeout=self._timeouts, retry=self.retry)
        except Exception as exc:
            raise self._translate(op, key, exc) from exc
        if blob is None:
            raise self._not_found(op, key)
        self._bucket_seen = True
        return blob

    def open_read(self, key) -> IO[bytes]:
        """A streamed read of one generation of the object (resumed with a Range request if the
        connection drops; a replaced object makes the read fail rather than mix two versions)."""
        import requests
        from urllib.parse import quote

        full = self._full(key)
        blob = self._get_blob("read", key, full)
        size, generation = int(blob.size or 0), blob.generation
        base = self.endpoint or "https://storage.googleapis.com"
        url = (f"{base}/download/storage/v1/b/{quote(self.bucket_name, safe='')}/o/{quote(full, safe='')}"
               f"?alt=media&generation={generation}")
        http = self.media_http
        state = {"response": None}

        def chunks():
            pos = 0
            delays = backoff_delays(self._attempts)
            while pos < size:
                headers = {"Accept-Encoding": "identity"}
                if pos:
                    headers["Range"] = f"bytes={pos}-"
                try:
                    r = http.get(url, headers=headers, stream=True, timeout=self._timeouts)
                    state["response"] = r
                    if r.status_code == 404:
                        raise self._error("read", key, "the object was deleted or replaced while being read",
                                          ObjectNotFound)
                    if r.status_code in (401, 403):
                        raise self._error("read", key, "access was denied (check the service account and its roles)")
                    if r.status_code not in (200, 206) and r.status_code not in _RETRY_STATUS:
                        raise self._error("read", key, f"the service answered {r.status_code}")
                    if r.status_code in (200, 206):
                        for data in r.iter_content(chunk_size=MiB):
                            if data:
                                pos += len(data)
                                yield data
                        r.close()
                        if pos >= size:
                            return
                except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError):
                    pass
                delay = next(delays, None)
                if delay is None:
                    raise self._error("read", key, "the service could not be reached (connection refused or "
                                      "timed out)" if pos == 0 else "the download broke off and could not be resumed")
                sleep(delay)

        def close():
            if state["response"] is not None:
                state["response"].close()

        return buffered(ChunkReader(chunks(), translate=lambda e: self._translate("read", key, e), on_close=close))

    def stat(self, key) -> StoredObject:
        full = self._full(key)
        return self._to_object(self._get_blob("stat", key, full))

    def _to_object(self, blob) -> StoredObject:
        return self._described(blob.name, blob.size, blob.etag, blob.updated, blob.metadata)

    def retention(self, key) -> Optional[tuple[str, datetime]]:
        """(mode, retain-until) of the object, or None if it has no retention."""
        full = self._full(key)
        blob = self._get_blob("stat", key, full)
        until = blob.retention.retain_until_time
        if until is None:
            return None
        return ("compliance" if blob.retention.mode == "Locked" else "governance"), until

    def _iter_objects(self, full_prefix: str):
        blobs = self.client.list_blobs(self.bucket_name, prefix=full_prefix, timeout=self._timeouts, retry=self.retry)
        return map(self._to_object, blobs)

    # deleting ------------------------------------------------------------------------------
    def delete(self, key) -> None:
        """Remove the object. Deleting a missing object is not an error; one under retention raises."""
        from google.api_core import exceptions as gexc

        full = self._full(key)
        try:
            self.bucket.delete_blob(full, timeout=self._timeouts, retry=self.retry)
        except gexc.NotFound:
            return
        except Exception as exc:
            err = self._translate("delete", key, exc)
            if isinstance(err, ObjectNotFound):
                return
            raise err from exc


def _persisted(response) -> int:
    """The next byte offset the service expects, from a 308 response's Range header (bytes=0-N)."""
    rng = response.headers.get("Range")
    if not rng or "-" not in rng:
        return 0
    try:
        return int(rng.rsplit("-", 1)[1]) + 1
    except ValueError:
        return 0


def _parse_time(value: Optional[str]) -> Optional[datetime]:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(timezone.utc)
