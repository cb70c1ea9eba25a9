"""The widget visitor's token: a short JWT, signed with a key of its own (derived from the
platform's secret), naming one visitor of one channel and expiring. The browser keeps it
and sends it with every request; it is renewed on each visit, so a regular visitor keeps
their conversation and an abandoned token dies."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt

from botplatform.kit.errors import Unauthorized
from botplatform.kit.tokens import derive_key

ALGORITHM = "HS256"
AUDIENCE = "webchat"
#: Visitor ids: an anonymous visitor ("v:" + random) or a user verified by the site ("u:" +
#: the site's own user id). The two never share an id, so a verified user is never merged
#: into an anonymous visitor's contact, nor the other way round.
ANONYMOUS, VERIFIED = "v:", "u:"


class VisitorTokenInvalid(Unauthorized):
    code = "invalid_visitor_token"
    message = "The visitor token is missing, expired or not for this channel."


@dataclass(frozen=True)
class Visitor:
    channel_id: uuid.UUID
    external_id: str  # the contact's id on the channel
    expires_at: int

    @property
    def verified(self) -> bool:
        return self.external_id.startswith(VERIFIED)


def new_anonymous_id() -> str:
    return f"{ANONYMOUS}{uuid.uuid4().hex}"


class VisitorTokens:
    def __init__(self, secret_key: str, ttl_seconds: int) -> None:
        self._key = derive_key(secret_key, "webchat-visitor-jwt")
        self.ttl_seconds = ttl_seconds

    def issue(self, channel_id: uuid.UUID, external_id: str) -> tuple[str, Visitor]:
        expires_at = int(time.time()) + self.ttl_seconds
        claims = {"sub": external_id, "ch": str(channel_id), "aud": AUDIENCE, "exp": expires_at}
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM)
        return token, Visitor(channel_id, external_id, expires_at)

    def read(self, token: str, channel_id: uuid.UUID) -> Visitor:
        """The visitor a token names, if it is valid and for this channel; else 401."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                options={"require": ["exp", "sub", "ch"]},
            )
        except jwt.PyJWTError as exc:
            raise VisitorTokenInvalid() from exc
        subject = claims.get("sub")
        if claims.get("ch") != str(channel_id) or not isinstance(subject, str):
            raise VisitorTokenInvalid()
        if not subject.startswith((ANONYMOUS, VERIFIED)):
            raise VisitorTokenInvalid()
        return Visitor(channel_id, subject, int(claims["exp"]))
