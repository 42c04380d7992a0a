"""A folder on this machine (or a mounted disk) as an object store.

Objects are plain files under the root folder, at their key's path. A write goes to a temporary file
under ``<root>/.pressfleet/tmp/`` first, is flushed to disk, then renamed into place, so a reader never
sees a partial file. The sha256 and any metadata are kept beside it in
``<root>/.pressfleet/meta/<key>.json``. The root folder must exist (a missing mount point must not
silently turn into a folder on the system disk); folders below it are created as needed.

A local folder cannot make objects immutable: asking for it is refused with a StorageError.

Backups hold wp-config.php and every site's data: objects and their records are created mode 0600 and the
folders below the root 0700, whatever the process's umask.
"""

from __future__ import annotations

import errno
import json
import os
import stat as statmod
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Optional

from pressfleet.paths import private_dirs
from pressfleet.storage.base import (
    MiB,
    RESERVED_SEGMENT,
    ChunkReader,
    HashingSource,
    ObjectNotFound,
    SourceError,
    StorageError,
    StoreBase,
    StoredObject,
    buffered,
    validate_metadata,
)


class LocalStore(StoreBase):
    backend = "local folder"
    provider = "local"  # as the PriceTable block names it
    _service_errors = (OSError,)

    def __init__(self, root, prefix: Optional[str] = "", *, part_size: int = MiB, fsync: bool = True) -> None:
        super().__init__(prefix)
        root = Path(root)
        if not root.is_absolute():
            raise ValueError(f"the local storage folder must be an absolute path, not {str(root)[:200]!r}")
        self.root = root
        self.part_size = part_size
        self.fsync = fsync

    def _where(self) -> str:
        return f"{str(self.root)!r}" + (f" (prefix {self.prefix!r})" if self.prefix else "")

    # paths ---------------------------------------------------------------------------------
    def _check_available(self, op: str, key: Optional[str]) -> None:
        if not self.root.is_dir():
            raise self._error(op, key, "the storage folder does not exist (is the disk mounted?)")

    def _path(self, full: str) -> Path:
        return self.root.joinpath(*full.split("/"))

    def _meta_path(self, full: str) -> Path:
        parts = full.split("/")
        return self.root.joinpath(RESERVED_SEGMENT, "meta", *parts[:-1], parts[-1] + ".json")

    def _tmp_dir(self) -> Path:
        return private_dirs(self.root / RESERVED_SEGMENT / "tmp", stop=self.root)

    def _translate(self, op: str, key: Optional[str], exc: OSError) -> StorageError:
        if exc.errno in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST) and op == "write":
            reason = "a folder and an object would share a name (keys 'a' and 'a/b' cannot both exist in a folder)"
        else:
            reason = exc.strerror or type(exc).__name__
        return self._error(op, key, reason)

    def _fsync_dir(self, path: Path) -> None:
        if not self.fsync:
            return
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    # writing -------------------------------------------------------------------------------
    def put_stream(self, key, stream: IO[bytes], *, size_hint=None, metadata=None, immutable_until=None) -> StoredObject:
        return self._put(key, stream, metadata=metadata, immutable_until=immutable_until, if_absent=False)

    def put_if_absent(self, key, data: bytes, *, metadata=None) -> Optional[StoredObject]:
        import io

        return self._put(key, io.BytesIO(bytes(data)), metadata=metadata, immutable_until=None, if_absent=True)

    def _put(self, key, stream, *, metadata, immutable_until, if_absent: bool) -> Optional[StoredObject]:
        full = self._full(key)
        meta = validate_metadata(metadata)
        if immutable_until is not None:
            raise self._error("write", key, "a local folder cannot make objects immutable (use S3 Object Lock)")
        self._check_available("write", key)
        src = HashingSource(stream)
        target = self._path(full)
        tmp: Optional[Path] = None
        try:
            tmp = self._tmp_dir() / f"{uuid.uuid4().hex}.part"
            with _create_private(tmp) as f:
                while not src.eof:
                    data = src.read_part(self.part_size)
                    if data:
                        f.write(data)
                    del data  # let the part go before the next one is read
                f.flush()
                if self.fsync:
                    os.fsync(f.fileno())
            private_dirs(target.parent, stop=self.root)
            if if_absent:
                try:
                    os.link(tmp, target)
                except FileExistsError:
                    return None
                os.unlink(tmp)
            else:
                if target.is_dir():
                    raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
                os.replace(tmp, target)
            tmp = None
            self._fsync_dir(target.parent)
            st = os.stat(target)
            self._write_meta(full, {"sha256": src.sha256, "size": src.size, "metadata": meta})
        except SourceError as exc:
            raise exc.original from None
        except OSError as exc:
            raise self._translate("write", key, exc) from exc
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
        return StoredObject(key=self._rel(full), size=src.size, sha256=src.sha256, etag=_etag(st),
                            modified=_mtime(st), metadata=meta)

    def _write_meta(self, full: str, record: dict) -> None:
        path = self._meta_path(full)
        private_dirs(path.parent, stop=self.root)
        tmp = self._tmp_dir() / f"{uuid.uuid4().hex}.meta"
        with _create_private(tmp) as f:
            f.write(json.dumps(record).encode())
        os.replace(tmp, path)

    def _read_meta(self, full: str, size: int) -> tuple[Optional[str], dict]:
        try:
            record = json.loads(self._meta_path(full).read_text())
        except (OSError, ValueError):
            return None, {}
        if not isinstance(record, dict) or record.get("size") != size:
            return None, {}  # the file was replaced behind our back: the recorded digest is not its own
        return record.get("sha256"), dict(record.get("metadata") or {})

    # reading -------------------------------------------------------------------------------
    def open_read(self, key) -> IO[bytes]:
        full = self._full(key)
        self._check_available("read", key)
        try:
            f = open(self._path(full), "rb")
            if not statmod.S_ISREG(os.fstat(f.fileno()).st_mode):
                f.close()
                raise FileNotFoundError(errno.ENOENT, "not a file")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise self._error("read", key, "no such object", ObjectNotFound) from None
        except OSError as exc:
            raise self._translate("read", key, exc) from exc
        chunks = iter(lambda: f.read(MiB), b"")
        return buffered(ChunkReader(chunks, translate=lambda e: self._translate("read", key, e), on_close=f.close))

    def stat(self, key) -> StoredObject:
        full = self._full(key)
        self._check_available("stat", key)
        try:
            st = os.stat(self._path(full))
        except (FileNotFoundError, NotADirectoryError):
            raise self._error("stat", key, "no such object", ObjectNotFound) from None
        except OSError as exc:
            raise self._translate("stat", key, exc) from exc
        if not statmod.S_ISREG(st.st_mode):
            raise self._error("stat", key, "no such object", ObjectNotFound)
        sha, meta = self._read_meta(full, st.st_size)
        return StoredObject(key=self._rel(full), size=st.st_size, sha256=sha, etag=_etag(st), modified=_mtime(st),
                            metadata=meta)

    def retention(self, key) -> None:
        """A local folder keeps no retention: always None (ObjectNotFound if the object is missing)."""
        self.stat(key)
        return None

    def _iter_objects(self, full_prefix: str):
        base_rel = full_prefix[: full_prefix.rfind("/") + 1]
        base = self._path(base_rel.rstrip("/")) if base_rel else self.root
        if not base.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(base, onerror=_raise):
            rel_dir = os.path.relpath(dirpath, self.root)
            rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
            if not rel_dir:
                dirnames[:] = [d for d in dirnames if not d.startswith(RESERVED_SEGMENT)]
            dirnames.sort()
            for name in sorted(filenames):
                full = rel_dir + name
                if not full.startswith(full_prefix) or not full.startswith(self.prefix):
                    continue
                if not rel_dir and name.startswith(RESERVED_SEGMENT):
                    continue
                st = os.lstat(os.path.join(dirpath, name))
                if not statmod.S_ISREG(st.st_mode):
                    continue
                sha, meta = self._read_meta(full, st.st_size)
                yield StoredObject(key=self._rel(full), size=st.st_size, sha256=sha, etag=_etag(st),
                                   modified=_mtime(st), metadata=meta)

    # deleting ------------------------------------------------------------------------------
    def delete(self, key) -> None:
        """Remove the object (and its recorded digest). Deleting a missing object is not an error."""
        full = self._full(key)
        self._check_available("delete", key)
        path = self._path(full)
        try:
            if path.is_dir():
                raise self._error("delete", key, "that name is a folder, not an object")
            try:
                os.unlink(path)
            except (FileNotFoundError, NotADirectoryError):
                pass
            try:
                os.unlink(self._meta_path(full))
            except (FileNotFoundError, NotADirectoryError):
                pass
        except OSError as exc:
            raise self._translate("delete", key, exc) from exc
        self._prune_empty(path.parent, self.root)
        self._prune_empty(self._meta_path(full).parent, self.root / RESERVED_SEGMENT / "meta")

    @staticmethod
    def _prune_empty(folder: Path, stop: Path) -> None:
        while folder != stop and stop in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent


def _create_private(path: Path) -> IO[bytes]:
    """A new file for the owner alone (never an existing one, never through a link)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), "wb")


def _raise(exc: OSError) -> None:
    raise exc


def _etag(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns:x}-{st.st_size:x}"


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, tz=timezone.utc)
