"""A bot's conversations are locked once per channel batch: where a live bot serves the
channel, the batch stores the messages in bulk, then reads their conversations `FOR UPDATE`
(PostgreSQL) in one statement, and their bot sessions and contacts in one more, after the lock
(a row joined to a locked read would be given as it was before a wait for the lock), and
remembers them for the transaction, so the bot's `lock_conversation` and `session_for` take no
second query. SQLite has no row locks and keeps its reads as they were."""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx
import pytest

from botplatform.bot import repository as bot_repository
from botplatform.conversation import repository as conversations
from botplatform.kit.clock import utcnow
from botplatform.kit.scoping import enter_workspace, scoped
from botplatform.models import Conversation
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.bot.helpers import MENU, create_bot, publish
from tests.conftest import Api, driver_statements, eventually, sql_statements

WA_ID = "15558880002"


def _postgres(runtime: Runtime) -> bool:
    return runtime.db.engine.dialect.name == "postgresql"


async def test_a_live_bot_s_message_reads_its_conversation_once_locked(
    client: httpx.AsyncClient,
    api: Api,
    wa: FakeGraph,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    await publish(api, owner, ws, (await create_bot(api, owner, ws, MENU))["id"])
    await api.inbound_text(channel["id"], WA_ID, "menu", name="Dana")  # warms the caches
    await eventually(lambda: wa.sent)

    with sql_statements(runtime) as seen, driver_statements(monkeypatch) as sent:
        await api.inbound_text(channel["id"], WA_ID, "menu", name="Dana")
        await eventually(lambda: len(wa.sent) >= 2)
    reads = [s for s in seen if s.startswith("select") and "from conversations" in s]
    # lock_conversation's (the batch's lock takes a list: `= any`)
    by_id = [s for s in reads if "and conversations.id =" in s and "= any" not in s]
    if _postgres(runtime):
        locked = [s for s in reads if "for update" in s]
        assert len(locked) == 1 and "conversations.id = any" in locked[0], locked
        assert not by_id, by_id
    else:  # SQLite: no row locks, the bot's read as before
        assert by_id, reads
    # The contact and the bot session are read once each, after the lock, by key (no plain
    # join, whose plan depends on the tables' statistics); on PostgreSQL both in one
    # statement, and the bot's step reads its session from there; on SQLite one table each,
    # and the step reads the session again.
    session_reads = [s for s in seen if s.startswith("select") and "from bot_sessions" in s]
    contact_reads = [s for s in seen if s.startswith("select") and "from contacts" in s]
    assert len(contact_reads) == 1, contact_reads
    # Joined only laterally, a lookup by key per conversation (`batch._talking`).
    assert set(re.findall(r" join (\w+)", contact_reads[0])) <= {"lateral"}, contact_reads
    assert len(session_reads) == (1 if _postgres(runtime) else 2), session_reads
    if _postgres(runtime):  # one round trip for both
        assert session_reads == contact_reads, session_reads
    # The message and the bot's reply both move the conversation, and the bot its session:
    # on PostgreSQL written with the batch's statements on asyncpg (`batch._turn_writes`),
    # not by the ORM (SQLite reads the conversation again, and that read flushes the
    # message's move on its own).
    moves = [s for s in seen if s.startswith("update conversations")]
    steps = [s for s in seen if s.startswith("update bot_sessions")]
    if _postgres(runtime):
        assert moves == [] and steps == [], moves + steps
        # ... and in the batch's last round trip, with the events marked processed.
        turns = [s for s in sent if "UPDATE bot_sessions" in s]
        assert len(turns) == 1 and "UPDATE inbound_events" in turns[0], turns
        assert "UPDATE conversations" in turns[0], turns
        # A known customer's contact and conversation: one statement (`batch._known_senders`).
        finding = [s for s in sent if "FROM contact_identities" in s]
        assert len(finding) == 1 and "FROM conversations" in finding[0], finding
        assert not [s for s in sent if s.startswith("SELECT conversations.")], sent
    else:
        assert len(moves) == 2 and "unread_count" in moves[0] and len(steps) == 1, moves


async def test_a_handoff_committed_while_a_message_waits_for_the_lock_is_honoured(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    """An agent takes the conversation over (the bot session handed off) in a transaction
    that holds the conversation's lock while the customer's next message is processed: the
    bot's turn waits for the lock, then must see the handoff and stay quiet. Read with the
    lock in one joined statement, the session came as it was before the wait: the bot
    answered a conversation a person had taken."""
    if not _postgres(runtime):
        return  # SQLite has one writer: the batch cannot run beside the open transaction
    ws, channel_id, conversation_id = await _talking_to_a_bot(api, wa)
    answered = len(wa.sent)
    statement = scoped(Conversation, ws).where(Conversation.id == conversation_id)

    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        await db.execute(statement.with_for_update())
        await api.inbound_text(channel_id, WA_ID, "menu", name="Dana")
        await asyncio.sleep(1.0)  # the batch has read the session's old row by now, or waits
        session = await bot_repository.session_for(db, ws, conversation_id)
        assert session is not None and session.status != "handoff"
        session.status, session.handoff_at = "handoff", utcnow()
        await db.commit()

    await eventually(lambda: _stored_inbound(runtime, ws, conversation_id, 2))
    await asyncio.sleep(1.0)  # a reply, if one was decided, has left by now
    assert len(wa.sent) == answered, wa.sent[answered:]


async def _talking_to_a_bot(api: Api, wa: FakeGraph) -> tuple[uuid.UUID, str, uuid.UUID]:
    """A workspace whose channel a live bot serves, and a customer it has answered: the
    workspace, the channel and their conversation."""
    owner = await api.register()
    ws = uuid.UUID(await api.create_workspace(owner))
    channel = await api.create_channel(owner, str(ws))
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    await publish(api, owner, str(ws), (await create_bot(api, owner, str(ws), MENU))["id"])
    await api.inbound_text(channel["id"], WA_ID, "menu", name="Dana")
    await eventually(lambda: wa.sent)
    conversation_id = uuid.UUID((await api.conversation_of(owner, str(ws), "Dana"))["id"])
    return ws, channel["id"], conversation_id


async def _stored_inbound(
    runtime: Runtime, ws: uuid.UUID, conversation_id: uuid.UUID, n: int
) -> bool:
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        return await bot_repository.inbound_count(db, ws, conversation_id, limit=n) >= n


async def test_the_session_read_with_the_lock_is_forgotten_with_the_transaction(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    ws, _, conversation_id = await _talking_to_a_bot(api, wa)

    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        session = await bot_repository.session_for(db, ws, conversation_id)
        assert session is not None
        conversations.remember_locked(db, conversation_id, session)
        with sql_statements(runtime) as seen:
            assert await bot_repository.session_for(db, ws, conversation_id) is session
        assert (seen == []) == _postgres(runtime), seen  # SQLite asks as before
        assert await bot_repository.session_for(db, uuid.uuid4(), conversation_id) is None

        await db.commit()  # the lock is gone, and what was read with it
        assert conversations.bot_session_locked(db, conversation_id) is None
        await enter_workspace(db, ws)
        with sql_statements(runtime) as seen:
            assert await bot_repository.session_for(db, ws, conversation_id) is not None
        assert [s for s in seen if "from bot_sessions" in s], seen


async def test_lock_conversation_asks_nothing_while_the_transaction_holds_the_lock(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = uuid.UUID(await api.create_workspace(owner))
    channel = await api.create_channel(owner, str(ws))
    await api.inbound_text(channel["id"], WA_ID, "hello", name="Dana")
    conversation = await api.conversation_of(owner, str(ws), "Dana")
    conversation_id = uuid.UUID(conversation["id"])
    statement = scoped(Conversation, ws).where(Conversation.id == conversation_id)

    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        held = (await db.execute(statement.with_for_update())).scalar_one()
        conversations.remember_locked(db, conversation_id)
        assert conversations.locked_here(db, conversation_id) == _postgres(runtime)
        with sql_statements(runtime) as seen:
            again = await bot_repository.lock_conversation(db, ws, conversation_id)
        assert again is held
        assert (seen == []) == _postgres(runtime), seen  # SQLite asks as before
        assert await bot_repository.lock_conversation(db, uuid.uuid4(), conversation_id) is None

        async with db.begin_nested() as savepoint:  # a lock of a savepoint rolled back…
            other = uuid.uuid4()
            conversations.remember_locked(db, other)
            assert conversations.locked_here(db, other) == _postgres(runtime)
            await savepoint.rollback()
        assert not conversations.locked_here(db, other)  # …is gone with it
        assert conversations.locked_here(db, conversation_id) == _postgres(runtime)

        await db.commit()  # a commit ends every lock
        assert not conversations.locked_here(db, conversation_id)
        await enter_workspace(db, ws)
        with sql_statements(runtime) as seen:
            assert await bot_repository.lock_conversation(db, ws, conversation_id) is not None
        assert [s for s in seen if "from conversations" in s], seen
