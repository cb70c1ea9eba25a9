"""An API key's or a person's message goes through the same sender as a batch's replies
(channels/sender.py): the request, the outcome written with its events, and the opt-out of
a recipient who blocked the channel; its retries stay the send job's own."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from botplatform.channels import sender
from botplatform.sandbox import FakeGraph
from tests.channel.test_whatsapp_e2e import _messages, _setup
from tests.conftest import Api, eventually


async def test_an_api_send_goes_through_the_batched_sender(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, ws, channel, conversation = await _setup(api, wa)
    through_sender: list[str] = []
    send_channel = sender._send_channel

    async def recorded(runtime: Any, sends: list[sender.LeasedSend]) -> Any:
        through_sender.extend(str(send.message_id) for send in sends)
        return await send_channel(runtime, sends)

    monkeypatch.setattr(sender, "_send_channel", recorded)
    before = len(wa.sent)
    response = await client.post(
        f"/api/v1/workspaces/{ws}/messages",
        json={"channel_id": channel["id"], "to": "15551230000", "text": "From the API"},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    message_id = response.json()["data"]["id"]
    await eventually(lambda: len(wa.sent) > before)
    assert message_id in through_sender

    async def sent() -> bool:
        rows = await _messages(api, owner, ws, conversation["id"])
        done = ("sent", "delivered", "read")  # (the fake provider posts its statuses too)
        return any(row["id"] == message_id and row["status"] in done for row in rows)

    await eventually(sent)
