"""Storage blocks: where pressfleet keeps backups (a local folder, S3, Google Cloud Storage, Azure Blob).

Register the block types once (they then appear in the UI's block catalogue):

    prefect block register -f blocks/storage.py

Each block checks its values when it is built and has one method, ``store()``, which returns the
object store the backup flows write to (see pressfleet/storage). Keys, passwords, connection strings
and service-account keys are secrets: the API and UI show them as ********, and they never appear
in the block's repr, in logs or in error messages.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal, Optional, Union
from urllib.parse import urlsplit

from prefect.blocks.core import Block
from pydantic import BeforeValidator, ConfigDict, Field, SecretStr, model_validator

from pressfleet.storage.base import InvalidKey, ObjectStore, normalize_store_prefix

_LOCK_MODE_HELP = (
    "governance: the lock can be lifted by an administrator with special permission; compliance: "
    "nobody can shorten or remove it, not even the account owner, until it expires."
)


# --- field types: each checks (and tidies) its value before pydantic's own validation --------------


def _check_prefix(value: Optional[str]) -> str:
    try:
        return normalize_store_prefix((value or "").strip())
    except InvalidKey as exc:
        raise ValueError(str(exc)) from None


def _check_endpoint(value: Optional[str]) -> Optional[str]:
    if value is None or not str(value).strip():
        return None
    value = str(value).strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the endpoint must be an http:// or https:// URL, e.g. https://s3.example.com")
    if parts.username or parts.password or parts.query:
        raise ValueError("the endpoint URL must not carry a user, password or query string; use the credential fields")
    return value.rstrip("/")


def _check_path(value) -> str:
    if not isinstance(value, (str, Path)) or not str(value).strip():
        raise ValueError("the folder must be an absolute path, e.g. /srv/backups")
    value = str(value).strip()
    if not value.startswith("/"):
        raise ValueError(f"the folder must be an absolute path (starting with /), not {value[:100]!r}")
    if "\x00" in value:
        raise ValueError("the folder path contains a NUL character")
    return value


def _check_service_account(value) -> Optional[SecretStr]:
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if raw is None or not str(raw).strip():
        return None
    try:
        info = json.loads(raw)
    except (TypeError, ValueError):
        raise ValueError("the service-account key is not valid JSON (paste the whole key file)") from None
    if not isinstance(info, dict) or info.get("type") != "service_account" or "private_key" not in info \
            or "client_email" not in info:
        raise ValueError("the JSON is not a service-account key (it needs type, client_email and private_key)")
    return SecretStr(str(raw).strip())


def _name(pattern: str, message: str) -> BeforeValidator:
    """A required name (bucket, container): surrounding blanks dropped, then it must match pattern."""
    pattern = re.compile(pattern)

    def check(value):
        value = value.strip() if isinstance(value, str) else value
        if not isinstance(value, str) or not pattern.match(value):
            raise ValueError(message)
        return value

    return BeforeValidator(check)


def _optional_name(pattern: str, message: str) -> BeforeValidator:
    """An optional name (region, key ID, account): empty means None, else it must match pattern."""
    pattern = re.compile(pattern)

    def check(value):
        if value is None or not str(value).strip():
            return None
        value = str(value).strip()
        if not pattern.match(value):
            raise ValueError(message)
        return value

    return BeforeValidator(check)


LockMode = Literal["governance", "compliance"]
LockDays = Annotated[Optional[int], Field(ge=1, le=36500)]
Folder = Annotated[str, BeforeValidator(_check_path)]
StorePrefix = Annotated[str, BeforeValidator(_check_prefix)]
Endpoint = Annotated[Optional[str], BeforeValidator(_check_endpoint)]
S3Bucket = Annotated[str, _name(
    r"^(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
    "the bucket name must be 3-63 lower-case letters, digits, dots and dashes, e.g. acme-wp-backups")]
GCSBucket = Annotated[str, _name(
    r"^(?!.*\.\.)[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$",
    "the bucket name must be lower-case letters, digits, dots, dashes and underscores, e.g. acme-wp-backups")]
AzureContainer = Annotated[str, _name(
    r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$",
    "the container name must be 3-63 lower-case letters, digits and single dashes, e.g. wp-backups")]
AWSRegion = Annotated[Optional[str], _optional_name(
    r"^[a-z]{2}(-[a-z0-9]+)+-\d+$|^[a-z0-9-]{2,40}$", "the region must look like eu-central-1")]
AccessKeyID = Annotated[Optional[str], _optional_name(
    r"^[A-Za-z0-9_-]{3,128}$", "the access key ID must be letters and digits, e.g. AKIAIOSFODNN7EXAMPLE")]
AzureAccount = Annotated[Optional[str], _optional_name(
    r"^[a-z0-9]{3,24}$", "the account name must be 3-24 lower-case letters and digits")]
ServiceAccountKey = Annotated[Optional[SecretStr], BeforeValidator(_check_service_account)]


class _StorageBlock(Block):
    # Never echo a rejected value (it could be a key) inside a validation error.
    model_config = ConfigDict(hide_input_in_errors=True)

    encryption: Literal["required", "none"] = Field(
        "required", title="Encryption",
        description="required: every backup run needs the backup key (Secret block pressfleet-backup-key, or the "
                    "run's key) and is refused without it. none: without a key, backups are written in plaintext "
                    "on purpose (wp-config.php and its database password readable by anyone who reads this "
                    "storage; nothing authenticated beyond checksums).")

    def store(self) -> ObjectStore:  # pragma: no cover - every subclass defines it
        raise NotImplementedError


class LocalStorage(_StorageBlock):
    """Backups in a folder on the machine that runs the flows (a mounted disk or NFS share, say).

    The folder must already exist: a missing mount point is reported, never silently replaced by a
    folder on the system disk. Objects are written to a temporary file and renamed into place.
    """

    _block_type_name = "Local Storage"
    _block_type_slug = "local-storage"
    _description = (
        "Backups kept in a folder on the machine running the flows, e.g. a mounted backup disk. "
        "Writes are atomic (temporary file, then rename); the folder must exist."
    )

    path: Folder = Field(
        ...,
        title="Folder",
        description="Absolute path of an existing folder, e.g. /srv/backups or /mnt/backup-disk/pressfleet.",
    )

    def store(self):
        from pressfleet.storage.local import LocalStore

        return LocalStore(Path(self.path))


class S3Storage(_StorageBlock):
    """Backups in an Amazon S3 bucket, or in any S3-compatible service given by its endpoint URL.

    Leave the access key empty to use the machine's AWS credentials (environment, ~/.aws, instance
    role). Set Object Lock days to write every object with a retention date: the bucket must have
    been created with Object Lock enabled.
    """

    _block_type_name = "S3 Storage"
    _block_type_slug = "s3-storage"
    _description = (
        "Backups in an Amazon S3 bucket or an S3-compatible service (MinIO, Wasabi, Backblaze B2, ...). "
        "Streams large objects as multipart uploads; optional Object Lock retention on every object."
    )

    bucket: S3Bucket = Field(..., title="Bucket", description="Bucket name, e.g. acme-wp-backups (3-63 lower-case letters, digits, dots, dashes).")
    prefix: StorePrefix = Field("", title="Prefix", description="Folder inside the bucket for all pressfleet objects, e.g. pressfleet/ (empty: the bucket root).")
    region: AWSRegion = Field(None, title="Region", description="AWS region of the bucket, e.g. eu-central-1. Leave empty for the default (us-east-1 with a custom endpoint).")
    endpoint_url: Endpoint = Field(None, title="Endpoint URL", description="Only for S3-compatible services: their URL, e.g. https://s3.eu-central-003.backblazeb2.com. Leave empty for AWS.")
    access_key_id: AccessKeyID = Field(None, title="Access key ID", description="Access key ID of a user allowed to read, write, list and delete in the bucket. Empty: the machine's AWS credentials.")
    secret_access_key: Optional[SecretStr] = Field(None, title="Secret access key", description="The secret that goes with the access key ID. Stored as a secret.")
    object_lock_days: LockDays = Field(None, title="Object Lock days", description="Keep every object immutable for this many days (S3 Object Lock). The bucket must have Object Lock enabled. Empty: no lock.")
    object_lock_mode: LockMode = Field("governance", title="Object Lock mode", description=_LOCK_MODE_HELP)

    @model_validator(mode="after")
    def _check_pair(self):
        has_secret = self.secret_access_key is not None and self.secret_access_key.get_secret_value() != ""
        if bool(self.access_key_id) != has_secret:
            raise ValueError("give both the access key ID and the secret access key, or neither (machine credentials)")
        return self

    def store(self):
        from pressfleet.storage.s3 import S3Store

        return S3Store(
            self.bucket, self.prefix, region=self.region, endpoint_url=self.endpoint_url,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key.get_secret_value() if self.secret_access_key else None,
            lock_days=self.object_lock_days, lock_mode=self.object_lock_mode,
        )


class GCSStorage(_StorageBlock):
    """Backups in a Google Cloud Storage bucket.

    Paste a service-account key (JSON) with the Storage Object Admin role on the bucket, or leave it
    empty to use the machine's Application Default Credentials. Retention days need a bucket with
    object retention enabled.
    """

    _block_type_name = "GCS Storage"
    _block_type_slug = "gcs-storage"
    _description = (
        "Backups in a Google Cloud Storage bucket. Streams large objects as resumable uploads; "
        "optional object retention on every object."
    )

    bucket: GCSBucket = Field(..., title="Bucket", description="Bucket name, e.g. acme-wp-backups.")
    prefix: StorePrefix = Field("", title="Prefix", description="Folder inside the bucket for all pressfleet objects, e.g. pressfleet/ (empty: the bucket root).")
    project: Optional[str] = Field(None, title="Project", description="Google Cloud project ID, e.g. acme-hosting. Empty: the one in the service-account key or the machine's default.")
    endpoint: Endpoint = Field(None, title="Endpoint", description="Only for a test server or private endpoint, e.g. http://127.0.0.1:9023. Leave empty for Google Cloud.")
    service_account_json: ServiceAccountKey = Field(None, title="Service-account key (JSON)", description="The whole JSON key file of a service account allowed to use the bucket. Stored as a secret. Empty: Application Default Credentials.")
    retention_days: LockDays = Field(None, title="Retention days", description="Keep every object under retention for this many days. The bucket must have object retention enabled. Empty: no retention.")
    retention_mode: LockMode = Field("governance", title="Retention mode", description="governance: Unlocked retention (can be shortened with special permission); compliance: Locked retention (cannot be shortened or removed).")

    def store(self):
        from pressfleet.storage.gcs import GCSStore

        return GCSStore(
            self.bucket, self.prefix, project=self.project, endpoint=self.endpoint,
            service_account_info=self.service_account_json.get_secret_value() if self.service_account_json else None,
            lock_days=self.retention_days, lock_mode=self.retention_mode,
        )


class AzureBlobStorage(_StorageBlock):
    """Backups in an Azure Blob Storage container.

    Give either a connection string (from the storage account's Access keys page) or the account
    name and one of its keys. Immutability days need a container with version-level immutability
    support enabled.
    """

    _block_type_name = "Azure Blob Storage"
    _block_type_slug = "azure-blob-storage"
    _description = (
        "Backups in an Azure Blob Storage container. Streams large objects as staged blocks "
        "committed at the end; optional immutability policy on every blob."
    )

    container: AzureContainer = Field(..., title="Container", description="Container name, e.g. wp-backups (3-63 lower-case letters, digits and dashes).")
    prefix: StorePrefix = Field("", title="Prefix", description="Folder inside the container for all pressfleet blobs, e.g. pressfleet/ (empty: the container root).")
    connection_string: Optional[SecretStr] = Field(None, title="Connection string", description="The storage account's connection string (DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...). Stored as a secret. Or leave empty and give the account name and key.")
    account_name: AzureAccount = Field(None, title="Account name", description="Storage account name, e.g. acmebackups (with the account key, instead of a connection string).")
    account_key: Optional[SecretStr] = Field(None, title="Account key", description="One of the storage account's access keys. Stored as a secret.")
    endpoint: Endpoint = Field(None, title="Blob endpoint", description="Only with account name and key, for a non-default endpoint, e.g. http://127.0.0.1:10000/devstoreaccount1. Empty: https://<account>.blob.core.windows.net.")
    immutability_days: LockDays = Field(None, title="Immutability days", description="Keep every blob immutable for this many days. The container needs version-level immutability support. Empty: none.")
    immutability_mode: LockMode = Field("governance", title="Immutability mode", description="governance: Unlocked policy (can be shortened or removed); compliance: Locked policy (can only be extended).")

    @model_validator(mode="after")
    def _check_credentials(self):
        conn = self.connection_string.get_secret_value().strip() if self.connection_string else ""
        key = self.account_key.get_secret_value().strip() if self.account_key else ""
        if conn and (self.account_name or key or self.endpoint):
            raise ValueError("give either a connection string or an account name and key, not both "
                             "(put a custom endpoint in the connection string as BlobEndpoint=...)")
        if not conn and not (self.account_name and key):
            raise ValueError("give either a connection string or an account name and account key")
        if conn:
            from pressfleet.storage.azure import parse_connection_string

            fields = parse_connection_string(conn)
            if not fields.get("AccountName") and not fields.get("BlobEndpoint"):
                raise ValueError("the connection string has no AccountName or BlobEndpoint; copy it whole from the portal")
        return self

    def store(self):
        from pressfleet.storage.azure import AzureBlobStore

        return AzureBlobStore(
            self.container, self.prefix,
            connection_string=self.connection_string.get_secret_value().strip() if self.connection_string else None,
            account_name=self.account_name,
            account_key=self.account_key.get_secret_value().strip() if self.account_key else None,
            endpoint=self.endpoint, lock_days=self.immutability_days, lock_mode=self.immutability_mode,
        )


# What a flow parameter takes when any storage will do: the UI offers the four block types.
AnyStorage = Union[LocalStorage, S3Storage, GCSStorage, AzureBlobStorage]
