"""The widget's socket on a real loopback server, on both backends: refused for another
origin or a bad token; acknowledges a visitor's message once per client id; pushes the
agent's reply, and a long-poll waiting meanwhile wakes up for it."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.channels.webchat.helpers import SITE, VisitorClient, webchat_channel
from tests.conftest import Api, eventually
from tests.serving import serving


@pytest.fixture(scope="session")
async def live_base(app: FastAPI) -> AsyncIterator[str]:
    async with serving(app) as port:
        yield f"127.0.0.1:{port}"


async def _next(socket: ClientConnection, kind: str, timeout: float = 15) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        frame: dict[str, Any] = json.loads(
            await asyncio.wait_for(socket.recv(), max(0.1, deadline - loop.time()))
        )
        if frame["type"] == kind:
            return frame


async def test_socket_rules_acks_and_pushed_replies(
    api: Api, client: httpx.AsyncClient, live_base: str
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner, "Acme")
    channel = await webchat_channel(api, owner, ws)
    url = f"ws://{live_base}/widget/{channel['id']}/socket"

    with pytest.raises(InvalidStatus):  # another site: refused before the handshake completes
        async with connect(url, origin="https://evil.example.net"):  # type: ignore[arg-type]
            pass
    async with connect(url, origin=SITE) as socket:  # type: ignore[arg-type]
        await socket.send(json.dumps({"type": "hello", "token": "forged"}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401

    visitor = VisitorClient(client, channel["id"])
    await visitor.start()
    async with connect(url, origin=SITE) as socket:  # type: ignore[arg-type]
        await socket.send(json.dumps({"type": "hello", "token": visitor.token}))
        assert (await _next(socket, "ready"))["visitor_id"].startswith("v:")
        client_id = uuid.uuid4().hex
        frame = {"type": "message", "client_id": client_id, "text": "Hello over the socket"}
        await socket.send(json.dumps(frame))
        assert (await _next(socket, "ack"))["duplicate"] is False
        await socket.send(json.dumps(frame))
        assert (await _next(socket, "ack"))["duplicate"] is True
        await socket.send(json.dumps({"type": "message", "client_id": "x"}))
        assert (await _next(socket, "error"))["code"] == "validation_error"

        async def conversation() -> str | None:
            response = await client.get(
                f"/api/v1/workspaces/{ws}/conversations", headers=owner.headers
            )
            items = response.json()["data"]["items"]
            return items[0]["id"] if items else None

        conversation_id = await eventually(conversation)
        polling = asyncio.create_task(
            visitor.history(since="2999-01-01T00:00:00+00:00", wait="true")
        )
        await asyncio.sleep(0.3)
        reply = await client.post(
            f"/api/v1/workspaces/{ws}/conversations/{conversation_id}/messages",
            json={
                "text": "Pushed to you",
                "buttons": [{"id": "ok", "title": "OK"}],
                "type": "interactive",
            },
            headers=owner.headers,
        )
        assert reply.status_code < 300, reply.text
        pushed = (await _next(socket, "message"))["message"]
        assert pushed["text"] == "Pushed to you"
        assert pushed["buttons"] == [{"id": "ok", "title": "OK"}]
        assert pushed["pid"].startswith("wc:")
        # The long-poll was woken by the push (well before WEBCHAT_POLL_SECONDS).
        await asyncio.wait_for(polling, 10)
