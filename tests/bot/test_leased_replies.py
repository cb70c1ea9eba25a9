"""A bot's answer to a customer who wrote in an inbound batch is inserted already leased to
that batch and sent by it right after its commit: no send job claims, reads, marks and
finishes it in transactions of its own (channels/delivery.py, `Leases`)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from botplatform.kit import core
from botplatform.kit.scoping import enter_workspace
from botplatform.message import service as message_service
from botplatform.message.service import SEND_JOB
from botplatform.models import Message
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.bot.flows import one_node
from tests.bot.helpers import create_bot, publish
from tests.channel.test_batch_equivalence import _run, _store, _text
from tests.conftest import Api


async def _outbound(runtime: Runtime, ws: str) -> list[Any]:
    async with runtime.db.unit_of_work(write=False) as db:
        await enter_workspace(db, uuid.UUID(ws))
        rows = await db.execute(
            select(Message).where(
                Message.workspace_id == uuid.UUID(ws), Message.direction == "outbound"
            )
        )
        return list(rows.scalars())


async def test_a_bots_reply_is_sent_by_the_batch_that_decided_it(
    api: Api, runtime: Runtime, wa: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued: list[tuple[Any, ...]] = []
    enqueue = message_service.enqueue

    def recorded(db: Any, name: str, *args: Any, **options: Any) -> None:
        queued.append((name, *args))
        enqueue(db, name, *args, **options)

    monkeypatch.setattr(message_service, "enqueue", recorded)
    owner = await api.register()
    ws = await api.create_workspace(owner, "Leased")
    channel = await api.create_channel(owner, ws)
    flow = one_node({"id": "hello", "type": "send_text", "text": "Hello there"})
    bot = await create_bot(api, owner, ws, flow)
    await publish(api, owner, ws, bot["id"])
    before = len(wa.sent)

    (event,) = await _store(
        runtime, ws, channel["id"], [_text("15550031", "hi", "Eve", "wamid.B1")]
    )
    await _run(runtime, "process_inbound_event", ws, event)

    # Sent by the batch itself before its job returned, with no send job queued for it.
    assert [sent["body"]["text"]["body"] for sent in wa.sent[before:]] == ["Hello there"]
    assert not [job for job in queued if job[0] == SEND_JOB]
    [reply] = await _outbound(runtime, ws)
    assert reply.attempts == 1  # claimed once, by the batch's commit
    # Which bot answered is written with the row, also on the run's first message.
    assert reply.content["bot"] == {"bot_id": bot["id"]}


async def test_a_batch_of_customers_on_a_bots_channel_is_written_in_bulk(
    api: Api, runtime: Runtime, wa: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five customers' messages in one batch on a channel a live bot serves: their messages,
    their bot sessions and the bot's five replies are each one INSERT for the batch, the turns'
    changes to the sessions and conversations one UPDATE each (before, every message went the
    per-item path: its own INSERT, its session's, its reply's, and an ORM UPDATE per row),
    and every customer is answered once."""
    owner = await api.register()
    ws = await api.create_workspace(owner, "Bulk bot")
    channel = await api.create_channel(owner, ws)
    flow = one_node({"id": "hello", "type": "send_text", "text": "Hello there"})
    await publish(api, owner, ws, (await create_bot(api, owner, ws, flow))["id"])
    written: list[tuple[str, int]] = []
    insert_many = core.insert_many
    inserting = core.inserting

    async def counted(db: Any, model: Any, rows: list[dict[str, Any]], **kw: Any) -> Any:
        written.append((model.__tablename__, len(rows)))
        return await insert_many(db, model, rows, **kw)

    def counted_write(db: Any, model: Any, rows: list[dict[str, Any]], **kw: Any) -> Any:
        written.append((model.__tablename__, len(rows)))
        return inserting(db, model, rows, **kw)

    updated: list[tuple[str, int]] = []
    updating = core.updating

    def counted_update(db: Any, model: Any, rows: list[dict[str, Any]]) -> Any:
        updated.append((model.__tablename__, len(rows)))
        return updating(db, model, rows)

    monkeypatch.setattr(core, "insert_many", counted)
    monkeypatch.setattr(core, "inserting", counted_write)
    monkeypatch.setattr(core, "updating", counted_update)
    before = len(wa.sent)
    customers = [f"1555004{n}" for n in range(5)]
    bodies = [_text(wa_id, "hi", f"C{wa_id}", f"wamid.BULK{wa_id}") for wa_id in customers]
    events = await _store(runtime, ws, channel["id"], bodies)
    await _run(runtime, "process_inbound_events", ws, events)

    answered = sorted(sent["to"] for sent in wa.sent[before:])
    assert answered == customers
    assert [sent["body"]["text"]["body"] for sent in wa.sent[before:]] == ["Hello there"] * 5
    replies = await _outbound(runtime, ws)
    assert len(replies) == 5 and {reply.attempts for reply in replies} == {1}
    assert ("bot_sessions", 5) in written, written
    assert not [rows for table, rows in written if table == "bot_sessions" and rows != 5]
    messages = [rows for table, rows in written if table == "messages"]
    assert messages == [5, 5], written  # the customers' messages, then the bot's replies
    # What the turns changed, one UPDATE per table for the batch, not one per row (SQLite:
    # each turn reads its conversation again, which flushes the turns before it).
    if runtime.db.engine.dialect.name == "postgresql":
        assert sorted(updated) == [("bot_sessions", 5), ("conversations", 5)], updated
