"""The provider request of the message path (`kit/provider_http.py`) against real sockets:
which failures prove the request never left (`NeverSent`, sent again) and which may have
delivered it (`MaybeSent`, never sent again automatically)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest

from botplatform.kit import provider_http

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def _server(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v21.0/1/messages"
    finally:
        server.close()


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return await reader.readexactly(length)


@pytest.fixture(autouse=True)
async def _fresh_session(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    monkeypatch.setattr(
        provider_http,
        "TIMEOUT",
        aiohttp.ClientTimeout(total=None, connect=0.5, sock_connect=0.5, sock_read=0.5),
    )
    yield
    await provider_http.close()


async def test_an_answer_comes_back_with_its_status_and_json() -> None:
    seen: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await _read_request(reader))
        body = b'{"messages":[{"id":"wamid.X"}]}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()

    async with _server(answer) as url:
        status, body = await provider_http.post_json(url, {"to": "1"}, {"Authorization": "x"})
    assert (status, body) == (200, {"messages": [{"id": "wamid.X"}]})
    assert json.loads(seen[0]) == {"to": "1"}


async def test_a_refused_connection_never_left() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(provider_http.NeverSent):
        await provider_http.post_json(f"http://127.0.0.1:{port}/x", {}, {})


async def test_no_free_connection_in_time_never_left(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every connection busy (here: the only one, with a request the server never answers):
    the next request waits for one, and gives up before it was written anywhere."""
    monkeypatch.setattr(provider_http, "MAX_CONNECTIONS", 1)
    # The wait for a connection ends well before the first request's wait for its answer.
    monkeypatch.setattr(
        provider_http, "TIMEOUT", aiohttp.ClientTimeout(total=None, connect=0.3, sock_read=2.0)
    )
    arrived: list[bytes] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        arrived.append(await _read_request(reader))
        await asyncio.sleep(5)

    async with _server(silent) as url:
        first = asyncio.create_task(provider_http.post_json(url, {"n": 1}, {}))
        await asyncio.sleep(0.1)
        with pytest.raises(provider_http.NeverSent):
            await provider_http.post_json(url, {"n": 2}, {})
        with pytest.raises(provider_http.MaybeSent):
            await first
    assert [json.loads(body) for body in arrived] == [{"n": 1}]


async def test_no_answer_in_time_may_have_been_sent() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)

    async with _server(silent) as url:
        with pytest.raises(provider_http.MaybeSent):
            await provider_http.post_json(url, {}, {})


async def test_a_connection_dropped_after_the_request_may_have_been_sent() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.close()

    async with _server(hang_up) as url:
        with pytest.raises(provider_http.MaybeSent):
            await provider_http.post_json(url, {}, {})


async def test_a_post_is_never_retried_on_a_reused_connection() -> None:
    """A keep-alive connection the server closed after answering: the next POST on it fails
    as `MaybeSent` and is not sent a second time by the client."""
    requests: list[bytes] = []

    async def once_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await _read_request(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        with contextlib.suppress(asyncio.IncompleteReadError):
            requests.append(await _read_request(reader))  # the second POST, then hang up
        writer.close()

    async with _server(once_then_close) as url:
        assert await provider_http.post_json(url, {"n": 1}, {}) == (200, {})
        with pytest.raises(provider_http.MaybeSent):
            await provider_http.post_json(url, {"n": 2}, {})
    assert [json.loads(body) for body in requests] == [{"n": 1}, {"n": 2}]
