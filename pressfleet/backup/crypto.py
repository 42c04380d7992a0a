"""Encryption at rest for backup parts: a streaming AEAD applied on the control side.

The key lives in a Prefect Secret block and only ever in the control-side process: the host sends
plain (compressed) bytes over SSH, and they are encrypted here before they reach storage, so the key
never touches the host's disk or process list.

Hand-written framing because no maintained streaming-AEAD library is in the lock; the primitives
(AES-256-GCM, HKDF-SHA256) come from `cryptography`. The construction is the STREAM one that age and
Tink use:

    object = MAGIC (5 bytes) | salt (16 random bytes) | chunk_0 | chunk_1 | ... | chunk_last
    chunk  = AES-256-GCM(key, nonce = counter (11 bytes, big-endian) | last-flag (1 byte), plaintext)

Each object gets its own key, HKDF(secret, salt, "pressfleet backup part v1"), so nonces (a counter)
never repeat under one key. Every chunk holds CHUNK plaintext bytes but the last, which is flagged:
a truncated, reordered, spliced or altered object, or the wrong key, fails to decrypt with
`DecryptionError` before any byte of the bad chunk is returned.
"""

from __future__ import annotations

import io
import os
from typing import IO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pressfleet.validate import InvalidInput

MAGIC = b"PFBK\x01"
SALT_BYTES = 16
CHUNK = 1 << 20
TAG = 16
MIN_SECRET_CHARS = 32


class DecryptionError(Exception):
    """The object is not a pressfleet encrypted part, was altered or cut short, or the key is wrong."""


def check_secret(secret: str) -> str:
    if not isinstance(secret, str) or len(secret) < MIN_SECRET_CHARS:
        raise InvalidInput(
            f"The backup encryption key must be at least {MIN_SECRET_CHARS} characters "
            "(e.g. the output of `openssl rand -base64 32`).")
    return secret


def _derive(secret: str, salt: bytes) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"pressfleet backup part v1").derive(
        secret.encode("utf-8"))
    return AESGCM(key)


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _read_exactly(src: IO[bytes], n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        block = src.read(n - got)
        if not block:
            break
        parts.append(block)
        got += len(block)
    return b"".join(parts)


class _ChunkedReader(io.RawIOBase):
    """A readable stream produced chunk by chunk by `_next_chunk()` (bytes, or b"" at the end)."""

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bytes:  # pragma: no cover - subclasses
        raise NotImplementedError

    def readinto(self, b) -> int:
        while self._pos >= len(self._buf):
            if self._done:
                return 0
            self._buf, self._pos = self._next_chunk(), 0
        n = min(len(b), len(self._buf) - self._pos)
        b[:n] = self._buf[self._pos:self._pos + n]
        self._pos += n
        return n


class EncryptingReader(_ChunkedReader):
    """Read ciphertext: wraps a readable plaintext stream."""

    def __init__(self, src: IO[bytes], secret: str) -> None:
        super().__init__()
        self._src = src
        salt = os.urandom(SALT_BYTES)
        self._aead = _derive(check_secret(secret), salt)
        self._header = MAGIC + salt
        self._counter = 0
        self._ahead = _read_exactly(src, CHUNK)

    def _next_chunk(self) -> bytes:
        if self._header:
            out, self._header = self._header, b""
            return out
        current = self._ahead
        self._ahead = _read_exactly(self._src, CHUNK) if len(current) == CHUNK else b""
        last = not self._ahead
        out = self._aead.encrypt(_nonce(self._counter, last), current, None)
        self._counter += 1
        if last:
            self._done = True
        return out


class DecryptingReader(_ChunkedReader):
    """Read plaintext: wraps a readable ciphertext stream; raises DecryptionError on any tampering."""

    def __init__(self, src: IO[bytes], secret: str, *, what: str = "the object") -> None:
        super().__init__()
        self._src = src
        self._what = what
        header = _read_exactly(src, len(MAGIC) + SALT_BYTES)
        if len(header) < len(MAGIC) + SALT_BYTES or header[:len(MAGIC)] != MAGIC:
            raise DecryptionError(f"{what} is not a pressfleet encrypted part (bad header)")
        self._aead = _derive(check_secret(secret), header[len(MAGIC):])
        self._counter = 0
        self._ahead = _read_exactly(src, CHUNK + TAG)

    def _next_chunk(self) -> bytes:
        current = self._ahead
        if len(current) < TAG:
            raise DecryptionError(f"{self._what} is cut short (no final chunk)")
        self._ahead = _read_exactly(self._src, CHUNK + TAG) if len(current) == CHUNK + TAG else b""
        last = not self._ahead
        try:
            out = self._aead.decrypt(_nonce(self._counter, last), current, None)
        except InvalidTag:
            raise DecryptionError(
                f"{self._what} does not decrypt at chunk {self._counter}: it was altered or cut short, "
                "or the key is not the one it was written with") from None
        self._counter += 1
        if last:
            self._done = True
        return out
