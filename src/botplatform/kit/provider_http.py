"""The request on the message path: one JSON POST to a provider (a send to the Graph API).

    status, body = await provider_http.post_json(url, payload, headers)

Through aiohttp, with one session per event loop (created on first use, closed by `close`).
Everything else the platform sends over HTTP (media, webhooks, AI) keeps the process's
httpx client (`kit/http.py`). Why a second client: on this path every customer message pays
for one request, and httpx spent ~1.5 ms of CPU on each against aiohttp's ~0.25 ms (a JSON
POST to a loopback server, four at a time, measured in the same run; see docs/decisions.md).

Its errors say what matters for never sending twice (`channels/delivery.py`): `NeverSent` when
no connection was made (refused, unreachable, no free connection or TCP handshake in time), so
the request provably never left; `MaybeSent` for anything after that (no answer in time, a
dropped connection), when the provider may have it. A POST is never retried by the client on a
reused connection (aiohttp retries idempotent methods only).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from weakref import WeakKeyDictionary

import aiohttp

from botplatform import __version__

# As `kit/http.py`'s: a connection (or a free one from the pool) within 10 s, the handshake
# within 5 s, the answer within 30 s.
TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10.0, sock_connect=5.0, sock_read=30.0)
MAX_CONNECTIONS = 200


class NeverSent(Exception):
    """No connection was made: the request never left."""


class MaybeSent(Exception):
    """The request may have reached the provider, and no answer came."""


_SESSIONS: WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = WeakKeyDictionary()


def _session() -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    session = _SESSIONS.get(loop)
    if session is None or session.closed:
        session = aiohttp.ClientSession(
            timeout=TIMEOUT,
            connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
            headers={"User-Agent": f"botplatform/{__version__}"},
        )
        _SESSIONS[loop] = session
    return session


async def post_json(url: str, payload: Any, headers: dict[str, str]) -> tuple[int, Any]:
    """POSTs `payload` as JSON; the answer's status and its JSON body (None when it has none
    or it is not JSON)."""
    data = json.dumps(payload, separators=(",", ":")).encode()
    request_headers = {**headers, "Content-Type": "application/json"}
    try:
        async with _session().post(
            url, data=data, headers=request_headers, allow_redirects=False
        ) as response:
            raw = await response.read()
            status = response.status
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
        raise NeverSent(str(exc) or type(exc).__name__) from exc
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise MaybeSent(str(exc) or type(exc).__name__) from exc
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


async def close() -> None:
    """Closes this event loop's session (at shutdown)."""
    session = _SESSIONS.pop(asyncio.get_running_loop(), None)
    if session is not None:
        await session.close()
