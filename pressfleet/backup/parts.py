"""A backup's parts in storage: written (zstd bytes, encrypted with a key, hashed as stored) and read back
(decrypted, checked against the manifest's sha256 and size at the latest at end of stream)."""

from __future__ import annotations

import contextlib
import io
from typing import IO, Optional

import zstandard

from pressfleet.backup.crypto import DecryptingReader, DecryptionError, EncryptingReader
from pressfleet.backup.index import Entry, load_index
from pressfleet.backup.manifest import BackupManifest, ManifestPart
from pressfleet.backup.streams import COPY_CHUNK, HashingReader
from pressfleet.storage.base import ObjectStore, StorageError
from pressfleet.validate import InvalidInput


class BrokenPart(Exception):
    """A part of a backup does not match its manifest (or does not decrypt); says which."""





def upload_part(store: ObjectStore, key: str, name: str, src: IO[bytes], secret: Optional[str],
                metadata: Optional[dict] = None) -> ManifestPart:
    """Stream `src` (compressed bytes) to `key`, encrypted when `secret` is set; hash what is stored."""
    stream: IO[bytes] = src
    if secret:
        stream = io.BufferedReader(EncryptingReader(src, secret, aad=key, store=store), buffer_size=COPY_CHUNK)
    hashing = HashingReader(stream)
    obj = store.put_stream(key, io.BufferedReader(hashing, buffer_size=COPY_CHUNK), metadata=metadata)
    if obj.size != hashing.size:
        raise StorageError(f"{store.describe()} stored {obj.size} bytes for {key}, {hashing.size} were sent",
                           key=key, operation="put")
    return ManifestPart(name=name, key=key, sha256=hashing.sha256, size=hashing.size, compressed=True,
                        encrypted=bool(secret))


def read_index(store: ObjectStore, manifest: BackupManifest, secret: Optional[str]) -> list[Entry]:
    part = manifest.part("index")
    if part is None:
        raise BrokenPart(f"backup {manifest.backup_id!r} has no index part")
    with open_part(store, manifest, "index", secret) as plain:
        data = plain.read()
    return load_index(data)





class CheckedObject(io.RawIOBase):
    """Plaintext of a stored object; at end of stream the stored bytes' sha256 and size are checked
    against `expected` (a part of a manifest, or a shipped binary log's record)."""

    def __init__(self, store: ObjectStore, expected: ManifestPart, what: str, secret: Optional[str],
                 *, expand: bool = False) -> None:
        super().__init__()
        if expected.encrypted and not secret:
            raise InvalidInput(f"{what} is encrypted: configure its encryption key")
        self._what, self._expected = f"{what} ({expected.key})", expected
        try:
            raw = store.open_read(expected.key)
        except StorageError as exc:
            raise BrokenPart(f"{self._what} cannot be read: {exc}") from None
        self._raw = raw
        self._hash = HashingReader(raw)
        stream: IO[bytes] = io.BufferedReader(self._hash, buffer_size=COPY_CHUNK)
        try:
            if expected.encrypted:
                stream = io.BufferedReader(DecryptingReader(stream, secret, what=self._what, aad=expected.key,
                                                            store=store), buffer_size=COPY_CHUNK)
            self._plain = zstandard.ZstdDecompressor().stream_reader(stream, read_size=COPY_CHUNK) if expand \
                else stream
        except DecryptionError as exc:
            raise BrokenPart(str(exc)) from None
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        try:
            data = self._plain.read(len(b))
        except DecryptionError as exc:
            raise BrokenPart(str(exc)) from None
        except zstandard.ZstdError as exc:
            raise BrokenPart(f"{self._what} does not decompress: {exc}") from None
        if not data:
            self.check()
            return 0
        b[:len(data)] = data
        return len(data)

    def check(self) -> None:
        if self._checked:
            return
        while self._hash.read(COPY_CHUNK):  # whatever the consumer did not read still counts
            pass
        problem = self._expected.mismatch(self._hash.sha256, self._hash.size, self._what)
        if problem:
            raise BrokenPart(problem)
        self._checked = True

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._raw.close()
        super().close()


def open_part(store: ObjectStore, manifest: BackupManifest, name: str, secret: Optional[str]) -> io.BufferedReader:
    """A readable plaintext stream of a part (zstd-compressed for all but the index, which is expanded);
    raises BrokenPart when the stored bytes do not match the manifest, at the latest at end of stream."""
    part = manifest.part(name)
    if part is None:
        raise BrokenPart(f"backup {manifest.backup_id!r} of {manifest.site} has no {name} part")
    what = f"part {name!r} of backup {manifest.backup_id!r}"
    return io.BufferedReader(CheckedObject(store, part, what, secret, expand=name == "index"), buffer_size=COPY_CHUNK)

