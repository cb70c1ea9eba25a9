"""Conditional GETs: every successful GET answer that is not marked `no-store` carries an
`ETag` (a digest of its body), and a client that sends it back in `If-None-Match` gets
`304 Not Modified` with no body. What the answer depends on (the caller's token or cookie)
is private: without a `Cache-Control` of its own it gets `private, no-cache` (kept by the
client, checked with us before each use; never kept by a shared proxy).

The answer is still computed (it is the only way to know it has not changed); what is saved
is sending it: a dashboard polling a list, or a client re-reading a conversation, gets a few
hundred bytes instead of the page. Answers sent in several pieces, and those that already
have an ETag (the static files), pass through as they are.

The ETag is weak and leaves out the envelope's `timestamp` (SPEC §7: when the answer was
made, to the second): two answers that differ only in it say the same thing, and a strong
tag over the raw bytes would change at every second's turn — a client polling an unchanged
list would sometimes be sent the whole of it again for nothing."""

from __future__ import annotations

import hashlib
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_PRIVATE = b"private, no-cache"
_KEPT_ON_304 = {b"cache-control", b"etag", b"vary", b"expires", b"content-location", b"date"}


#: The envelope's last field, as the JSON encoder writes it (kit/envelope.py).
_ENVELOPE_TIMESTAMP = re.compile(rb',"timestamp":"[0-9T:Z-]{1,32}"}\Z')


def etag_of(body: bytes) -> bytes:
    """A weak tag over what the answer says: the body less the envelope's timestamp."""
    said = _ENVELOPE_TIMESTAMP.sub(b"}", body)
    return b'W/"' + hashlib.sha256(said).hexdigest()[:32].encode() + b'"'


def matches(if_none_match: bytes, etag: bytes) -> bool:
    """`If-None-Match` names `etag` (weak comparison, as RFC 9110 asks for it), or is `*`."""
    candidates = [part.strip() for part in if_none_match.split(b",")]
    tag = etag.removeprefix(b"W/")
    return b"*" in candidates or any(c.removeprefix(b"W/") == tag for c in candidates)


class ConditionalGetMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        asked = next((v for k, v in scope["headers"] if k == b"if-none-match"), None)
        start: Message | None = None

        async def conditional(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if _may_tag(message):
                    start = message  # held until the body shows whether it fits one piece
                    return
                await send(message)
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            held, start = start, None
            if message.get("more_body", False):  # a stream: sent as it comes, untagged
                await send(held)
                await send(message)
                return
            await _send_tagged(held, message, asked, send)

        await self.app(scope, receive, conditional)


def _may_tag(start: Message) -> bool:
    if start["status"] != 200:
        return False
    for name, value in start.get("headers", []):
        if name == b"etag" or (name == b"cache-control" and b"no-store" in value):
            return False
    return True


async def _send_tagged(start: Message, body: Message, asked: bytes | None, send: Send) -> None:
    etag = etag_of(body.get("body", b""))
    headers = list(start.get("headers", []))
    if not any(name == b"cache-control" for name, _ in headers):
        headers.append((b"cache-control", _PRIVATE))
    headers.append((b"etag", etag))
    if asked is not None and matches(asked, etag):
        kept = [(name, value) for name, value in headers if name in _KEPT_ON_304]
        await send({"type": "http.response.start", "status": 304, "headers": kept})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({**start, "headers": headers})
    await send(body)
