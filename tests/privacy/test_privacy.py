"""GDPR: exporting everything about one contact, and erasing a contact."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import Text, cast, func, select, update

from botplatform.media.storage import media_key
from botplatform.models import (
    AuditLog,
    AutomationEvent,
    AutomationRun,
    Base,
    BotSession,
    Contact,
    Event,
    Message,
)
from botplatform.runtime import Runtime
from tests.conftest import Account, Api, eventually

NAME, PHONE, TEXT, NOTE = "Cleo Privacy", "15550007777", "my secret text alpha", "note beta"
OTHER_NAME, OTHER_PHONE, OTHER_TEXT = "Dan Other", "15550008888", "dan keeps this"


@dataclass
class World:
    owner: Account
    ws: str
    contact_id: str
    conversation_id: str
    other_contact_id: str
    other_conversation_id: str
    own_key: str  # a file only the contact's message carries
    shared_key: str  # the same bytes sent to the other contact too
    foreign_contact_id: str  # the same phone number in another workspace


async def _put_media(runtime: Runtime, ws: str, data: bytes) -> str:
    key = media_key(uuid.UUID(ws), hashlib.sha256(data).hexdigest(), "png")
    await runtime.media.put(key, data, "image/png")
    return key


async def _attach(runtime: Runtime, message_text: str, key: str) -> None:
    async with runtime.db.unit_of_work(system=True) as db:
        await db.execute(
            update(Message)
            .where(Message.text == message_text)
            .values(media_key=key, media_mime="image/png", media_status="stored")
        )


async def _bot_and_automation_rows(
    api: Api, runtime: Runtime, owner: Account, ws: str, conversation: dict[str, Any]
) -> None:
    """A bot session and an automation event and run about the conversation, as a bot and a
    rule leave them."""
    rule = await api.http.post(
        f"/api/v1/workspaces/{ws}/automations",
        json={"name": "R", "event": "conversation.resolved", "actions": [{"type": "resolve"}]},
        headers=owner.headers,
    )
    assert rule.status_code == 201, rule.text
    workspace_id = uuid.UUID(ws)
    conversation_id = uuid.UUID(conversation["id"])
    contact_id = uuid.UUID(conversation["contact_id"])
    async with runtime.db.unit_of_work(system=True) as db:
        db.add(BotSession(workspace_id=workspace_id, conversation_id=conversation_id))
        event = AutomationEvent(
            workspace_id=workspace_id,
            event="message.received",
            status="processed",
            conversation_id=conversation_id,
            contact_id=contact_id,
        )
        db.add(event)
        await db.flush()
        db.add(
            AutomationRun(
                workspace_id=workspace_id,
                rule_id=uuid.UUID(rule.json()["data"]["id"]),
                event_id=event.id,
                event="message.received",
                outcome="not_matched",
                conversation_id=conversation_id,
                contact_id=contact_id,
            )
        )


async def _world(api: Api, runtime: Runtime) -> World:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await api.subscribe(owner, ws)  # so its events are stored, and erasure must reach them
    channel = await api.create_channel(owner, ws)
    await api.inbound_text(channel["id"], PHONE, TEXT, name=NAME)
    conversation = await api.conversation_of(owner, ws, NAME)
    await api.inbound_text(channel["id"], PHONE, "STOP", name=NAME)
    await api.inbound_text(channel["id"], OTHER_PHONE, OTHER_TEXT, name=OTHER_NAME)
    other = await api.conversation_of(owner, ws, OTHER_NAME)
    note = await api.http.post(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
        json={"text": NOTE, "note": True},
        headers=owner.headers,
    )
    assert note.status_code == 201, note.text

    async def opted_out() -> bool:
        response = await api.http.get(
            f"/api/v1/workspaces/{ws}/contacts/{conversation['contact_id']}",
            headers=owner.headers,
        )
        return bool(response.json()["data"]["opted_out"])

    await eventually(opted_out)
    await _bot_and_automation_rows(api, runtime, owner, ws, conversation)
    own_key = await _put_media(runtime, ws, b"\x89PNG only cleo")
    shared_key = await _put_media(runtime, ws, b"\x89PNG shared")
    await _attach(runtime, TEXT, own_key)
    await _attach(runtime, "STOP", shared_key)
    await _attach(runtime, OTHER_TEXT, shared_key)

    owner_b = await api.register()
    ws_b = await api.create_workspace(owner_b, "Elsewhere")
    channel_b = await api.create_channel(owner_b, ws_b, phone_number_id="9988776655")
    await api.inbound_text(channel_b["id"], PHONE, "other workspace text", name="Cleo B")
    foreign = await api.conversation_of(owner_b, ws_b, "Cleo B")
    return World(
        owner,
        ws,
        conversation["contact_id"],
        conversation["id"],
        other["contact_id"],
        other["id"],
        own_key,
        shared_key,
        foreign["contact_id"],
    )


async def _audit(runtime: Runtime, action: str) -> list[AuditLog]:
    async with runtime.db.unit_of_work(system=True) as db:
        rows = await db.execute(select(AuditLog).where(AuditLog.action == action))
        return list(rows.scalars())


async def test_export_holds_everything_about_the_contact_and_nothing_else(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    world = await _world(api, runtime)
    response = await client.get(
        f"/api/v1/workspaces/{world.ws}/contacts/{world.contact_id}/export",
        headers=world.owner.headers,
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["contact"]["id"] == world.contact_id
    assert data["contact"]["name"] == NAME
    assert data["contact"]["opted_out"] is True
    assert [i["external_id"] for i in data["contact"]["identities"]] == [PHONE]
    assert [c["action"] for c in data["contact"]["consent"]] == ["opt_out"]
    [conversation] = data["conversations"]
    assert conversation["id"] == world.conversation_id
    messages = conversation["messages"]
    texts = [m["text"] for m in messages]
    assert TEXT in texts and "STOP" in texts and NOTE in texts
    assert [m["is_note"] for m in messages if m["text"] == NOTE] == [True]
    assert all(m["status"] and "content" in m for m in messages)
    assert {m["key"] for m in data["media"]} == {world.own_key, world.shared_key}
    assert all(m["url"] for m in data["media"])
    dumped = json.dumps(data)
    for foreign in (OTHER_NAME, OTHER_PHONE, OTHER_TEXT, world.other_contact_id):
        assert foreign not in dumped
    assert "other workspace text" not in dumped and world.foreign_contact_id not in dumped

    [entry] = await _audit(runtime, "contact.export")
    assert (entry.target_type, entry.target_id) == ("contact", world.contact_id)
    assert NAME not in json.dumps(entry.changes) and PHONE not in json.dumps(entry.changes)


async def _rows_naming(runtime: Runtime, ids: set[str]) -> dict[str, int]:
    """Rows of every table with a contact_id or conversation_id column that name one of
    `ids`, and of the tables themselves (contacts, conversations) by primary key."""
    found: dict[str, int] = {}
    wanted = [uuid.UUID(i) for i in ids]
    async with runtime.db.unit_of_work(system=True) as db:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in ("contact_id", "conversation_id") if c in table.c]
            if table.name in {"contacts", "conversations"}:
                columns.append("id")
            for column in columns:
                count = (
                    await db.execute(
                        select(func.count()).select_from(table).where(table.c[column].in_(wanted))
                    )
                ).scalar_one()
                if count:
                    found[f"{table.name}.{column}"] = count
        for value in ids:
            events = (
                await db.execute(select(func.count()).where(cast(Event.data, Text).contains(value)))
            ).scalar_one()
            if events:
                found[f"events:{value}"] = events
    return found


async def test_erase_leaves_no_row_of_the_contact_and_keeps_the_others(
    client: httpx.AsyncClient,
    api: Api,
    runtime: Runtime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)  # what production logs (driver debug lines echo SQL parameters)
    world = await _world(api, runtime)
    ids = {world.contact_id, world.conversation_id}
    before = await _rows_naming(runtime, ids)  # the check below can see them
    for table in ("bot_sessions", "automation_events", "automation_runs", "messages"):
        assert f"{table}.conversation_id" in before, before
    assert "consent_events.contact_id" in before and f"events:{world.contact_id}" in before
    first_record = len(caplog.records)
    response = await client.delete(
        f"/api/v1/workspaces/{world.ws}/contacts/{world.contact_id}", headers=world.owner.headers
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["contact_id"] == world.contact_id
    assert data["erased"]["contacts"] == 1
    assert data["erased"]["conversations"] == 1
    assert data["erased"]["messages"] == 3
    assert data["erased"]["consent_events"] == 1
    assert data["erased"]["contact_identities"] == 1
    assert data["media_files"] == 1  # the shared file stays: another message carries it

    assert await _rows_naming(runtime, ids) == {}
    async with runtime.db.unit_of_work(system=True) as db:
        texts = set((await db.execute(select(Message.text))).scalars())
        names = set((await db.execute(select(Contact.name))).scalars())
    assert TEXT not in texts and NOTE not in texts
    assert OTHER_TEXT in texts and "other workspace text" in texts
    assert names == {OTHER_NAME, "Cleo B"}

    async def own_file_gone() -> bool:
        return not await runtime.media.exists(world.own_key)

    await eventually(own_file_gone)
    assert await runtime.media.exists(world.shared_key)

    other = await client.get(
        f"/api/v1/workspaces/{world.ws}/contacts/{world.other_contact_id}/export",
        headers=world.owner.headers,
    )
    assert other.status_code == 200
    assert [m["text"] for m in other.json()["data"]["conversations"][0]["messages"]] == [OTHER_TEXT]
    again = await client.delete(
        f"/api/v1/workspaces/{world.ws}/contacts/{world.contact_id}", headers=world.owner.headers
    )
    assert again.status_code == 404

    [entry] = await _audit(runtime, "contact.erase")
    assert (entry.target_type, entry.target_id) == ("contact", world.contact_id)
    assert entry.changes is not None and entry.changes["messages"] == 3
    async with runtime.db.unit_of_work(system=True) as db:
        audit_rows = list((await db.execute(select(AuditLog))).scalars())
    dumped = json.dumps(
        [
            [row.action, row.target_id, row.changes, row.actor_label, row.user_agent]
            for row in audit_rows
        ],
        default=str,
    )
    # Everything logged from the erasure on: the request, the audit line, the media job.
    logged = "\n".join(record.getMessage() for record in caplog.records[first_record:])
    assert "contact.erase" in logged and "erased_media_deleted" in logged
    assert "contact.erase" in dumped
    for secret in (NAME, PHONE, TEXT, NOTE):
        assert secret not in dumped
        assert secret not in logged


@pytest.mark.parametrize(
    ("role", "export", "erase"),
    [
        ("admin", 200, 200),
        ("manager", 200, 403),
        ("analyst", 200, 403),
        ("developer", 403, 403),
        ("agent", 403, 403),
        ("viewer", 403, 403),
    ],
)
async def test_permissions(
    client: httpx.AsyncClient,
    api: Api,
    runtime: Runtime,
    role: str,
    export: int,
    erase: int,
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await api.subscribe(owner, ws)  # so its events are stored, and erasure must reach them
    channel = await api.create_channel(owner, ws)
    await api.inbound_text(channel["id"], PHONE, TEXT, name=NAME)
    contact_id = (await api.conversation_of(owner, ws, NAME))["contact_id"]
    member = await api.add_member(owner, ws, role)
    url = f"/api/v1/workspaces/{ws}/contacts/{contact_id}"
    exported = await client.get(f"{url}/export", headers=member.headers)
    assert exported.status_code == export, exported.text
    erased = await client.delete(url, headers=member.headers)
    assert erased.status_code == erase, erased.text
    if erase == 403:
        assert erased.json()["error"]["code"] == "permission_denied"
        still = await client.get(url, headers=owner.headers)
        assert still.status_code == 200


async def test_unknown_contact_is_404_and_bad_id_is_422(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    missing = f"/api/v1/workspaces/{ws}/contacts/{uuid.uuid4()}"
    assert (await client.get(f"{missing}/export", headers=owner.headers)).status_code == 404
    assert (await client.delete(missing, headers=owner.headers)).status_code == 404
    bad = await client.delete(f"/api/v1/workspaces/{ws}/contacts/nope", headers=owner.headers)
    assert bad.status_code == 422
