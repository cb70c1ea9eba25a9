"""New customers on the batched path: their contact, identity, conversation and messages are
written together (one round trip on PostgreSQL); the identity's unique key settles the
races that writing them without a lock leaves open."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from botplatform.channels import batch
from botplatform.kit.scoping import enter_workspace
from botplatform.models import Contact, ContactIdentity, Conversation, Message
from botplatform.runtime import Runtime
from botplatform.sandbox.whatsapp import FakeGraph
from tests.channel.test_batch_equivalence import AUTO_REPLY, _run, _settled, _store, _text
from tests.conftest import Api, eventually


async def _counts(runtime: Runtime, workspace: str) -> dict[str, Any]:
    ws = uuid.UUID(workspace)
    async with runtime.db.unit_of_work(write=False) as db:
        await enter_workspace(db, ws)

        async def count(model: Any) -> int:
            query = select(func.count()).select_from(model).where(model.workspace_id == ws)
            return int((await db.execute(query)).scalar_one())

        conversations = (
            await db.execute(select(Conversation).where(Conversation.workspace_id == ws))
        ).scalars()
        return {
            "contacts": await count(Contact),
            "identities": await count(ContactIdentity),
            "unread": sorted(c.unread_count for c in conversations),
            "inbound": await _messages(db, ws, "inbound"),
            "outbound": await _messages(db, ws, "outbound"),
        }


async def _messages(db: Any, ws: uuid.UUID, direction: str) -> int:
    query = select(func.count()).where(Message.workspace_id == ws, Message.direction == direction)
    return int((await db.execute(query)).scalar_one())


async def _two_channels(api: Api, wa: FakeGraph, second_number: str) -> tuple[str, str, str]:
    """A workspace with two WhatsApp channels that auto-reply: its id and theirs."""
    owner = await api.register()
    ws = await api.create_workspace(owner)
    first = await api.create_channel(owner, ws, auto_reply=AUTO_REPLY)
    second = await api.create_channel(
        owner, ws, phone_number_id=second_number, auto_reply=AUTO_REPLY
    )
    wa.connect(second_number, "http://127.0.0.1:9/unused")
    return ws, first["id"], second["id"]


async def test_a_new_number_writing_to_two_channels_in_one_batch_is_one_contact(
    api: Api, runtime: Runtime, wa: FakeGraph
) -> None:
    ws, first, second = await _two_channels(api, wa, "1122334455668")
    now = int(time.time())
    ids = await _store(runtime, ws, first, [_text("15550009", "hi", "Zoe", "wamid.Z1", now)])
    ids += await _store(runtime, ws, second, [_text("15550009", "yo", "Zoe", "wamid.Z2", now)])

    await _run(runtime, "process_inbound_events", ws, ids)
    await eventually(lambda: _settled(runtime, ws))

    counts = await _counts(runtime, ws)
    assert counts == {
        "contacts": 1,
        "identities": 1,
        "unread": [1, 1],  # a conversation on each channel, for the one contact
        "inbound": 2,
        "outbound": 2,
    }


async def test_a_known_customer_s_messages_find_the_conversation_of_their_channel(
    api: Api, runtime: Runtime, wa: FakeGraph
) -> None:
    """A returning customer writes, in one batch, on the channel where their conversation is
    and on one where they have none yet, beside a new number: on PostgreSQL the contact and
    the conversation are looked up together (`batch._known_senders`); each message must
    land in its own channel's conversation, the missing one made once."""
    ws, first, second = await _two_channels(api, wa, "1122334455669")
    now = int(time.time())
    ids = await _store(runtime, ws, first, [_text("15550010", "hi", "Ann", "wamid.K1", now)])
    await _run(runtime, "process_inbound_events", ws, ids)
    await eventually(lambda: _settled(runtime, ws))

    ids = await _store(runtime, ws, first, [_text("15550010", "again", "Ann", "wamid.K2", now + 1)])
    ids += await _store(
        runtime,
        ws,
        second,
        [
            _text("15550010", "here too", "Ann", "wamid.K3", now + 1),
            _text("15550011", "new here", "Bo", "wamid.K4", now + 1),
        ],
    )
    await _run(runtime, "process_inbound_events", ws, ids)
    await eventually(lambda: _settled(runtime, ws))

    counts = await _counts(runtime, ws)
    assert counts == {
        "contacts": 2,
        "identities": 2,
        "unread": [1, 1, 2],  # Ann: 2 on the first channel, 1 on the second; Bo: 1
        "inbound": 4,
        "outbound": 4,
    }
    workspace = uuid.UUID(ws)
    async with runtime.db.unit_of_work(write=False) as db:
        await enter_workspace(db, workspace)
        placed = (
            await db.execute(
                select(Message.provider_message_id, Message.channel_id, Conversation.channel_id)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(Message.workspace_id == workspace, Message.direction == "inbound")
            )
        ).all()
    assert len(placed) == 4
    assert all(message == conversation for _, message, conversation in placed), placed


async def test_a_customer_created_meanwhile_by_another_worker_is_joined_not_doubled(
    api: Api, runtime: Runtime, wa: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch looked for the number before another worker's new contact was committed:
    its own insert of the identity meets the unique key, its rows for that customer are
    taken back, and the message joins the existing contact and conversation."""
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws, auto_reply=AUTO_REPLY)
    hello = _text("15550010", "hi", "Ann", "wamid.R1", int(time.time()) - 5)
    await _run(
        runtime, "process_inbound_events", ws, await _store(runtime, ws, channel["id"], [hello])
    )
    await eventually(lambda: _settled(runtime, ws))

    looked_up = batch._find_contacts
    calls: list[int] = []

    async def stale_first_look(db: Any, senders: list[batch.Sender]) -> None:
        calls.append(len(senders))
        if len(calls) > 1:  # the first look saw nothing yet; the second one sees it
            await looked_up(db, senders)

    monkeypatch.setattr(batch, "_find_contacts", stale_first_look)
    again = _text("15550010", "still there?", "Ann", "wamid.R2", int(time.time()))
    await _run(
        runtime, "process_inbound_events", ws, await _store(runtime, ws, channel["id"], [again])
    )
    await eventually(lambda: _settled(runtime, ws))

    assert len(calls) == 2  # the race was met, and the contact read again
    assert await _counts(runtime, ws) == {
        "contacts": 1,
        "identities": 1,
        "unread": [2],
        "inbound": 2,
        "outbound": 2,
    }
