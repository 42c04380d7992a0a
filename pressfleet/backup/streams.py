"""Byte streams between a host and storage, with bounded memory on the control side.

- `RemoteReader`: the standard output of a command on the host, read as a file (SSH flow control
  holds the host back while storage is slow, so nothing piles up here). Its exit status is checked
  at end of file: a failed command or a dropped connection raises instead of ending the stream, so
  an upload reading it is aborted, never completed short.
- `RemoteWriter`: the standard input of a command on the host, written chunk by chunk.
- `HashingReader`: counts and hashes the bytes that pass (what storage receives, or what it returned).
- `on_bytes(callback)`: within the block, every stream opened reports the bytes it moves to CALLBACK (a
  terminal's progress display, pressfleet.cli.progress).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import io
import shlex
import threading
from typing import IO, Callable, Iterable, Iterator, Optional

import paramiko
from fabric import Connection

from pressfleet.ssh.remote import RemoteCommandError, display_host, open_channel

COPY_CHUNK = 1 << 20
STDERR_KEEP = 256 * 1024
# Taken when a stream opens, so whichever thread reads it (an uploader's) reports to the opener's listener.
_ON_BYTES: contextvars.ContextVar[Callable[[int], None] | None] = contextvars.ContextVar("pressfleet_on_bytes",
                                                                                       default=None)


@contextlib.contextmanager
def on_bytes(callback: Callable[[int], None]) -> Iterator[None]:
    """Within this block, streams to and from hosts call CALLBACK(n) with each chunk's size."""
    token = _ON_BYTES.set(callback)
    try:
        yield
    finally:
        _ON_BYTES.reset(token)


class ConnectionDropped(RemoteCommandError):
    """The SSH connection ended before the command reported how it exited."""

    def __init__(self, host: str, program: str, detail: str = "") -> None:
        Exception.__init__(
            self, f"the connection to {host} dropped while {program} was running{': ' + detail if detail else ''}; "
            "nothing was marked complete")
        self.host, self.program, self.exit_status, self.stderr = host, program, -1, detail


class _Stderr:
    """Drains a channel's stderr in a thread, keeping the last STDERR_KEEP bytes."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self._channel = channel
        self._chunks: list[bytes] = []
        self._size = 0
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        try:
            while True:
                chunk = self._channel.recv_stderr(65536)
                if not chunk:
                    return
                self._chunks.append(chunk)
                self._size += len(chunk)
                while self._size > STDERR_KEEP and len(self._chunks) > 1:
                    self._size -= len(self._chunks.pop(0))
        except (OSError, EOFError, paramiko.SSHException):
            return

    def text(self, wait: float = 5.0) -> str:
        self._thread.join(wait)
        return b"".join(self._chunks).decode("utf-8", errors="replace")


def _open(conn: Connection, argv: list[str], idle_timeout: float) -> paramiko.Channel:
    if not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError("argv must be a non-empty list of strings")
    channel = open_channel(conn)
    channel.settimeout(idle_timeout)
    channel.exec_command(shlex.join(argv))
    return channel


class RemoteReader(io.RawIOBase):
    """Standard output of `argv` on the host. `stdin` (bytes) is fed to it in a thread.

    Use as a context manager; `close()` before end of file stops the command (its stdout closes).
    After end of file, `stderr` holds what it wrote there and `exit_status` its status.
    """

    def __init__(self, conn: Connection, argv: list[str], *, stdin: bytes | None = None,
                 idle_timeout: float = 600.0, ok_status: tuple[int, ...] = (0,)) -> None:
        super().__init__()
        self._host = display_host(conn.host, conn.port)
        self._program = argv[0] if argv else "?"
        self._ok = ok_status
        self._channel = _open(conn, argv, idle_timeout)
        self._stderr = _Stderr(self._channel)
        self.stderr = ""
        self.exit_status: Optional[int] = None
        self._eof = False
        self._on_bytes = _ON_BYTES.get()
        self._feeder = threading.Thread(target=self._feed, args=(stdin or b"",), daemon=True)
        self._feeder.start()

    def _feed(self, data: bytes) -> None:
        try:
            for start in range(0, len(data), COPY_CHUNK):
                self._channel.sendall(data[start:start + COPY_CHUNK])
            self._channel.shutdown_write()
        except (OSError, EOFError, paramiko.SSHException):
            pass

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._eof:
            return 0
        try:
            chunk = self._channel.recv(len(b))
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise ConnectionDropped(self._host, self._program, str(exc) or type(exc).__name__) from None
        if chunk:
            b[:len(chunk)] = chunk
            if self._on_bytes is not None:
                self._on_bytes(len(chunk))
            return len(chunk)
        self._eof = True
        self._finish()
        return 0

    def _finish(self) -> None:
        if not self._channel.status_event.wait(30):
            self.stderr = self._stderr.text(1)
            raise ConnectionDropped(self._host, self._program, self.stderr.strip()[-500:])
        self.exit_status = self._channel.recv_exit_status()
        self.stderr = self._stderr.text()
        if self.exit_status == -1:
            raise ConnectionDropped(self._host, self._program, self.stderr.strip()[-500:])
        if self.exit_status not in self._ok:
            raise RemoteCommandError(self._host, self._program, self.exit_status, self.stderr)

    def close(self) -> None:
        try:
            self._channel.close()
        finally:
            super().close()


def remote_reader(conn: Connection, argv: list[str], **kw) -> io.BufferedReader:
    """A buffered RemoteReader; `.raw` reaches the RemoteReader (stderr, exit_status)."""
    return io.BufferedReader(RemoteReader(conn, argv, **kw), buffer_size=COPY_CHUNK)


def pipe_to_remote(conn: Connection, argv: list[str], src: IO[bytes], *, idle_timeout: float = 600.0) -> str:
    """Copy `src` to the standard input of `argv` on the host; return its stdout. Raises on failure.

    If reading `src` fails (storage down, a checksum or decryption error), the command's stdin is
    closed without end of file being reached cleanly: the channel is closed, the command is stopped,
    and the error propagates.
    """
    host = display_host(conn.host, conn.port)
    channel = _open(conn, argv, idle_timeout)
    stderr = _Stderr(channel)
    out: list[bytes] = []
    sent = _ON_BYTES.get()

    def drain() -> None:
        try:
            while True:
                chunk = channel.recv(65536)
                if not chunk:
                    return
                out.append(chunk)
        except (OSError, EOFError, paramiko.SSHException):
            return

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        while True:
            block = src.read(COPY_CHUNK)
            if not block:
                break
            try:
                channel.sendall(block)
            except (OSError, EOFError, paramiko.SSHException) as exc:
                if channel.exit_status_ready():
                    break  # the command stopped reading: its status says why
                raise ConnectionDropped(host, argv[0], str(exc) or type(exc).__name__) from None
            if sent is not None:
                sent(len(block))
        channel.shutdown_write()
        reader.join(idle_timeout)
        if not channel.status_event.wait(30):
            raise ConnectionDropped(host, argv[0], stderr.text(1).strip()[-500:])
        status = channel.recv_exit_status()
        if status != 0:
            raise RemoteCommandError(host, argv[0], status, stderr.text())
        return b"".join(out).decode("utf-8", errors="replace")
    finally:
        channel.close()


class HashingReader(io.RawIOBase):
    """Passes bytes through from `src`, counting them and hashing them with sha256."""

    def __init__(self, src: IO[bytes]) -> None:
        super().__init__()
        self._src = src
        self._hash = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self._src.read(len(b))
        if not data:
            return 0
        n = len(data)
        b[:n] = data
        self._hash.update(data)
        self.size += n
        return n

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


class ChunkReader(io.RawIOBase):
    """A readable stream of the bytes an iterator yields (generators on the pull side of an upload)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        super().__init__()
        self._chunks = iter(chunks)
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._left:
            self._left = next(self._chunks, b"")
            if not self._left:
                return 0
        n = min(len(b), len(self._left))
        b[:n] = self._left[:n]
        self._left = self._left[n:]
        return n

    def close(self) -> None:
        closing = getattr(self._chunks, "close", None)
        if closing is not None:
            closing()  # a generator's own `with` blocks end here, a failed upload included
        super().close()


def drain(src: IO[bytes]) -> None:
    """Read a stream to its end (its checks run at the end)."""
    while src.read(COPY_CHUNK):
        pass


class TarDigest(io.RawIOBase):
    """Passes a zstd-compressed tar stream through from `src` and, in a thread, reads the archive as it
    goes by: `members` maps each member's path to (type, size, sha256) of what the archive carries
    (f file, d folder, l symbolic link). The thread reads from an OS pipe, so it holds the stream back
    by at most the pipe's buffer; a malformed archive is an `error`, and the pipe is still drained.
    Hand-written around tarfile and zstandard (both already used here) because no library hashes the
    members of a tar stream that is being uploaded at the same time."""

    def __init__(self, src: IO[bytes]) -> None:
        super().__init__()
        import os

        self._src = src
        rfd, wfd = os.pipe()
        self._w = os.fdopen(wfd, "wb", buffering=0)
        self._r = os.fdopen(rfd, "rb", buffering=COPY_CHUNK)
        self.members: dict[str, tuple[str, int, str]] = {}
        self.error: Optional[str] = None
        self._thread = threading.Thread(target=self._parse, name="pf-tar-digest", daemon=True)
        self._thread.start()

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self._src.read(len(b))
        if not data:
            self._close_pipe()
            return 0
        try:
            self._w.write(data)
        except (BrokenPipeError, ValueError):
            pass  # the parser stopped early: its error says why
        n = len(data)
        b[:n] = data
        return n

    def _close_pipe(self) -> None:
        if not self._w.closed:
            self._w.close()

    def _parse(self) -> None:
        import tarfile

        import zstandard

        try:
            plain = zstandard.ZstdDecompressor().stream_reader(self._r, read_size=COPY_CHUNK, closefd=False,
                                                                read_across_frames=True)
            with tarfile.open(fileobj=plain, mode="r|", encoding="utf-8", errors="surrogateescape") as archive:
                for member in archive:
                    name = member.name.rstrip("/")
                    if member.isreg():
                        digest = hashlib.sha256()
                        with archive.extractfile(member) as data:
                            while chunk := data.read(COPY_CHUNK):
                                digest.update(chunk)
                        self.members[name] = ("f", member.size, digest.hexdigest())
                    elif member.islnk() and member.linkname.rstrip("/") in self.members:
                        self.members[name] = self.members[member.linkname.rstrip("/")]  # a second name, same file
                    elif member.issym():
                        self.members[name] = ("l", 0, "")
                    elif member.isdir():
                        self.members[name] = ("d", 0, "")
        except Exception as exc:  # noqa: BLE001 - reported through `error`, the upload decides
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            try:
                while self._r.read(COPY_CHUNK):
                    pass
            except (OSError, ValueError):
                pass
            self._r.close()

    def result(self, timeout: float = 600.0) -> dict[str, tuple[str, int, str]]:
        """The members, once the stream has ended; raises ValueError when the archive could not be read."""
        self._close_pipe()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise ValueError("the archive's listing did not finish")
        if self.error:
            raise ValueError(f"the archive could not be read back: {self.error}")
        return self.members

    def close(self) -> None:
        self._close_pipe()
        super().close()
