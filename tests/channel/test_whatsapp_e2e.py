"""WhatsApp end to end against the fake Graph API on loopback: a customer writes, an agent
answers, statuses come back; the policy gate; provider errors; once-only sends; media."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update

from botplatform.kit.clock import utcnow
from botplatform.models import Conversation
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.conftest import Account, Api, eventually, meta_signature


async def _setup(
    api: Api, wa: FakeGraph, name: str = "Dana"
) -> tuple[Account, str, dict[str, Any], dict[str, Any]]:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    await api.inbound_text(channel["id"], "15551230000", "I need help", name=name)
    return owner, ws, channel, await api.conversation_of(owner, ws, name)


async def _messages(
    api: Api, owner: Account, ws: str, conversation_id: str
) -> list[dict[str, Any]]:
    response = await api.http.get(
        f"/api/v1/workspaces/{ws}/conversations/{conversation_id}/messages", headers=owner.headers
    )
    return list(response.json()["data"]["items"])


async def _outbound(
    api: Api, owner: Account, ws: str, conversation_id: str
) -> dict[str, Any] | None:
    items = await _messages(api, owner, ws, conversation_id)
    return next((m for m in items if m["direction"] == "outbound" and not m["is_note"]), None)


async def test_customer_writes_agent_replies_statuses_come_back(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner, ws, _, conversation = await _setup(api, wa)
    assert conversation["window_open"] is True
    reply = await client.post(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
        json={"text": "Hello Dana, how can I help?"},
        headers=owner.headers,
    )
    assert reply.status_code == 201 and reply.json()["data"]["status"] == "queued"

    (sent,) = await eventually(lambda: wa.sent)
    assert sent["to"] == "15551230000" and sent["type"] == "text"
    assert sent["body"]["text"]["body"] == "Hello Dana, how can I help?"

    async def read() -> dict[str, Any] | None:
        message = await _outbound(api, owner, ws, conversation["id"])
        return message if message and message["status"] == "read" else None

    message = await eventually(read)
    assert message["provider_message_id"] == sent["wamid"]
    assert message["sent_at"] and message["delivered_at"] and message["read_at"]


async def test_every_message_type_reaches_the_graph_api(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner, ws, channel, conversation = await _setup(api, wa)
    inbound = (await _messages(api, owner, ws, conversation["id"]))[0]
    bodies = [
        {"type": "text", "text": "See https://example.com", "preview_url": True},
        {"type": "image", "media": {"link": "https://example.com/a.jpg", "caption": "A"}},
        {"type": "video", "media": {"id": "1234567890"}},
        {"type": "audio", "media": {"link": "https://example.com/a.ogg"}},
        {"type": "document", "media": {"link": "https://example.com/a.pdf", "filename": "a.pdf"}},
        {"type": "sticker", "media": {"id": "987654321"}},
        {"type": "location", "location": {"latitude": 52.5, "longitude": 13.4, "name": "Berlin"}},
        {
            "type": "contacts",
            "contacts": [
                {
                    "name": {"formatted_name": "Ann", "first_name": "Ann"},
                    "phones": [{"phone": "+15550001"}],
                }
            ],
        },
        {
            "type": "template",
            "template": {
                "name": "order_update",
                "language": "en_US",
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}],
            },
        },
        {
            "type": "interactive",
            "text": "Pick one",
            "buttons": [{"id": "yes", "title": "Yes"}, {"id": "no", "title": "No"}],
            "footer": "thanks",
        },
        {
            "type": "interactive",
            "text": "Menu",
            "list_button": "Open",
            "sections": [
                {"title": "Main", "rows": [{"id": "r1", "title": "Row 1", "description": "d"}]}
            ],
        },
        {"type": "reaction", "reaction_to": inbound["provider_message_id"], "emoji": "👍"},
        {"type": "text", "text": "A reply", "reply_to": inbound["id"]},
    ]
    for body in bodies:
        response = await client.post(
            f"/api/v1/workspaces/{ws}/messages",
            json={"channel_id": channel["id"], "to": "+15551230000", **body},
            headers=owner.headers,
        )
        assert response.status_code == 201, (body, response.text)
    sent = await eventually(lambda: wa.sent if len(wa.sent) == len(bodies) else None, timeout=20)
    assert sorted(item["type"] for item in sent) == sorted(body["type"] for body in bodies)
    by_text = {item["body"].get("text", {}).get("body"): item["body"] for item in sent}
    assert by_text["A reply"]["context"] == {"message_id": inbound["provider_message_id"]}
    assert by_text["See https://example.com"]["text"]["preview_url"] is True


async def test_window_closed_refuses_free_form_but_not_templates(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner, ws, channel, _conversation = await _setup(api, wa)
    async with runtime.db.unit_of_work(system=True) as db:
        await db.execute(
            update(Conversation).values(last_inbound_at=utcnow() - timedelta(hours=25))
        )
    url = f"/api/v1/workspaces/{ws}/messages"
    free = await client.post(
        url,
        json={"channel_id": channel["id"], "to": "15551230000", "text": "late"},
        headers=owner.headers,
    )
    assert free.status_code == 422 and free.json()["error"]["code"] == "window_closed"
    template = await client.post(
        url,
        json={
            "channel_id": channel["id"],
            "to": "15551230000",
            "type": "template",
            "template": {"name": "hello_world", "language": "en_US"},
        },
        headers=owner.headers,
    )
    assert template.status_code == 201
    (sent,) = await eventually(lambda: wa.sent)
    assert sent["type"] == "template"
    new_number = await client.post(
        url,
        json={"channel_id": channel["id"], "to": "15559990000", "text": "cold"},
        headers=owner.headers,
    )
    assert new_number.json()["error"]["code"] == "window_closed"  # never wrote at all


async def test_stop_and_start_keywords_keep_a_consent_ledger(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner, ws, channel, conversation = await _setup(api, wa)
    await api.inbound_text(channel["id"], "15551230000", "STOP", name="Dana")

    async def opted_out() -> bool:
        contact = (
            await client.get(
                f"/api/v1/workspaces/{ws}/contacts/{conversation['contact_id']}",
                headers=owner.headers,
            )
        ).json()["data"]
        return bool(contact["opted_out"])

    await eventually(opted_out)
    refused = await client.post(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
        json={"text": "hi?"},
        headers=owner.headers,
    )
    assert refused.json()["error"]["code"] == "opted_out"
    await api.inbound_text(channel["id"], "15551230000", "Iniciar", name="Dana")  # Spanish START
    await eventually(lambda: _not(opted_out))
    contact = (
        await client.get(
            f"/api/v1/workspaces/{ws}/contacts/{conversation['contact_id']}", headers=owner.headers
        )
    ).json()["data"]
    assert [(c["action"], c["source"], c["detail"]) for c in contact["consent"]] == [
        ("opt_out", "keyword", "STOP"),
        ("opt_in", "keyword", "Iniciar"),
    ]
    assert contact["identities"][0]["external_id"] == "15551230000"


async def _not(check: Any) -> bool:
    return not await check()


async def test_permanent_provider_error_fails_the_message(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner, ws, _, conversation = await _setup(api, wa)
    wa.fail_next(400, 131026)
    await client.post(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
        json={"text": "unlucky"},
        headers=owner.headers,
    )

    async def failed() -> dict[str, Any] | None:
        message = await _outbound(api, owner, ws, conversation["id"])
        return message if message and message["status"] == "failed" else None

    message = await eventually(failed)
    assert message["error_code"] == "131026" and message["error_title"]
    await asyncio.sleep(0.3)
    assert wa.sent == []  # not retried


async def test_throttling_is_retried_until_sent(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner, ws, _, conversation = await _setup(api, wa)
    from botplatform.worker.jobs import REGISTRY

    spec = REGISTRY["send_message"]
    actor = runtime.jobs.broker.get_actor("send_message")
    actor.options["min_backoff"], actor.options["max_backoff"] = 50, 100  # fast test retries
    try:
        wa.fail_next(429, 130429, times=2)
        await client.post(
            f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
            json={"text": "third time lucky"},
            headers=owner.headers,
        )
        (sent,) = await eventually(lambda: wa.sent)
        assert sent["body"]["text"]["body"] == "third time lucky"
        message = await eventually(lambda: _sent(api, owner, ws, conversation["id"]))
        assert message["error_code"] is None
    finally:
        actor.options["min_backoff"] = spec.min_backoff_ms
        actor.options["max_backoff"] = spec.max_backoff_ms


async def _sent(api: Api, owner: Account, ws: str, conversation_id: str) -> dict[str, Any] | None:
    message = await _outbound(api, owner, ws, conversation_id)
    return message if message and message["status"] in ("sent", "delivered", "read") else None


async def test_a_duplicated_send_job_calls_the_provider_once(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner, ws, _, conversation = await _setup(api, wa)
    wa.latency = 0.2
    response = await client.post(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
        json={"text": "once"},
        headers={**owner.headers, "Idempotency-Key": "k-1"},
    )
    message_id = response.json()["data"]["id"]
    for _ in range(3):  # at-least-once delivery hands the job over again
        runtime.jobs.send("send_message", ws, message_id)
    await eventually(lambda: _sent(api, owner, ws, conversation["id"]))
    await asyncio.sleep(0.6)
    assert len(wa.sent) == 1
    again = await client.post(  # the same Idempotency-Key: the same message, no new send
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
        json={"text": "once"},
        headers={**owner.headers, "Idempotency-Key": "k-1"},
    )
    assert again.json()["data"]["id"] == message_id
    await asyncio.sleep(0.3)
    assert len(wa.sent) == 1


async def test_status_updates_never_go_backwards(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner, ws, _channel, conversation = await _setup(api, wa)
    wa.auto_status = False
    try:
        await client.post(
            f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
            json={"text": "x"},
            headers=owner.headers,
        )
        (sent,) = await eventually(lambda: wa.sent)
        await eventually(lambda: _sent(api, owner, ws, conversation["id"]))
        for status in ("read", "delivered", "sent"):  # out of order
            await wa.post_status(sent["wamid"], status, "15551230000")

        async def read() -> dict[str, Any] | None:
            message = await _outbound(api, owner, ws, conversation["id"])
            return message if message and message["status"] == "read" else None

        await eventually(read)
        await asyncio.sleep(0.3)  # the late `delivered` and `sent` have been processed too
        assert await read() is not None
    finally:
        wa.auto_status = True


async def test_inbound_media_is_fetched_and_served_by_signed_url(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner, ws, channel, conversation = await _setup(api, wa)
    png = b"\\x89PNG\\r\\n\\x1a\\n" + b"\\x00" * 64
    png = bytes.fromhex("89504e470d0a1a0a") + bytes(64)
    media_id = wa.add_media(png, "image/png")
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": "1122334455667"},
        "contacts": [{"profile": {"name": "Dana"}, "wa_id": "15551230000"}],
        "messages": [
            {
                "from": "15551230000",
                "id": "wamid.media-1",
                "timestamp": "1700000000",
                "type": "image",
                "image": {"id": media_id, "mime_type": "image/png", "caption": "my receipt"},
            }
        ],
    }
    body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
        }
    )
    await client.post(
        f"/webhooks/whatsapp/{channel['id']}",
        content=body.encode(),
        headers=meta_signature(body.encode()),
    )

    async def stored() -> dict[str, Any] | None:
        items = await _messages(api, owner, ws, conversation["id"])
        return next(
            (m for m in items if m["type"] == "image" and m["media_status"] == "stored"), None
        )

    message = await eventually(stored)
    assert message["text"] == "my receipt"
    url = message["media_url"].replace("http://localhost:3000", "")
    served = await client.get(url)
    assert served.status_code == 200 and served.content == png
    assert served.headers["content-type"] == "image/png"
    forged = await client.get(url.split("?")[0] + "?token=forged")
    assert forged.status_code == 403


async def test_internal_notes_are_never_sent(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner, ws, _, conversation = await _setup(api, wa)
    note = await client.post(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
        json={"text": "VIP customer", "note": True},
        headers=owner.headers,
    )
    assert note.status_code == 201 and note.json()["data"]["is_note"] is True
    await asyncio.sleep(0.3)
    assert wa.sent == []


async def test_conversation_status_and_assignment(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner, ws, _, conversation = await _setup(api, wa)
    agent = await api.add_member(owner, ws, "agent")
    url = f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}"
    assigned = await client.patch(
        url,
        json={"assignee_id": str(agent.user_id), "status": "pending", "mark_read": True},
        headers=owner.headers,
    )
    data = assigned.json()["data"]
    assert (data["assignee_id"], data["status"], data["unread_count"]) == (
        str(agent.user_id),
        "pending",
        0,
    )
    stranger = await api.register()
    bad = await client.patch(
        url, json={"assignee_id": str(stranger.user_id)}, headers=owner.headers
    )
    assert bad.status_code == 404
    refused = await client.patch(url, json={"status": "resolved"}, headers=agent.headers)
    assert refused.status_code == 403  # agents reply; managers and up manage


async def test_channel_auto_reply_answers_every_inbound_text(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws, auto_reply="Thanks! We answer within the hour.")
    assert channel["auto_reply"] == "Thanks! We answer within the hour."
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    await api.inbound_text(channel["id"], "15552220000", "Is the shop open?", name="Eve")
    (sent,) = await eventually(lambda: wa.sent)
    assert sent["to"] == "15552220000"
    assert sent["body"]["text"]["body"] == "Thanks! We answer within the hour."
    await api.inbound_text(channel["id"], "15552220000", "STOP", name="Eve")  # no reply to STOP
    cleared = await client.patch(
        f"/api/v1/workspaces/{ws}/channels/{channel['id']}",
        json={"auto_reply": ""},
        headers=owner.headers,
    )
    assert cleared.json()["data"]["auto_reply"] is None
    await asyncio.sleep(0.5)
    assert len(wa.sent) == 1


async def test_marking_a_conversation_read_sends_a_read_receipt(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner, ws, channel, conversation = await _setup(api, wa)
    latest = await api.inbound_text(channel["id"], "15551230000", "anyone there?", name="Dana")
    await eventually(lambda: _count(api, owner, ws, conversation["id"], 2))
    response = await client.patch(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}",
        json={"mark_read": True},
        headers=owner.headers,
    )
    assert response.json()["data"]["unread_count"] == 0
    assert await eventually(lambda: wa.marked_read) == [latest]


async def _count(api: Api, owner: Account, ws: str, conversation_id: str, n: int) -> bool:
    return len(await _messages(api, owner, ws, conversation_id)) >= n


PNG = bytes.fromhex("89504e470d0a1a0a") + bytes(64)


async def test_uploaded_media_is_sent_by_id(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner, ws, channel, conversation = await _setup(api, wa)
    url = f"/api/v1/workspaces/{ws}/channels/{channel['id']}/media"
    uploaded = await client.post(
        url, files={"file": ("receipt.png", PNG, "image/png")}, headers=owner.headers
    )
    assert uploaded.status_code == 201, uploaded.text
    media = uploaded.json()["data"]
    assert (media["mime_type"], media["size"]) == ("image/png", len(PNG))
    assert wa.media[media["id"]].data == PNG
    await client.post(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
        json={"type": "image", "media": {"id": media["id"], "caption": "here"}},
        headers=owner.headers,
    )
    (sent,) = await eventually(lambda: wa.sent)
    assert sent["body"]["image"] == {"id": media["id"], "caption": "here"}
    fake = await client.post(
        url, files={"file": ("x.png", b"MZ\x90\x00" * 10, "image/png")}, headers=owner.headers
    )
    assert fake.status_code == 422 and fake.json()["error"]["code"] == "media_rejected"


async def test_edits_and_typing_are_not_whatsapps(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    """WhatsApp cannot edit a sent message: a clear 422 and the row is untouched; a typing
    indicator is answered `typing: false` with nothing sent."""
    owner, ws, _channel, conversation = await _setup(api, wa)
    base = f"/api/v1/workspaces/{ws}"
    sent = await client.post(
        f"{base}/conversations/{conversation['id']}/messages",
        json={"type": "text", "text": "on its way"},
        headers=owner.headers,
    )
    message_id = sent.json()["data"]["id"]
    await eventually(lambda: wa.sent or None)
    refused = await client.patch(
        f"{base}/messages/{message_id}", json={"text": "delayed"}, headers=owner.headers
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "edit_not_available"
    items = await _messages(api, owner, ws, conversation["id"])
    row = next(m for m in items if m["id"] == message_id)
    assert (row["text"], row["edited"]) == ("on its way", False)
    typing = await client.post(
        f"{base}/conversations/{conversation['id']}/typing", headers=owner.headers
    )
    assert (typing.status_code, typing.json()["data"]) == (202, {"typing": False})
    assert len(wa.sent) == 1
