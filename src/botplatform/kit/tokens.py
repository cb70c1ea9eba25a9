"""Signed, expiring tokens: links (itsdangerous) and session bearer tokens (JWT).

Each purpose gets its own salt or derived key, so a token minted for one purpose is
worthless for another.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Any

import jwt
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer


def random_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def derive_key(secret_key: str, purpose: str) -> bytes:
    return hmac.new(secret_key.encode(), purpose.encode(), hashlib.sha256).digest()


class InvalidToken(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class LinkSigner:
    """Signed, time-limited payloads for links (invitations, password resets)."""

    def __init__(self, secret_key: str, purpose: str) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt=f"botplatform.{purpose}")

    def sign(self, payload: dict[str, Any]) -> str:
        return self._serializer.dumps(payload)

    def load(self, token: str, max_age_seconds: int) -> dict[str, Any]:
        try:
            payload = self._serializer.loads(token, max_age=max_age_seconds)
        except SignatureExpired as exc:
            raise InvalidToken("expired") from exc
        except BadSignature as exc:
            raise InvalidToken("invalid") from exc
        if not isinstance(payload, dict):
            raise InvalidToken("invalid")
        return payload


class SessionTokenCodec:
    """The API bearer token: a JWT that carries the session id. The session store stays the
    authority, so revoking the session revokes the token at once."""

    algorithm = "HS256"

    def __init__(self, secret_key: str) -> None:
        self._key = derive_key(secret_key, "session-jwt")

    def encode(self, session_id: str, user_id: str, expires_at: datetime) -> str:
        claims = {"sid": session_id, "sub": user_id, "exp": int(expires_at.timestamp())}
        return jwt.encode(claims, self._key, algorithm=self.algorithm)

    def decode(self, token: str) -> dict[str, Any]:
        try:
            claims = jwt.decode(
                token, self._key, algorithms=[self.algorithm], options={"require": ["exp"]}
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("invalid") from exc
        if not isinstance(claims.get("sid"), str) or not isinstance(claims.get("sub"), str):
            raise InvalidToken("invalid")
        return claims
