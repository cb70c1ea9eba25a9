"""Streaming authenticated encryption for backup files (AES-256-GCM in numbered chunks).

A backup can be larger than memory, and one GCM message must not be: the stream is cut into
1 MiB chunks, each sealed on its own with a nonce made of a random per-file prefix, the chunk's
number and a flag marking the last chunk. So a chunk cannot be altered, dropped, reordered,
moved to another file, or the file cut short after a chunk, without decryption failing. The
key comes from BACKUP_ENCRYPTION_KEY through HKDF with a random salt per file.

File layout: MAGIC | salt (16) | nonce prefix (7) | chunk* ; a chunk is ciphertext + 16-byte tag.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from botplatform.backup.errors import BackupError

MAGIC = b"BPBACKUP\x00ENC1"
CHUNK_BYTES = 1024 * 1024
TAG_BYTES = 16
_SALT_BYTES = 16
_PREFIX_BYTES = 7
HEADER_BYTES = len(MAGIC) + _SALT_BYTES + _PREFIX_BYTES
_INFO = b"botplatform backup v1"


class BackupDecryptionError(BackupError):
    """Wrong key, or a file altered or cut short."""


def _derive(secret: str, salt: bytes) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_INFO).derive(secret.encode())
    return AESGCM(key)


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", counter, 1 if last else 0)


def is_encrypted(path: os.PathLike[str] | str) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(MAGIC)) == MAGIC


class EncryptingWriter:
    """A write-only file object: what is written lands sealed in `sink`."""

    def __init__(self, sink: BinaryIO, secret: str) -> None:
        salt, prefix = os.urandom(_SALT_BYTES), os.urandom(_PREFIX_BYTES)
        self._header = MAGIC + salt + prefix
        self._aead = _derive(secret, salt)
        self._prefix = prefix
        self._sink = sink
        self._buffer = bytearray()
        self._counter = 0
        sink.write(self._header)

    def write(self, data: bytes) -> int:
        self._buffer += data
        # Keep at least one byte back: the last chunk must be sealed as the last.
        while len(self._buffer) > CHUNK_BYTES:
            self._seal(bytes(self._buffer[:CHUNK_BYTES]), last=False)
            del self._buffer[:CHUNK_BYTES]
        return len(data)

    def close(self) -> None:
        self._seal(bytes(self._buffer), last=True)
        self._buffer.clear()

    def _seal(self, chunk: bytes, *, last: bool) -> None:
        nonce = _nonce(self._prefix, self._counter, last)
        self._sink.write(self._aead.encrypt(nonce, chunk, self._header))
        self._counter += 1


class DecryptingReader:
    """A read-only file object over an encrypted backup; raises BackupDecryptionError."""

    def __init__(self, source: BinaryIO, secret: str) -> None:
        header = source.read(HEADER_BYTES)
        if len(header) != HEADER_BYTES or not header.startswith(MAGIC):
            raise BackupDecryptionError("not an encrypted backup")
        salt = header[len(MAGIC) : len(MAGIC) + _SALT_BYTES]
        self._header = header
        self._prefix = header[len(MAGIC) + _SALT_BYTES :]
        self._aead = _derive(secret, salt)
        self._source = source
        self._counter = 0
        self._plain = b""
        self._done = False
        self._pending = source.read(CHUNK_BYTES + TAG_BYTES)

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._plain) < size):
            self._open_next()
        if size < 0:
            data, self._plain = self._plain, b""
        else:
            data, self._plain = self._plain[:size], self._plain[size:]
        return data

    def _open_next(self) -> None:
        sealed = self._pending
        self._pending = self._source.read(CHUNK_BYTES + TAG_BYTES)
        last = not self._pending
        try:
            nonce = _nonce(self._prefix, self._counter, last)
            self._plain += self._aead.decrypt(nonce, sealed, self._header)
        except InvalidTag as exc:
            raise BackupDecryptionError(
                "cannot decrypt the backup: wrong BACKUP_ENCRYPTION_KEY, or the file was"
                " altered or cut short"
            ) from exc
        self._counter += 1
        self._done = last
