"""Amazon S3 (or an S3-compatible service given by endpoint_url) as an object store, with boto3.

Large writes are multipart uploads: one part (16 MiB by default, grown to fit 10,000 parts when a
size hint says so) is read, hashed and sent at a time, then the upload is completed; any failure
aborts it, so no partial object is ever listed. An object that fits in one part is a single
PutObject carrying its sha256 as metadata (x-amz-meta-sha256). botocore adds a CRC32 checksum to
every part that S3 verifies on receipt.

Object Lock: with ``lock_days`` (or ``immutable_until`` on a write) each object is written with a
retention date (GOVERNANCE or COMPLIANCE mode); the bucket must have been created with Object Lock
enabled. ``delete`` removes the current version by its version id, so on a locked object it fails
with a StorageError saying it is locked until when.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import IO, Optional

from pressfleet.storage.base import (
    DEFAULT_PART_SIZE,
    MIN_PART_SIZE,
    ChunkReader,
    CloudStoreBase,
    HashingSource,
    MiB,
    ObjectNotFound,
    StorageError,
    StoredObject,
    buffered,
    located,
    scrub,
    unquote_etag,
)

MAX_PARTS = 10_000
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_DENIED = {"AccessDenied", "403", "Forbidden", "AllAccessDisabled"}
_BAD_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "InvalidClientTokenId"}


class S3Store(CloudStoreBase):
    backend = "S3"
    provider = "s3"  # as the PriceTable block names it
    max_parts = MAX_PARTS
    max_single_put = 5 * 1024 * MiB

    def __init__(
        self,
        bucket: str,
        prefix: Optional[str] = "",
        *,
        region: Optional[str] = None,
        endpoint_url: Optional[str] = None,
        access_key_id: Optional[str] = None,
        secret_access_key: Optional[str] = None,
        session_token: Optional[str] = None,
        part_size: int = DEFAULT_PART_SIZE,
        lock_days: Optional[int] = None,
        lock_mode: str = "governance",
        in_flight: int = 2,
        attempts: int = 5,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ) -> None:
        super().__init__(prefix, lock_days=lock_days, lock_mode=lock_mode)
        if not bucket:
            raise ValueError("the S3 bucket name is empty")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"the S3 part size must be at least {MIN_PART_SIZE // MiB} MiB")
        self.bucket = bucket
        self.region = region
        self.endpoint_url = endpoint_url
        self._set_transfer(part_size, in_flight, attempts, connect_timeout, read_timeout)
        self._access_key_id = access_key_id
        self._secret = secret_access_key
        self._session_token = session_token
        self._client = None

    # client --------------------------------------------------------------------------------
    def _where(self) -> str:
        return located(f"bucket {self.bucket!r}", self.endpoint_url)

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            cfg = Config(
                connect_timeout=self._timeouts[0],
                read_timeout=self._timeouts[1],
                retries={"max_attempts": self._attempts, "mode": "standard"},
                s3={"addressing_style": "path"} if self.endpoint_url else None,
            )
            session = boto3.session.Session(
                aws_access_key_id=self._access_key_id,
                aws_secret_access_key=self._secret,
                aws_session_token=self._session_token,
                region_name=self.region or ("us-east-1" if self.endpoint_url else None),
            )
            try:
                self._client = session.client("s3", endpoint_url=self.endpoint_url or None, config=cfg)
            except Exception as exc:
                raise self._error("connection setup", None, scrub(str(exc), self._secrets())) from None
        return self._client

    def _secrets(self) -> list[str]:
        return [s for s in (self._secret, self._session_token, self._access_key_id) if s]

    def _translate(self, op: str, key: Optional[str], exc: BaseException, *, lock_info: str = "") -> StorageError:
        from botocore.exceptions import (
            ClientError,
            ConnectionError as BotoConnectionError,
            HTTPClientError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        if isinstance(exc, StorageError):
            return exc
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":
                return self._error(op, key, "the bucket does not exist")
            if code in _NOT_FOUND or status == 404:
                return self._error(op, key, "no such object", ObjectNotFound)
            if code in _BAD_CREDENTIALS:
                return self._error(op, key, "the service refused the access key (check the key id and secret)")
            if code in _DENIED or status == 403:
                if lock_info:
                    return self._error(op, key, f"the object is locked by S3 Object Lock {lock_info}")
                return self._error(op, key, "access was denied (check the credentials and the bucket policy)")
            message = scrub(str(err.get("Message") or ""), self._secrets())
            return self._error(op, key, f"the service answered {code or status}{': ' + message if message else ''}")
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return self._error(op, key, "no S3 credentials were given or found")
        if isinstance(exc, BotoConnectionError):
            return self._error(op, key, "the service could not be reached (connection refused or timed out)")
        if isinstance(exc, HTTPClientError):  # e.g. ConnectionClosedError: the service dropped the connection
            return self._error(op, key, "the service could not be reached (it closed the connection before "
                                        "answering, on every attempt)")
        return self._error(op, key, scrub(f"{type(exc).__name__}: {exc}", self._secrets()))

    # writing -------------------------------------------------------------------------------
    def _lock_args(self, until: Optional[datetime]) -> dict:
        if until is None:
            return {}
        return {"ObjectLockMode": self.lock_mode.upper(), "ObjectLockRetainUntilDate": until}

    def _connect(self) -> None:
        self.client

    def _put_parts(self, key, full, src: HashingSource, first: list, part_size: int, meta, until) -> StoredObject:
        """A multipart upload, aborted if any part or the completion fails."""
        client = self.client
        upload_id = client.create_multipart_upload(
            Bucket=self.bucket, Key=full, Metadata=meta, ContentType="application/octet-stream",
            **self._lock_args(until),
        )["UploadId"]

        def send(number: int, data: bytes, last: bool) -> dict:
            r = client.upload_part(Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=number, Body=data)
            return {"ETag": r["ETag"], "PartNumber": number}

        try:
            parts = self._upload_parts(key, src, first, part_size, send)
            done = client.complete_multipart_upload(
                Bucket=self.bucket, Key=full, UploadId=upload_id, MultipartUpload={"Parts": parts},
            )
        except BaseException:
            self._abort(full, upload_id)
            raise
        if until is not None:
            self._ensure_retention(key, full, until)
        return StoredObject(key=self._rel(full), size=src.size, sha256=src.sha256, etag=unquote_etag(done.get("ETag")),
                            modified=datetime.now(timezone.utc), metadata=meta)

    def _put_single(self, key, full, data, sha256, meta, until, *, if_absent: bool) -> Optional[StoredObject]:
        args = dict(Bucket=self.bucket, Key=full, Body=data, Metadata={**meta, "sha256": sha256},
                    ContentType="application/octet-stream", **self._lock_args(until))
        if if_absent:
            args["IfNoneMatch"] = "*"
        try:
            resp = self.client.put_object(**args)
        except Exception as exc:
            from botocore.exceptions import ClientError

            if if_absent and isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in (
                "PreconditionFailed", "ConditionalRequestConflict"
            ):
                return None
            raise self._translate("write", key, exc) from exc
        return StoredObject(key=self._rel(full), size=len(data), sha256=sha256, etag=unquote_etag(resp.get("ETag")),
                            modified=datetime.now(timezone.utc), metadata=meta)

    def _abort(self, full: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
        except Exception:
            pass  # a lifecycle rule (AbortIncompleteMultipartUpload) cleans up what could not be aborted now

    def _ensure_retention(self, key: str, full: str, until: datetime) -> None:
        """S3 applies the lock given at CreateMultipartUpload; some S3-compatible services drop it: set it then."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=full)
            have = head.get("ObjectLockRetainUntilDate")
            if have is not None and have >= until.replace(microsecond=0):
                return
            args = dict(Bucket=self.bucket, Key=full,
                        Retention={"Mode": self.lock_mode.upper(), "RetainUntilDate": until})
            if head.get("VersionId") and head["VersionId"] != "null":
                args["VersionId"] = head["VersionId"]
            self.client.put_object_retention(**args)
        except Exception as exc:
            raise self._translate("object lock", key, exc) from exc

    # reading -------------------------------------------------------------------------------
    def open_read(self, key) -> IO[bytes]:
        full = self._full(key)
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=full)
        except Exception as exc:
            raise self._translate("read", key, exc) from exc
        body = resp["Body"]
        return buffered(ChunkReader(body.iter_chunks(chunk_size=MiB),
                                    translate=lambda e: self._translate("read", key, e), on_close=body.close))

    def _head(self, op: str, key: str, full: str, *, check_bucket: bool = True) -> dict:
        """HEAD of the object; a 404 is told apart from a missing bucket unless check_bucket is off."""
        try:
            return self.client.head_object(Bucket=self.bucket, Key=full)
        except Exception as exc:
            err = self._translate(op, key, exc)
            if check_bucket and isinstance(err, ObjectNotFound):
                err = self._not_found(op, key)
            raise err from exc

    def stat(self, key) -> StoredObject:
        full = self._full(key)
        head = self._head("stat", key, full)
        self._bucket_seen = True
        return self._described(full, head.get("ContentLength", 0), unquote_etag(head.get("ETag")),
                               head.get("LastModified"), head.get("Metadata"))

    def _bucket_exists(self) -> bool:
        """HEAD answers a bare 404 for a missing bucket too: so a 404 for an object asks this."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            if isinstance(self._translate("stat", None, exc), ObjectNotFound):
                return False
            raise
        return True

    def retention(self, key) -> Optional[tuple[str, datetime]]:
        """(mode, retain-until) of the object's current version, or None if it is not locked."""
        head = self._head("stat", key, self._full(key), check_bucket=False)
        if head.get("ObjectLockRetainUntilDate") is None:
            return None
        return str(head.get("ObjectLockMode", "")).lower(), head["ObjectLockRetainUntilDate"]

    def _iter_objects(self, full_prefix: str):
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full_prefix):
            for item in page.get("Contents", []):
                yield StoredObject(key=self._rel(item["Key"]), size=int(item["Size"]), sha256=None,
                                   etag=unquote_etag(item.get("ETag")), modified=item.get("LastModified"))

    # deleting ------------------------------------------------------------------------------
    def delete(self, key) -> None:
        """Remove the object's current version (by version id where the bucket keeps versions).

        Deleting a missing object is not an error; deleting a locked one raises a StorageError.
        """
        full = self._full(key)
        try:
            head = self._head("delete", key, full)
        except ObjectNotFound:
            return
        version = head.get("VersionId")
        lock_until = head.get("ObjectLockRetainUntilDate")
        lock_info = ""
        if lock_until is not None and lock_until > datetime.now(timezone.utc):
            lock_info = f"({str(head.get('ObjectLockMode', '')).upper()}) until {lock_until.isoformat()}"
        try:
            if version and version != "null":
                self.client.delete_object(Bucket=self.bucket, Key=full, VersionId=version)
            else:
                self.client.delete_object(Bucket=self.bucket, Key=full)
        except Exception as exc:
            raise self._translate("delete", key, exc, lock_info=lock_info) from exc


