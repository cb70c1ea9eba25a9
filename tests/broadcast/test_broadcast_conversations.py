"""A broadcast to contacts who never wrote on the channel makes their conversations: one per
contact, with its `conversation.created` event, written in one multi-row INSERT per claim (not
one ORM object each), and a conversation the customer opens meanwhile is taken as it is."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from botplatform.broadcast import claim
from botplatform.kit import core
from botplatform.kit.clock import utcnow
from botplatform.kit.scoping import enter_workspace
from botplatform.models import BroadcastRecipient, Conversation, Event, Message
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.broadcast.helpers import Shop, phones, shop
from tests.conftest import Api, driver_statements, sql_statements
from tests.fakes.webhook_receiver import running_receiver


async def _workspace_rows(runtime: Runtime, ws: str) -> dict[str, Any]:
    workspace_id = uuid.UUID(ws)
    async with runtime.db.unit_of_work(write=False) as db:
        await enter_workspace(db, workspace_id)

        async def rows(statement: Any) -> list[Any]:
            return list((await db.execute(statement)).scalars())

        conversations = await rows(
            select(Conversation).where(Conversation.workspace_id == workspace_id)
        )
        recipients = await rows(
            select(BroadcastRecipient).where(BroadcastRecipient.workspace_id == workspace_id)
        )
        messages = await rows(select(Message).where(Message.workspace_id == workspace_id))
        events = await rows(select(Event.type).where(Event.workspace_id == workspace_id))
    return {
        "conversations": conversations,
        "recipients": recipients,
        "messages": messages,
        "events": Counter(events),
    }


async def _broadcast(s: Shop, count: int) -> dict[str, Any]:
    created = await s.create(phones(count))
    await s.start(created["id"])
    return await s.finished(created["id"])


async def test_a_broadcast_opens_each_new_contacts_conversation_in_one_insert(
    api: Api, wa: FakeGraph, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wa, "auto_status", False)
    s = await shop(api, wa, send_rate_per_second=1_000)
    async with running_receiver() as receiver:
        await api.subscribe(s.owner, s.ws, receiver.url)
        with sql_statements(runtime) as seen, driver_statements(monkeypatch) as sent:
            done = await _broadcast(s, 30)
    assert done["counts"]["sent"] == 30

    rows = await _workspace_rows(runtime, s.ws)
    conversations = rows["conversations"]
    assert len(conversations) == 30
    assert len({(c.contact_id, c.channel_id, c.thread_key) for c in conversations}) == 30
    assert all(c.status == "open" and c.thread_key == "" and c.labels == [] for c in conversations)
    assert all(c.created_at is not None and c.unread_count == 0 for c in conversations)
    by_id = {c.id: c for c in conversations}
    assert all(m.conversation_id in by_id for m in rows["messages"])
    assert rows["events"]["conversation.created"] == 30

    statements = [" ".join(s.split()).lower() for s in [*seen, *sent]]
    inserts = [s for s in statements if s.startswith("insert into conversations")]
    # The claim writes them as one statement that leaves out a conversation made meanwhile
    # (the ORM's flush wrote them without it, and failed the claim on such a conversation).
    assert inserts and all("on conflict" in s for s in inserts), inserts
    assert len(inserts) <= 2, inserts  # one per claim: 30 recipients fit one or two


async def test_a_conversation_the_customer_opened_meanwhile_is_the_one_used(
    api: Api, wa: FakeGraph, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    if runtime.db.dialect != "postgresql":
        pytest.skip("a second writer at the same moment: PostgreSQL (SQLite has one writer)")
    monkeypatch.setattr(wa, "auto_status", False)
    s = await shop(api, wa, send_rate_per_second=1_000)
    opened: list[uuid.UUID] = []
    insert_many = core.insert_many

    async def customer_first(db: Any, model: Any, rows: list[dict[str, Any]], **kw: Any) -> Any:
        """Between the claim's read and its insert, the first contact's conversation is
        made by another transaction (the customer wrote), and committed."""
        if model is Conversation and not opened:
            first = rows[0]
            async with runtime.db.unit_of_work() as other:
                await enter_workspace(other, first["workspace_id"])
                conversation = Conversation(
                    workspace_id=first["workspace_id"],
                    channel_id=first["channel_id"],
                    contact_id=first["contact_id"],
                    thread_key="",
                    status="open",
                    unread_count=1,
                    last_inbound_at=utcnow(),
                )
                other.add(conversation)
                await other.flush()
                opened.append(conversation.id)
        return await insert_many(db, model, rows, **kw)

    monkeypatch.setattr(claim.core, "insert_many", customer_first)
    done = await _broadcast(s, 12)

    assert done["counts"]["sent"] == 12 and opened
    rows = await _workspace_rows(runtime, s.ws)
    assert len(rows["conversations"]) == 12  # none twice
    (theirs,) = [c for c in rows["conversations"] if c.id == opened[0]]
    assert theirs.unread_count == 1  # theirs, as they left it
    assert sum(1 for m in rows["messages"] if m.conversation_id == theirs.id) == 1
