"""The API key format: `bp_live_<lookup 8><secret 32><checksum 6>`, base62.

The prefix lets secret scanners recognise a leaked key; the CRC32 checksum lets them (and
us) reject a mistyped or made-up key without touching the database; the lookup finds the row;
only a SHA-256 of the whole key is stored (the key is random, so a slow hash adds nothing).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import zlib
from dataclasses import dataclass

PREFIX = "bp_live_"
ALPHABET = string.digits + string.ascii_letters
LOOKUP_LEN, SECRET_LEN, CHECKSUM_LEN = 8, 32, 6


def _base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, remainder = divmod(number, 62)
        digits.append(ALPHABET[remainder])
    return "".join(reversed(digits)).rjust(width, "0")[-width:]


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), CHECKSUM_LEN)


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


@dataclass(frozen=True)
class NewKey:
    plaintext: str
    lookup: str
    key_hash: str


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def generate() -> NewKey:
    body = _random(LOOKUP_LEN) + _random(SECRET_LEN)
    plaintext = PREFIX + body + _checksum(body)
    return NewKey(plaintext, body[:LOOKUP_LEN], hash_key(plaintext))


def looks_like_key(token: str) -> bool:
    return token.startswith(PREFIX)


def parse_lookup(token: str) -> str | None:
    """The lookup id of a well-formed key with a valid checksum, else None."""
    body_and_sum = token[len(PREFIX) :]
    if len(body_and_sum) != LOOKUP_LEN + SECRET_LEN + CHECKSUM_LEN:
        return None
    if any(char not in ALPHABET for char in body_and_sum):
        return None
    body, checksum = body_and_sum[:-CHECKSUM_LEN], body_and_sum[-CHECKSUM_LEN:]
    if not hmac.compare_digest(_checksum(body), checksum):
        return None
    return body[:LOOKUP_LEN]


def matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(token), stored_hash)
