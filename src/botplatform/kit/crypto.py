"""Secrets at rest: a MultiFernet keyring and a column type that encrypts with it.

ENCRYPTION_KEYS lists Fernet keys, newest first: the newest encrypts, every one decrypts, so
a key can be added, `botplatform keys rotate` run, and the old key removed later. Without it,
one key is derived from SECRET_KEY (fine for development; set real keys in production).

The keyring is process-wide (configured once by the Runtime): a column type has no other way
to reach it, and every Runtime of a process reads the same settings anyway.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Dialect, Text
from sqlalchemy.types import TypeDecorator

_keyring: MultiFernet | None = None


def derive_fernet_key(secret_key: str) -> str:
    digest = hashlib.sha256(f"botplatform.encryption:{secret_key}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


def configure(keys: list[str]) -> None:
    global _keyring
    if not keys:
        raise ValueError("at least one encryption key is needed")
    _keyring = MultiFernet([Fernet(key.encode()) for key in keys])


def keyring() -> MultiFernet:
    if _keyring is None:
        raise RuntimeError("encryption keys are not configured (Runtime.create does it)")
    return _keyring


def encrypt(plaintext: str) -> str:
    return keyring().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return keyring().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("cannot decrypt: none of ENCRYPTION_KEYS matches") from exc


def rotate(token: str) -> str:
    """The same secret, encrypted under the newest key."""
    return keyring().rotate(token.encode()).decode()


def mask(secret: str | None, visible: int = 4) -> str | None:
    """A hint for responses: never more than the last few characters."""
    if not secret:
        return None
    return "•" * 8 + secret[-visible:] if len(secret) > visible * 3 else "•" * 8


class EncryptedText(TypeDecorator[str]):
    """A string column stored as Fernet ciphertext; Python sees the plaintext."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else encrypt(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else decrypt(str(value))
