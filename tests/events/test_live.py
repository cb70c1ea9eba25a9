"""Live events over WebSocket: authenticated, filtered by permission, the same payloads as
webhooks; and fanned out through Redis between two real app processes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from botplatform.config import Settings
from botplatform.events import endpoints as live_endpoints
from botplatform.runtime import Runtime
from tests.conftest import Account, Api
from tests.events.test_events import assert_valid, events_of
from tests.serving import app_processes, serving


@pytest.fixture(scope="session")
async def live_base(app: FastAPI) -> AsyncIterator[str]:
    """The app under test served on a loopback port, for real WebSocket clients."""
    async with serving(app) as port:
        yield f"ws://127.0.0.1:{port}"


def _url(base: str, ws: str) -> str:
    return f"{base}/api/v1/workspaces/{ws}/events/ws"


async def _next(socket: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), timeout))
    return message


async def _events_until(
    socket: ClientConnection, wanted: set[str], timeout: float = 15
) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not wanted <= {m["type"] for m in seen}:
        message = await _next(socket, max(0.1, deadline - loop.time()))
        if not message["type"].startswith("live."):
            seen.append(message)
    return seen


async def _close_code(socket: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(socket.recv(), 10)
    return closed.value.rcvd.code if closed.value.rcvd else None


async def test_dashboard_socket_streams_the_webhook_payloads(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, live_base: str
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await api.subscribe(owner, ws)  # its events stored, compared below
    async with connect(_url(live_base, ws), additional_headers=owner.headers) as socket:
        hello = await _next(socket)
        assert hello["type"] == "live.subscribed" and "message.received" in hello["event_types"]
        channel = await api.create_channel(owner, ws)
        await api.inbound_text(channel["id"], "15557654321", "Live?", name="Lin")
        streamed = await _events_until(
            socket, {"contact.created", "conversation.created", "message.received"}
        )
    stored = {e["id"]: e for e in await events_of(runtime, ws)}
    for payload in streamed:
        assert payload == stored[payload["id"]]  # exactly what webhooks carry
        assert_valid(payload)


async def test_permissions_filter_and_refuse(
    client: httpx.AsyncClient, api: Api, live_base: str
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    contacts_only = (await api.create_key(owner, ws, ["contacts:read"]))["key"]
    webhooks_only = (await api.create_key(owner, ws, ["webhooks:read"]))["key"]
    url = _url(live_base, ws)

    async with connect(url + f"?access_token={contacts_only}") as socket:
        assert (await _next(socket))["event_types"] == ["contact.created", "contact.updated"]
        channel = await api.create_channel(owner, ws)
        await api.inbound_text(channel["id"], "15550001212", "hello", name="Kai")
        first = await _events_until(socket, {"contact.created"})
        await api.inbound_text(channel["id"], "15550001212", "again", name="Kai B")
        second = await _events_until(socket, {"contact.updated"})
    assert {m["type"] for m in first + second} == {"contact.created", "contact.updated"}

    async with connect(url, additional_headers={"Authorization": f"Bearer {webhooks_only}"}) as s:
        assert await _close_code(s) == live_endpoints.CLOSE_FORBIDDEN
    async with connect(url) as s:
        assert await _close_code(s) == live_endpoints.CLOSE_UNAUTHORIZED
    async with connect(url + "?access_token=not-a-token") as s:
        assert await _close_code(s) == live_endpoints.CLOSE_UNAUTHORIZED
    stranger = await api.register()
    async with connect(url, additional_headers=stranger.headers) as s:
        assert await _close_code(s) == live_endpoints.CLOSE_NOT_FOUND
    other_ws = await api.create_workspace(stranger)
    async with connect(_url(live_base, other_ws) + f"?access_token={contacts_only}") as s:
        assert await _close_code(s) == live_endpoints.CLOSE_NOT_FOUND


async def test_other_workspaces_events_never_arrive_and_logout_ends_the_stream(
    client: httpx.AsyncClient,
    api: Api,
    live_base: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live_endpoints, "PING_SECONDS", 0.3)
    owner = await api.register()
    ws = await api.create_workspace(owner)
    viewer = await api.add_member(owner, ws, "viewer")
    other = await api.register()
    other_ws = await api.create_workspace(other)
    async with connect(_url(live_base, ws), additional_headers=viewer.headers) as socket:
        await _next(socket)
        foreign_channel = await api.create_channel(other, other_ws)
        await api.inbound_text(foreign_channel["id"], "15550003434", "not yours", name="Xi")
        mine = await api.create_channel(owner, ws)
        await api.inbound_text(mine["id"], "15550005656", "yours", name="Yu")
        streamed = await _events_until(socket, {"message.received"})
        assert all(m["workspace_id"] == ws for m in streamed)
        assert (await _next(socket))["type"] == "live.ping"
        logout = await client.post("/api/v1/auth/logout", headers=viewer.headers)
        assert logout.status_code == 200
        assert await _close_code(socket) == live_endpoints.CLOSE_UNAUTHORIZED


async def test_an_event_from_one_process_reaches_a_socket_on_another(
    settings: Settings, tmp_path: Path
) -> None:
    if not settings.redis_url:
        pytest.skip("fan-out across processes goes through Redis (production mode)")
    async with (
        app_processes(settings, tmp_path / "logs") as (first, second),
        httpx.AsyncClient(timeout=10) as http,
    ):
        owner, ws, channel_id = await _owner_with_channel(http, first)
        on_second = connect(
            _url(second.replace("http", "ws"), ws), additional_headers=owner.headers
        )
        on_first = connect(_url(first.replace("http", "ws"), ws), additional_headers=owner.headers)
        async with on_second as socket_b, on_first as socket_a:
            assert (await _next(socket_b))["type"] == "live.subscribed"
            assert (await _next(socket_a))["type"] == "live.subscribed"
            # Produced by process 1, received by a socket held by process 2.
            sent = await http.post(
                f"{first}/api/v1/workspaces/{ws}/messages",
                json={
                    "channel_id": channel_id,
                    "to": "+15550007878",
                    "type": "template",
                    "template": {"name": "hello_world", "language": "en_US"},
                },
                headers=owner.headers,
            )
            assert sent.status_code == 201, sent.text
            streamed = await _events_until(socket_b, {"contact.created", "conversation.created"})
            conversation = next(e for e in streamed if e["type"] == "conversation.created")
            # And the other way round.
            resolved = await http.patch(
                f"{second}/api/v1/workspaces/{ws}/conversations/"
                f"{conversation['data']['conversation']['id']}",
                json={"status": "resolved"},
                headers=owner.headers,
            )
            assert resolved.status_code == 200, resolved.text
            on_a = await _events_until(socket_a, {"conversation.created", "conversation.resolved"})
    for payload in streamed + on_a:
        assert_valid(payload)
    assert {e["id"] for e in streamed} <= {e["id"] for e in on_a}


async def _owner_with_channel(http: httpx.AsyncClient, base: str) -> tuple[Account, str, str]:
    api = Api(http)
    api.http = http
    registered = await http.post(
        f"{base}/api/v1/auth/register",
        json={"email": "fanout@example.com", "password": "violet-harbour-lantern-42", "name": "F"},
    )
    assert registered.status_code == 201, registered.text
    data = registered.json()["data"]
    owner = Account("fanout@example.com", "", data["access_token"], data["user"]["id"])
    created = await http.post(
        f"{base}/api/v1/workspaces", json={"name": "Fan-out"}, headers=owner.headers
    )
    ws = created.json()["data"]["id"]
    channel = await http.post(
        f"{base}/api/v1/workspaces/{ws}/channels",
        json={"name": "C", "phone_number_id": "9988776655", "business_account_id": "55443322"},
        headers=owner.headers,
    )
    assert channel.status_code == 201, channel.text
    return owner, ws, channel.json()["data"]["id"]


async def test_the_dashboard_cookie_works_from_the_platform_origin_only(
    client: httpx.AsyncClient, api: Api, live_base: str
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    cookie = {"Cookie": f"{live_endpoints.SESSION_COOKIE}={owner.token}"}
    own_origin = live_base.replace("ws://", "http://")
    async with connect(_url(live_base, ws), additional_headers=cookie, origin=own_origin) as s:
        assert (await _next(s))["type"] == "live.subscribed"
    async with connect(
        _url(live_base, ws), additional_headers=cookie, origin="http://evil.example"
    ) as s:
        assert await _close_code(s) == live_endpoints.CLOSE_FORBIDDEN


def _channel_of(event: dict[str, Any]) -> str | None:
    data = event["data"]
    subject = data.get("message") or data.get("conversation") or {}
    return subject.get("channel_id")


async def test_an_agent_receives_only_its_channels_events_and_follows_reassignment(
    client: httpx.AsyncClient,
    api: Api,
    live_base: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live_endpoints, "PING_SECONDS", 0.3)
    owner = await api.register()
    ws = await api.create_workspace(owner)
    a = await api.create_channel(owner, ws, name="A")
    b = await api.create_channel(owner, ws, name="B", phone_number_id="2233445566778")
    agent = await api.add_member(owner, ws, "agent")

    async def assign(channel_id: str) -> None:
        response = await client.put(
            f"/api/v1/workspaces/{ws}/members/{agent.user_id}/channels",
            json={"channel_ids": [channel_id]},
            headers=owner.headers,
        )
        assert response.status_code == 200, response.text

    async def until_message_from(socket: ClientConnection, channel_id: str) -> list[Any]:
        seen: list[dict[str, Any]] = []
        while not any(
            m["type"] == "message.received" and _channel_of(m) == channel_id for m in seen
        ):
            seen.extend(await _events_until(socket, {"message.received"}))
        return seen

    await assign(a["id"])
    async with connect(_url(live_base, ws), additional_headers=agent.headers) as socket:
        await _next(socket)
        await api.inbound_text(b["id"], "15550000002", "for B", name="Bob")
        await api.inbound_text(a["id"], "15550000001", "for A", name="Ann")
        streamed = await until_message_from(socket, a["id"])
        assert {_channel_of(m) for m in streamed} - {None} == {a["id"]}

        await assign(b["id"])  # reaches the open socket at its next ping
        for _ in range(2):  # the second re-check surely started after the change committed
            while (await _next(socket))["type"] != "live.ping":
                pass
        await api.inbound_text(a["id"], "15550000001", "A again", name="Ann")
        await api.inbound_text(b["id"], "15550000002", "B again", name="Bob")
        streamed = await until_message_from(socket, b["id"])
        assert {_channel_of(m) for m in streamed} - {None} == {b["id"]}
