"""A bot's conversation is locked at its first read: where a live bot serves the channel,
`record_inbound` reads the conversation `FOR UPDATE` (PostgreSQL), with its bot session, and
remembers both for the transaction, so the bot's `lock_conversation` and `session_for` take no
second query. SQLite has no row locks and keeps its reads as they were."""

from __future__ import annotations

import uuid

import httpx

from botplatform.bot import repository as bot_repository
from botplatform.conversation import repository as conversations
from botplatform.kit.scoping import enter_workspace, scoped
from botplatform.models import Conversation
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.bot.helpers import MENU, create_bot, publish
from tests.conftest import Api, eventually, sql_statements

WA_ID = "15558880002"


def _postgres(runtime: Runtime) -> bool:
    return runtime.db.engine.dialect.name == "postgresql"


async def test_a_live_bot_s_message_reads_its_conversation_once_locked(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    await publish(api, owner, ws, (await create_bot(api, owner, ws, MENU))["id"])
    await api.inbound_text(channel["id"], WA_ID, "menu", name="Dana")  # warms the caches
    await eventually(lambda: wa.sent)

    with sql_statements(runtime) as seen:
        await api.inbound_text(channel["id"], WA_ID, "menu", name="Dana")
        await eventually(lambda: len(wa.sent) >= 2)
    reads = [s for s in seen if s.startswith("select") and "from conversations" in s]
    by_id = [s for s in reads if "and conversations.id =" in s]  # lock_conversation's
    if _postgres(runtime):
        locked = [s for s in reads if "for update" in s]
        assert len(locked) == 1 and "thread_key" in locked[0], locked
        assert not [s for s in by_id if "for update" in s], by_id
    else:  # SQLite: no row locks, both reads as before
        assert len(reads) >= 2 and by_id, reads
    # The bot session came with the locked read (PostgreSQL), the contact with its identity.
    session_reads = [s for s in seen if s.startswith("select") and "from bot_sessions" in s]
    assert (session_reads == []) == _postgres(runtime), session_reads
    contact_reads = [s for s in seen if s.startswith("select") and "contacts" in s]
    assert len(contact_reads) == 1 and "join contacts" in contact_reads[0], contact_reads
    # The message and the bot's reply both move the conversation: one UPDATE takes both
    # (SQLite reads the session, and that read flushes the message's move on its own).
    moves = [s for s in seen if s.startswith("update conversations")]
    assert len(moves) == (1 if _postgres(runtime) else 2) and "unread_count" in moves[0], moves


async def test_the_session_read_with_the_lock_is_forgotten_with_the_transaction(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = uuid.UUID(await api.create_workspace(owner))
    channel = await api.create_channel(owner, str(ws))
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    await publish(api, owner, str(ws), (await create_bot(api, owner, str(ws), MENU))["id"])
    await api.inbound_text(channel["id"], WA_ID, "menu", name="Dana")
    await eventually(lambda: wa.sent)
    conversation_id = uuid.UUID((await api.conversation_of(owner, str(ws), "Dana"))["id"])

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
