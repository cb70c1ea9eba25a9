"""A batch of status webhooks (a broadcast brings three per send) costs in proportion to its
size: the webhook endpoints are asked of the process's cache once for the batch's events, not
once per event (each question checks what the transaction changed, so per event it grew with
the batch squared); where nobody can receive the events (no endpoint, no dashboard watching)
no payload is built for them; and the messages the statuses name are read with one prepared
shape whatever the batch's size. What the statuses do to the messages stays the same."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from botplatform.events import payloads
from botplatform.kit.clock import utcnow
from botplatform.kit.scoping import enter_workspace
from botplatform.models import Conversation, Event, Message
from botplatform.runtime import Runtime
from botplatform.sandbox.whatsapp import FakeGraph
from botplatform.webhook import cache as webhook_cache
from tests.channel.test_batch_equivalence import _run, _settled, _status, _store, _world
from tests.conftest import Api, driver_statements, eventually, sql_statements
from tests.fakes.webhook_receiver import running_receiver

WA_ID = "15550007"


async def _sent_messages(runtime: Runtime, ws: str, channel_id: str, count: int) -> list[str]:
    """`count` outbound messages the provider accepted (status `sent`) in the customer's
    conversation; their provider ids."""
    workspace_id = uuid.UUID(ws)

    async def conversation() -> Any:
        async with runtime.db.unit_of_work(write=False) as db:
            await enter_workspace(db, workspace_id)
            return (await db.execute(select(Conversation.id))).scalars().first()

    conversation_id = await eventually(conversation)
    provider_ids = [f"wamid.status-batch-{uuid.uuid4().hex[:12]}" for _ in range(count)]
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, workspace_id)
        for provider_id in provider_ids:
            db.add(
                Message(
                    workspace_id=workspace_id,
                    conversation_id=conversation_id,
                    channel_id=uuid.UUID(channel_id),
                    direction="outbound",
                    type="text",
                    text="Our news",
                    content={},
                    provider_message_id=provider_id,
                    status="sent",
                    attempts=1,
                    sent_at=utcnow(),
                    created_at=utcnow(),
                )
            )
    return provider_ids


async def _statuses(runtime: Runtime, ws: str, provider_ids: list[str]) -> dict[str, int]:
    async with runtime.db.unit_of_work(write=False) as db:
        await enter_workspace(db, uuid.UUID(ws))
        rows = await db.execute(
            select(Message.status, func.count())
            .where(Message.provider_message_id.in_(provider_ids))
            .group_by(Message.status)
        )
        return dict(rows.tuples().all())


async def _apply(runtime: Runtime, ws: str, channel_id: str, bodies: list[bytes]) -> None:
    """The webhooks stored as one group, then applied by one batch job."""
    await _run(runtime, "process_inbound_events", ws, await _store(runtime, ws, channel_id, bodies))


async def _applied(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, ws: str, channel_id: str, bodies: list[bytes]
) -> list[str]:
    """`_apply`, and the SQL it ran (through SQLAlchemy or on asyncpg), on one line each."""
    with sql_statements(runtime) as seen, driver_statements(monkeypatch) as sent:
        await _apply(runtime, ws, channel_id, bodies)
    return [" ".join(s.split()).lower() for s in [*seen, *sent]]


def _counting(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    calls: list[int] = []
    original = getattr(module, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


async def test_a_batch_of_statuses_asks_the_cache_for_its_endpoints_once(
    api: Api, runtime: Runtime, wa: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await api.register()
    async with running_receiver() as receiver:
        ws, channel_id = await _world(api, owner, "Acme", "1122334455667", receiver.url)
        await api.inbound_text(channel_id, WA_ID, "hello", name="Dana")
        provider_ids = await _sent_messages(runtime, ws, channel_id, 30)

        asked = _counting(monkeypatch, webhook_cache, "subscriptions")
        await _apply(
            runtime, ws, channel_id, [_status(p, WA_ID, "delivered") for p in provider_ids]
        )

        assert await _statuses(runtime, ws, provider_ids) == {"delivered": 30}
        # The endpoint takes every event: each status still makes its event.
        assert await _event_count(runtime, ws) == 30
        # A few times for the batch (whether anyone receives, the events), whatever its size:
        # it was once per event (32 here).
        assert len(asked) <= 4, len(asked)


async def _event_count(runtime: Runtime, ws: str) -> int:
    """The workspace's `message.status_updated` event rows."""
    async with runtime.db.unit_of_work(write=False) as db:
        await enter_workspace(db, uuid.UUID(ws))
        count = await db.scalar(
            select(func.count()).select_from(Event).where(Event.type == "message.status_updated")
        )
        return int(count or 0)


async def test_statuses_nobody_can_receive_build_no_event_payload(
    api: Api, runtime: Runtime, wa: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await api.register()
    ws, channel_id = await _world(api, owner, "Acme", "1122334455667")  # no endpoint
    await api.inbound_text(channel_id, WA_ID, "hello", name="Dana")
    provider_ids = await _sent_messages(runtime, ws, channel_id, 12)
    assert not await runtime.live.watched(uuid.UUID(ws))  # and no dashboard watching

    built = _counting(monkeypatch, payloads, "message_event")
    await _apply(runtime, ws, channel_id, [_status(p, WA_ID, "read") for p in provider_ids])

    assert await _statuses(runtime, ws, provider_ids) == {"read": 12}
    assert built == []
    assert await _event_count(runtime, ws) == 0


async def test_the_messages_statuses_name_are_read_in_one_shape_whatever_their_number(
    api: Api, runtime: Runtime, wa: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await api.register()
    ws, channel_id = await _world(api, owner, "Acme", "1122334455667")
    await api.inbound_text(channel_id, WA_ID, "hello", name="Dana")
    provider_ids = await _sent_messages(runtime, ws, channel_id, 9)

    reads: list[str] = []
    for chunk in (provider_ids[:2], provider_ids[2:]):
        bodies = [_status(p, WA_ID, "delivered") for p in chunk]
        statements = await _applied(runtime, monkeypatch, ws, channel_id, bodies)
        reads += [s for s in statements if s.startswith("select") and "from messages" in s]

    assert await _statuses(runtime, ws, provider_ids) == {"delivered": 9}
    locking = [s for s in reads if "provider_message_id" in s and "for update" in s]
    if runtime.db.dialect == "postgresql":
        # Two batches of 2 and 7 statuses: the same statement (one prepared shape), the
        # lists as array parameters.
        assert len(locking) == 2 and locking[0] == locking[1], locking
        assert "= any" in locking[0], locking[0]
    else:  # SQLite: no row locks; the lists are expanded, as any IN list there
        assert not locking


async def test_a_batch_writes_the_messages_its_statuses_move_in_one_statement(
    api: Api, runtime: Runtime, wa: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await api.register()
    ws, channel_id = await _world(api, owner, "Acme", "1122334455667")
    await api.inbound_text(channel_id, WA_ID, "hello", name="Dana")
    provider_ids = await _sent_messages(runtime, ws, channel_id, 24)
    await eventually(lambda: _settled(runtime, ws))  # the auto-reply's outcome written
    moves = ("delivered", "read", "failed")  # each changes other columns

    writes: list[list[str]] = []
    for chunk in (provider_ids[:3], provider_ids[3:]):
        bodies = [_status(p, WA_ID, moves[n % 3]) for n, p in enumerate(chunk)]
        statements = await _applied(runtime, monkeypatch, ws, channel_id, bodies)
        writes.append([s for s in statements if s.startswith("update messages")])

    assert await _statuses(runtime, ws, provider_ids) == {"delivered": 8, "read": 8, "failed": 8}
    # One UPDATE for the batch, of 3 messages or of 21, whatever each status changed (through
    # the ORM: one per message, or per set of changed columns).
    assert [len(batch) for batch in writes] == [1, 1], writes
    if runtime.db.dialect == "postgresql":  # and one prepared shape
        assert writes[0] == writes[1]
