"""Encryption and authentication at rest for backups: a streaming AEAD and MACs, applied on the control side.

The key lives in a Prefect Secret block and only ever in the control-side process: the host sends
plain (compressed) bytes over SSH, and they are encrypted here before they reach storage, so the key
never touches the host's disk or process list.

The key text is one of two kinds, told apart by its prefix:

- `pfk1:` then 32 random bytes in base64 (what `make demo` writes; `pressfleet.backup.crypto.new_key_text()`):
  the bytes go through HKDF-SHA256;
- anything else is a passphrase (at least 32 characters): it goes through scrypt (memory-hard; n=2^15, r=8,
  p=1: 32 MiB, about 0.1 s here), with a random salt kept with the parameters in the storage's
  `pressfleet-repository.json`, written on first use, so the key is derived the same way each time.

From that master key HKDF derives two keys with distinct labels: one for the parts, one for the MACs
(HMAC-SHA256) over manifests, restore-test markers and binary-log records (`Keyring.seal` / `Keyring.open`).

Hand-written framing because no maintained streaming-AEAD library is in the lock; the primitives
(AES-256-GCM, HKDF-SHA256, scrypt, HMAC) come from `cryptography`. The construction is the STREAM one that
age and Tink use:

    object = MAGIC (5 bytes) | salt (16 random bytes) | chunk_0 | chunk_1 | ... | chunk_last
    chunk  = AES-256-GCM(key, nonce = counter (11 bytes, big-endian) | last-flag (1 byte), plaintext,
                         associated data = the object's storage key)

Each object gets its own key, HKDF(part key, salt, "pressfleet backup part v2"), so nonces (a counter)
never repeat under one key. The object's key name is associated data: a part copied or moved to
another name (another backup, another site) does not decrypt. Every chunk holds CHUNK plaintext bytes
but the last, which is flagged: a truncated, reordered, spliced, moved or altered object, or the wrong
key, fails to decrypt with `DecryptionError` before any byte of the bad chunk is returned.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import io
import json
import os
from typing import IO, Optional, Union

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from pressfleet.validate import InvalidInput

MAGIC = b"PFBK\x02"
OLD_MAGIC = b"PFBK\x01"
SALT_BYTES = 16
CHUNK = 1 << 20
TAG = 16
MIN_SECRET_CHARS = 32
KEY_PREFIX = "pfk1:"
REPOSITORY_KEY = "pressfleet-repository.json"
SCRYPT_DEFAULTS = {"n": 1 << 15, "r": 8, "p": 1}


class DecryptionError(Exception):
    """The object is not a pressfleet encrypted part, was altered, moved or cut short, or the key is wrong."""


def new_key_text() -> str:
    """A fresh random backup key, as a Secret block holds it: `pfk1:` and 32 random bytes in base64."""
    return KEY_PREFIX + base64.b64encode(os.urandom(32)).decode("ascii")


def check_secret(secret: str) -> str:
    if not isinstance(secret, str):
        raise InvalidInput("the backup encryption key Secret block must hold text")
    if secret.startswith(KEY_PREFIX):
        _random_key_bytes(secret)
        return secret
    if len(secret) < MIN_SECRET_CHARS:
        raise InvalidInput(
            f"The backup encryption key must be a passphrase of at least {MIN_SECRET_CHARS} characters "
            f"or {KEY_PREFIX} and 32 random bytes in base64 (e.g. `echo {KEY_PREFIX}$(openssl rand -base64 32)`).")
    return secret


def _random_key_bytes(secret: str) -> bytes:
    try:
        raw = base64.b64decode(secret[len(KEY_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise InvalidInput(f"a {KEY_PREFIX} backup key must be 32 bytes in base64 after the prefix "
                           f"(e.g. `echo {KEY_PREFIX}$(openssl rand -base64 32)`)")
    return raw


def _hkdf(material: bytes, info: bytes, salt: Optional[bytes] = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(material)


class Keyring:
    """The keys derived from one backup key: the part key (per-object AEAD keys) and the MAC key."""

    def __init__(self, master: bytes) -> None:
        self._part = _hkdf(master, b"pressfleet part key v2")
        self._mac = _hkdf(master, b"pressfleet metadata mac v1")

    def __repr__(self) -> str:
        return "Keyring(<secret>)"

    def part_aead(self, salt: bytes) -> AESGCM:
        return AESGCM(_hkdf(self._part, b"pressfleet backup part v2", salt))

    def mac(self, label: str, key: str, data: bytes) -> str:
        """HMAC-SHA256 over what the bytes are (label), where they are stored (key) and the bytes."""
        msg = b"".join(len(x).to_bytes(8, "big") + x for x in (label.encode(), key.encode(), data))
        return hmac.new(self._mac, msg, hashlib.sha256).hexdigest()

    def verify(self, label: str, key: str, data: bytes, tag: Optional[str]) -> bool:
        return isinstance(tag, str) and hmac.compare_digest(self.mac(label, key, data), tag)


Secret = Union[str, Keyring]


@functools.lru_cache(maxsize=8)
def _scrypt(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def _kdf_params(data: bytes) -> tuple[bytes, int, int, int]:
    """The scrypt salt and parameters of a repository config; refuses values outside sane bounds."""
    try:
        conf = json.loads(data)
        salt = base64.b64decode(conf["salt"], validate=True)
        n, r, p = int(conf["n"]), int(conf["r"]), int(conf["p"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidInput(f"the storage's {REPOSITORY_KEY} is not a pressfleet repository config") from None
    if conf.get("kdf") != "scrypt" or not 16 <= len(salt) <= 64 or n & (n - 1) or not (1 << 14) <= n <= (1 << 20) \
            or not 1 <= r <= 16 or not 1 <= p <= 4:
        raise InvalidInput(f"the storage's {REPOSITORY_KEY} asks for key-derivation settings pressfleet does not use")
    return salt, n, r, p


def repository_kdf(store) -> tuple[bytes, int, int, int]:
    """The storage's scrypt salt and parameters, written on first use (put-if-absent: two first runs agree)."""
    from pressfleet.storage.base import ObjectNotFound

    try:
        return _kdf_params(store.get_bytes(REPOSITORY_KEY))
    except ObjectNotFound:
        pass
    conf = {"format": 1, "kdf": "scrypt", "salt": base64.b64encode(os.urandom(16)).decode(), **SCRYPT_DEFAULTS}
    store.put_if_absent(REPOSITORY_KEY, json.dumps(conf).encode())
    return _kdf_params(store.get_bytes(REPOSITORY_KEY))


def keyring(secret: Secret, store=None) -> Keyring:
    """The Keyring of a key text (a `pfk1:` random key, or a passphrase whose scrypt settings are the store's)."""
    if isinstance(secret, Keyring):
        return secret
    text = check_secret(secret)
    if text.startswith(KEY_PREFIX):
        return Keyring(_hkdf(_random_key_bytes(text), b"pressfleet master v1"))
    if store is None:
        raise InvalidInput("a passphrase backup key is derived with its storage's scrypt settings: give the storage")
    return Keyring(_scrypt(text, *repository_kdf(store)))


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

    def __init__(self, src: IO[bytes], secret: Secret, *, aad: str = "", store=None) -> None:
        super().__init__()
        self._src = src
        salt = os.urandom(SALT_BYTES)
        self._aead = keyring(secret, store).part_aead(salt)
        self._aad = aad.encode("utf-8")
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
        out = self._aead.encrypt(_nonce(self._counter, last), current, self._aad)
        self._counter += 1
        if last:
            self._done = True
        return out


class DecryptingReader(_ChunkedReader):
    """Read plaintext: wraps a readable ciphertext stream; raises DecryptionError on any tampering."""

    def __init__(self, src: IO[bytes], secret: Secret, *, what: str = "the object", aad: str = "",
                 store=None) -> None:
        super().__init__()
        self._src = src
        self._what = what
        self._aad = aad.encode("utf-8")
        header = _read_exactly(src, len(MAGIC) + SALT_BYTES)
        if header[:len(OLD_MAGIC)] == OLD_MAGIC:
            raise DecryptionError(f"{what} was encrypted by an older pressfleet (unauthenticated names): "
                                  "take a new full backup")
        if len(header) < len(MAGIC) + SALT_BYTES or header[:len(MAGIC)] != MAGIC:
            raise DecryptionError(f"{what} is not a pressfleet encrypted part (bad header)")
        self._aead = keyring(secret, store).part_aead(header[len(MAGIC):])
        self._counter = 0
        self._ahead = _read_exactly(src, CHUNK + TAG)

    def _next_chunk(self) -> bytes:
        current = self._ahead
        if len(current) < TAG:
            raise DecryptionError(f"{self._what} is cut short (no final chunk)")
        self._ahead = _read_exactly(self._src, CHUNK + TAG) if len(current) == CHUNK + TAG else b""
        last = not self._ahead
        try:
            out = self._aead.decrypt(_nonce(self._counter, last), current, self._aad)
        except InvalidTag:
            raise DecryptionError(
                f"{self._what} does not decrypt at chunk {self._counter}: it was altered or cut short, or moved "
                "from another name, or the key is not the one it was written with") from None
        self._counter += 1
        if last:
            self._done = True
        return out
