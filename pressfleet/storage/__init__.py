"""Object storage for backups: one small interface, four backends (local folder, S3, GCS, Azure Blob).

    from pressfleet.storage import LocalStore
    store = LocalStore("/srv/backups")
    obj = store.put_stream("site1/2026-01-31/db.sql.zst", stream)   # bounded memory, sha256 on the way
    with store.open_read(obj.key) as f: ...

The cloud backends import their SDK only when used. People configure a store as a Prefect block
(blocks/storage.py), whose ``store()`` returns one of these.
"""

from pressfleet.storage.base import (
    DEFAULT_PART_SIZE,
    InvalidKey,
    ObjectNotFound,
    ObjectStore,
    StorageError,
    StoredObject,
    validate_key,
    validate_prefix,
)
from pressfleet.storage.local import LocalStore


def __getattr__(name: str):
    if name == "S3Store":
        from pressfleet.storage.s3 import S3Store

        return S3Store
    if name == "GCSStore":
        from pressfleet.storage.gcs import GCSStore

        return GCSStore
    if name == "AzureBlobStore":
        from pressfleet.storage.azure import AzureBlobStore

        return AzureBlobStore
    raise AttributeError(name)


__all__ = [
    "DEFAULT_PART_SIZE", "InvalidKey", "ObjectNotFound", "ObjectStore", "StorageError", "StoredObject",
    "validate_key", "validate_prefix", "LocalStore", "S3Store", "GCSStore", "AzureBlobStore",
]
