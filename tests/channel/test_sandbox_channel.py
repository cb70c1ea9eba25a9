"""The first hour on the sandbox, through the API: a channel created for the sandbox works
without the user knowing any id or secret, replies reach the sandbox on the first try, two
customers can be told apart, and a mistyped phone number id is corrected in place."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from botplatform.models import Channel
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.conftest import APP_SECRET, CHANNEL_TOKEN, Account, Api, eventually


async def _sandbox_channel(
    client: httpx.AsyncClient, owner: Account, ws: str, **body: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/api/v1/workspaces/{ws}/channels/sandbox", json=body, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json()["data"])


async def _conversations(client: httpx.AsyncClient, owner: Account, ws: str) -> list[Any]:
    response = await client.get(f"/api/v1/workspaces/{ws}/conversations", headers=owner.headers)
    return list(response.json()["data"]["items"])


async def test_a_sandbox_channel_works_on_the_first_try(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await _sandbox_channel(client, owner, ws)

    # The platform chose the ids, told the sandbox the webhook URL and took its credentials.
    assert channel["sandbox"] is True and channel["name"] == "WhatsApp sandbox"
    number = wa.numbers[channel["phone_number_id"]]
    assert number.webhook_url == channel["webhook_url"]
    assert channel["display_phone_number"] == f"+{number.display_phone_number}"
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        stored = (
            await db.execute(select(Channel).where(Channel.id == uuid.UUID(channel["id"])))
        ).scalar()
    assert stored is not None
    assert (stored.access_token, stored.app_secret) == (CHANNEL_TOKEN, APP_SECRET)

    # Two customers write; each is its own conversation, told apart by number and name.
    await wa.post_inbound_text("15551234567", "Where is my order?", "Ada")
    await wa.post_inbound_text("15559876543", "Hello?")
    rows = await eventually(
        lambda: _two(client, owner, ws),
    )
    seen = {(c["contact_name"], c["contact_handle"]) for c in rows}
    assert seen == {("Ada", "+15551234567"), ("Customer 6543", "+15559876543")}

    # A reply reaches the sandbox on the first try and moves on to read.
    ada = next(c for c in rows if c["contact_name"] == "Ada")
    sent = await client.post(
        f"/api/v1/workspaces/{ws}/conversations/{ada['id']}/messages",
        json={"text": "It ships today!"},
        headers=owner.headers,
    )
    assert sent.status_code in (200, 201, 202), sent.text
    [reached] = await eventually(lambda: wa.sent or None)
    assert reached["to"] == "15551234567"
    assert reached["phone_number_id"] == channel["phone_number_id"]
    assert reached["body"]["text"]["body"] == "It ships today!"
    message_id = sent.json()["data"]["id"]

    async def read() -> bool:
        response = await client.get(
            f"/api/v1/workspaces/{ws}/conversations/{ada['id']}/messages", headers=owner.headers
        )
        items = response.json()["data"]["items"]
        return any(m["id"] == message_id and m["status"] == "read" for m in items)

    await eventually(read)

    # The contact list shows the number too.
    contacts = await client.get(f"/api/v1/workspaces/{ws}/contacts", headers=owner.headers)
    handles = {c["name"]: c["handle"] for c in contacts.json()["data"]["items"]}
    assert handles == {"Ada": "+15551234567", "Customer 6543": "+15559876543"}
    detail = await client.get(
        f"/api/v1/workspaces/{ws}/contacts/{ada['contact_id']}", headers=owner.headers
    )
    assert detail.json()["data"]["handle"] == "+15551234567"


async def _two(client: httpx.AsyncClient, owner: Account, ws: str) -> list[Any] | None:
    rows = await _conversations(client, owner, ws)
    return rows if len(rows) == 2 else None


async def test_two_sandbox_channels_get_numbers_of_their_own(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    first = await _sandbox_channel(client, owner, ws, name="Sales")
    second = await _sandbox_channel(client, owner, ws, name="Support")
    assert first["phone_number_id"] != second["phone_number_id"]
    assert first["display_phone_number"] != second["display_phone_number"]
    # A customer may write to either; the conversation lands on that channel.
    await wa.post_inbound_text("15551112222", "hi", phone_number_id=first["phone_number_id"])
    [conversation] = await eventually(lambda: _conversations(client, owner, ws))
    assert conversation["channel_id"] == first["id"]


async def test_no_sandbox_no_channel(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    url = f"/api/v1/workspaces/{ws}/channels/sandbox"
    for base in ("https://graph.facebook.com", "http://127.0.0.1:9"):
        monkeypatch.setattr(runtime.settings, "whatsapp_api_base_url", base)
        refused = await client.post(url, json={}, headers=owner.headers)
        assert refused.status_code == 409, refused.text
        error = refused.json()["error"]
        assert error["code"] == "sandbox_unavailable"
        assert "botplatform sandbox whatsapp" in error["message"]
    assert await _channels(client, owner, ws) == []
    bad = await client.post(url, json={"name": ""}, headers=owner.headers)
    assert bad.status_code == 422
    viewer = await api.add_member(owner, ws, "viewer")
    assert (await client.post(url, json={}, headers=viewer.headers)).status_code == 403


async def _channels(client: httpx.AsyncClient, owner: Account, ws: str) -> list[Any]:
    response = await client.get(f"/api/v1/workspaces/{ws}/channels", headers=owner.headers)
    return list(response.json()["data"]["items"])


async def test_a_restarted_sandbox_is_told_again(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await _sandbox_channel(client, owner, ws)
    wa.numbers.clear()  # what a restart of `botplatform sandbox whatsapp` forgets
    again = await client.post(
        f"/api/v1/workspaces/{ws}/channels/{channel['id']}/sandbox", headers=owner.headers
    )
    assert again.status_code == 200, again.text
    assert wa.numbers[channel["phone_number_id"]].webhook_url == channel["webhook_url"]
    plain = await api.create_channel(owner, ws, phone_number_id="5550001")
    refused = await client.post(
        f"/api/v1/workspaces/{ws}/channels/{plain['id']}/sandbox", headers=owner.headers
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "not_a_sandbox_channel"


async def test_a_mistyped_phone_number_id_is_corrected_in_place(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws, phone_number_id="1122334455668")  # typo
    wa.webhook_url = channel["webhook_url"]
    await wa.post_inbound_text("15553334444", "hello", "Grace")
    [conversation] = await eventually(lambda: _conversations(client, owner, ws))
    url = f"/api/v1/workspaces/{ws}/channels/{channel['id']}"

    fixed = await client.patch(
        url, json={"phone_number_id": wa.phone_number_id}, headers=owner.headers
    )
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["data"]["phone_number_id"] == wa.phone_number_id
    # History kept, and the reply now goes out from the right number.
    assert [c["id"] for c in await _conversations(client, owner, ws)] == [conversation["id"]]
    await client.post(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
        json={"text": "Hi Grace"},
        headers=owner.headers,
    )
    [reached] = await eventually(lambda: wa.sent or None)
    assert reached["phone_number_id"] == wa.phone_number_id

    other = await api.create_channel(owner, ws, phone_number_id="7770001")
    taken = await client.patch(url, json={"phone_number_id": "7770001"}, headers=owner.headers)
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "channel_exists"
    assert other["id"]
    invalid = await client.patch(url, json={"phone_number_id": "12-ab"}, headers=owner.headers)
    assert invalid.status_code == 422
    same = await client.patch(
        url, json={"phone_number_id": wa.phone_number_id}, headers=owner.headers
    )
    assert same.status_code == 200  # its own number is not "taken"
