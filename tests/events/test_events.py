"""Domain events from the real message path, each payload checked against its published
JSON schema."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jsonschema
import pytest
from sqlalchemy import select

from botplatform.events import payloads
from botplatform.events.catalog import BROADCAST_EVENTS, EVENT_TYPES, json_schema
from botplatform.events.payloads import envelope
from botplatform.events.service import emit
from botplatform.kit.clock import utcnow
from botplatform.kit.scoping import enter_workspace
from botplatform.models import Contact, Conversation, Event
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.conftest import Api, eventually
from tests.fakes.webhook_receiver import Receiver, running_receiver

FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER


def assert_valid(payload: dict[str, Any]) -> None:
    schema = json_schema(payload["type"], payload["version"])
    jsonschema.Draft202012Validator(schema, format_checker=FORMATS).validate(payload)


async def events_of(runtime: Runtime, ws: str) -> list[dict[str, Any]]:
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        rows = (
            await db.execute(
                select(Event)
                .where(Event.workspace_id == uuid.UUID(ws))
                .order_by(Event.created_at, Event.id)
            )
        ).scalars()
        return [
            envelope(e.id, e.type, e.version, e.workspace_id, e.created_at, e.data) for e in rows
        ]


def test_every_event_type_has_a_valid_published_schema() -> None:
    for event_type in EVENT_TYPES:
        schema = json_schema(event_type)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["properties"]["type"] == {"const": event_type}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as running:
        yield running


async def test_the_message_path_emits_schema_valid_events(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime, receiver: Receiver
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await api.subscribe(owner, ws, receiver.url)
    agent = await api.add_member(owner, ws, "agent")
    channel = await api.create_channel(owner, ws)
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    await api.inbound_text(channel["id"], "15551230000", "Hi there", name="Dana")
    conversation = await api.conversation_of(owner, ws, "Dana")
    base = f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}"

    reply = await client.post(f"{base}/messages", json={"text": "Hello"}, headers=owner.headers)
    assert reply.status_code == 201
    await eventually(
        lambda: _has(
            runtime, ws, "message.status_updated", lambda d: d["message"]["status"] == "read"
        )
    )
    wa.fail_next(400, 131026, title="Message undeliverable")
    await client.post(f"{base}/messages", json={"text": "unlucky"}, headers=owner.headers)
    await eventually(lambda: _has(runtime, ws, "message.failed"))
    update = await client.patch(
        base, json={"assignee_id": str(agent.user_id), "status": "resolved"}, headers=owner.headers
    )
    assert update.status_code == 200
    await api.inbound_text(channel["id"], "15551230000", "STOP", name="Dana Q.")
    await eventually(
        lambda: _has(runtime, ws, "contact.updated", lambda d: "opted_out" in d["changed"])
    )

    events = await events_of(runtime, ws)
    seen = {event["type"] for event in events}
    # Emitted elsewhere, with their own schema checks (tests/template for templates,
    # tests/broadcast/test_broadcast_events.py for broadcasts).
    elsewhere = {"bot.handoff", "automation.triggered", "template.status_changed"}
    assert seen >= set(EVENT_TYPES) - elsewhere - BROADCAST_EVENTS
    for event in events:
        assert_valid(event)
        assert event["workspace_id"] == ws
    received = next(e for e in events if e["type"] == "message.received")
    assert received["data"]["message"]["text"] == "Hi there"
    assert received["data"]["message"]["direction"] == "inbound"
    assigned = next(e for e in events if e["type"] == "conversation.assigned")
    assert assigned["data"]["conversation"]["assignee_id"] == str(agent.user_id)
    assert assigned["data"]["previous_assignee_id"] is None
    sent = next(e for e in events if e["type"] == "message.sent")
    assert sent["data"]["message"]["provider_message_id"].startswith("wamid.")
    failed = next(e for e in events if e["type"] == "message.failed")
    assert failed["data"]["message"]["error"]["code"] == "131026"
    renamed = [
        e for e in events if e["type"] == "contact.updated" and "name" in e["data"]["changed"]
    ]
    assert renamed and renamed[0]["data"]["contact"]["name"] == "Dana Q."


async def _has(runtime: Runtime, ws: str, event_type: str, where: Any = lambda data: True) -> bool:
    return any(e["type"] == event_type and where(e["data"]) for e in await events_of(runtime, ws))


async def test_bot_handoff_payload_matches_its_schema(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime, receiver: Receiver
) -> None:
    """bot.handoff is emitted by the bots engine; its payload builder is checked here on a
    real conversation row."""
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await api.subscribe(owner, ws, receiver.url)
    channel = await api.create_channel(owner, ws)
    await api.inbound_text(channel["id"], "15551230001", "agent please", name="Eve")
    conversation = await api.conversation_of(owner, ws, "Eve")
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, uuid.UUID(ws))
        row = await db.get(Conversation, uuid.UUID(conversation["id"]))
        assert row is not None
        await emit(db, row.workspace_id, "bot.handoff", payloads.bot_handoff(row, None, "asked"))
    (handoff,) = [e for e in await events_of(runtime, ws) if e["type"] == "bot.handoff"]
    assert_valid(handoff)
    assert handoff["data"]["reason"] == "asked"


async def test_no_event_row_is_written_where_no_endpoint_subscribes(
    api: Api, runtime: Runtime, receiver: Receiver
) -> None:
    """An event row exists for its deliveries: a workspace with no endpoint (or one that
    takes other types) stores none, and one that subscribes stores exactly its types."""
    owner = await api.register()
    quiet, subscribed = await api.create_workspace(owner), await api.create_workspace(owner)
    response = await api.http.post(
        f"/api/v1/workspaces/{subscribed}/webhook-endpoints",
        json={"url": receiver.url, "event_types": ["contact.created"]},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    for ws in (quiet, subscribed):
        async with runtime.db.unit_of_work() as db:
            await enter_workspace(db, uuid.UUID(ws))
            await emit(db, uuid.UUID(ws), "contact.created", _contact_payload())
            await emit(db, uuid.UUID(ws), "contact.updated", _contact_payload(changed=True))
    assert await events_of(runtime, quiet) == []
    assert [e["type"] for e in await events_of(runtime, subscribed)] == ["contact.created"]


def _contact_payload(changed: bool = False) -> dict[str, Any]:
    now = utcnow()
    contact = Contact(id=uuid.uuid4(), name="Zoë", opted_out=False, created_at=now, updated_at=now)
    return payloads.contact_event(contact, ["name"]) if changed else payloads.contact_event(contact)


async def test_unknown_event_types_are_refused(runtime: Runtime) -> None:
    async with runtime.db.unit_of_work() as db:
        with pytest.raises(ValueError, match="unknown event type"):
            await emit(db, uuid.uuid4(), "message.exploded", {})


def test_schema_rejects_a_payload_that_drifts() -> None:
    good = envelope(
        uuid.uuid4(),
        "contact.created",
        1,
        uuid.uuid4(),
        utcnow(),
        {
            "contact": {
                "id": str(uuid.uuid4()),
                "name": "A",
                "opted_out": False,
                "created_at": "2026-01-01T00:00:00Z",
                "updated_at": "2026-01-01T00:00:00Z",
            }
        },
    )
    assert_valid(good)
    good["data"]["contact"]["surprise"] = 1
    with pytest.raises(jsonschema.ValidationError):
        assert_valid(good)


def test_docs_publish_every_event_type() -> None:
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text()
    for event_type, version in EVENT_TYPES.items():
        assert f"| `{event_type}` | {version} |" in docs


def test_docs_embed_the_shipped_schemas() -> None:
    import json
    import re
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text()
    blocks = dict(re.findall(r"### `([a-z_.]+)` v\d+\n\n```json\n(.*?)\n```", docs, re.S))
    assert set(blocks) == set(EVENT_TYPES)
    for event_type, text in blocks.items():
        assert json.loads(text) == json_schema(event_type), event_type
