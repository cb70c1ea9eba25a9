"""A channel without an access token says so: a media upload answers 422
`channel_not_configured` naming the setting (not a 502 from the provider), and a send ends
`failed` with that code at once (not retried, not a provider error). Nothing reaches the
provider."""

from __future__ import annotations

from typing import Any

import httpx

from botplatform.sandbox import FakeGraph
from tests.conftest import Api, eventually

PNG = bytes.fromhex("89504e470d0a1a0a") + bytes(64)


async def _tokenless(api: Api) -> tuple[Any, str, dict[str, Any]]:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws, access_token=None)
    assert channel["access_token_hint"] is None
    return owner, ws, channel


async def test_media_upload_without_access_token_is_422_naming_the_setting(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner, ws, channel = await _tokenless(api)
    response = await client.post(
        f"/api/v1/workspaces/{ws}/channels/{channel['id']}/media",
        files={"file": ("photo.png", PNG, "image/png")},
        headers=owner.headers,
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "channel_not_configured"
    assert "no access token" in error["message"] and "access_token" in error["message"]
    assert "WHATSAPP_API_KEY" in error["message"]
    assert wa.media == {}  # nothing reached the provider


async def test_send_without_access_token_fails_with_the_clear_code(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner, ws, channel = await _tokenless(api)
    await api.inbound_text(channel["id"], "15551230000", "I need help", name="Dana")
    conversation = await api.conversation_of(owner, ws, "Dana")
    url = f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages"
    reply = await client.post(url, json={"text": "Hello"}, headers=owner.headers)
    assert reply.status_code == 201, reply.text

    async def failed() -> dict[str, Any] | None:
        items = (await client.get(url, headers=owner.headers)).json()["data"]["items"]
        out = [m for m in items if m["direction"] == "outbound" and m["status"] == "failed"]
        return out[0] if out else None

    message = await eventually(failed)
    assert message["error_code"] == "channel_not_configured"
    assert "access_token" in message["error_title"]
    assert wa.sent == []
