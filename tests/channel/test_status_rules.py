"""The provider's status webhooks move outbound messages forward and never back, whatever
their order and however they are batched (conversation/statuses.py applies a batch's statuses
in memory and writes the moved messages once).

The same messages, in the same states, are made in two workspaces; the same statuses are
applied to one a batch each (one webhook per job: each status in its own transaction, the
rows re-read each time) and to the other as one batch. Both must end as the rules say —
checked message by message — with the same events."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from botplatform.kit.clock import utcnow
from botplatform.kit.scoping import enter_workspace
from botplatform.models import Conversation, Event, Message
from botplatform.runtime import Runtime
from botplatform.sandbox.whatsapp import FakeGraph
from tests.channel.test_batch_equivalence import _run, _store, _world
from tests.conftest import Api, eventually
from tests.fakes.webhook_receiver import running_receiver

WA_ID = "15550009"
NUMBER = "1122334455667"

#: Each message of the test: its starting state (status, provider id or None, error code).
START = {
    "ladder": ("sent", "wamid.ladder", None),  # sent → delivered → read
    "late": ("read", "wamid.late", None),  # read, then a late delivered: stays read
    "fails": ("delivered", "wamid.fails", None),  # delivered, then failed with an error
    "read_fail": ("read", "wamid.read-fail", None),  # a failure after read: ignored
    "unknown": ("failed", "wamid.unknown", "delivery_unknown"),  # the provider says it left
    "refused": ("failed", "wamid.refused", "131026"),  # a real failure stays one
    "unanswered": ("sending", None, None),  # named by our id first, then by the provider's
    # Refused without a provider id, then named by our id: stays failed, keeps the id learnt.
    "refused_unnamed": ("failed", None, "131026"),
    "queued": ("queued", "wamid.queued", None),  # read straight away: every time is set
}


def _status_body(
    provider_id: str,
    status: str,
    *,
    ours: uuid.UUID | None = None,
    error: bool = False,
    ago: int = 0,
) -> bytes:
    entry: dict[str, Any] = {
        "id": provider_id,
        "status": status,
        "timestamp": str(int(time.time()) - ago),
        "recipient_id": WA_ID,
    }
    if ours is not None:
        entry["biz_opaque_callback_data"] = str(ours)
    if error:
        entry["errors"] = [{"code": 131047, "title": "Re-engagement message"}]
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": NUMBER},
        "statuses": [entry],
    }
    change = {"value": value, "field": "messages"}
    payload = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [change]}]}
    return json.dumps(payload).encode()


async def _messages(runtime: Runtime, ws: str, channel_id: str) -> dict[str, uuid.UUID]:
    """The messages of `START` in the customer's conversation (and an inbound one, which a
    status naming it leaves alone); their ids by name."""
    workspace_id = uuid.UUID(ws)

    async def conversation() -> Any:
        async with runtime.db.unit_of_work(write=False) as db:
            await enter_workspace(db, workspace_id)
            query = select(Conversation.id).where(Conversation.workspace_id == workspace_id)
            return (await db.execute(query)).scalars().first()

    conversation_id = await eventually(conversation)
    ids: dict[str, uuid.UUID] = {}
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, workspace_id)
        earlier = utcnow() - timedelta(minutes=5)
        rows = {**START, "inbound": ("received", "wamid.inbound", None)}
        for name, (status, provider_id, code) in rows.items():
            message = Message(
                id=uuid.uuid4(),
                workspace_id=workspace_id,
                conversation_id=conversation_id,
                channel_id=uuid.UUID(channel_id),
                direction="inbound" if name == "inbound" else "outbound",
                type="text",
                text=name,
                content={},
                provider_message_id=provider_id,
                status=status,
                error_code=code,
                error_title="Delivery unknown" if code else None,
                attempts=1,
                sent_at=earlier if status in ("sent", "delivered", "read") else None,
                delivered_at=earlier if status in ("delivered", "read") else None,
                read_at=earlier if status == "read" else None,
                send_attempted_at=earlier if status == "sending" else None,
                lease_until=utcnow() + timedelta(minutes=1) if status == "sending" else None,
                created_at=earlier,
            )
            db.add(message)
            ids[name] = message.id
    return ids


def _webhooks(ids: dict[str, uuid.UUID]) -> list[bytes]:
    """The statuses, in the order they come."""
    return [
        _status_body("wamid.ladder", "sent"),
        _status_body("wamid.ladder", "delivered"),
        _status_body("wamid.late", "delivered"),
        _status_body("wamid.fails", "failed", error=True),
        _status_body("wamid.read-fail", "failed", error=True),
        _status_body("wamid.unknown", "delivered"),
        _status_body("wamid.refused", "delivered"),
        # The send's answer never reached us: its first status names it by our id.
        _status_body("wamid.answered-late", "sent", ours=ids["unanswered"]),
        _status_body("wamid.refused-late", "delivered", ours=ids["refused_unnamed"]),
        _status_body("wamid.inbound", "read"),  # not ours to move
        _status_body("wamid.nobody", "delivered"),  # names no message: nothing happens
        _status_body("wamid.ladder", "read"),
        _status_body("wamid.answered-late", "delivered"),  # its provider id, learnt just now
        _status_body("wamid.ladder", "delivered", ago=1),  # late: read stays read
        _status_body("wamid.queued", "read"),
    ]


async def _state(runtime: Runtime, ws: str) -> tuple[dict[str, Any], Counter[str]]:
    """Each message by its text: (status, provider id, error code, which times are set,
    marker, lease); and the workspace's status events by type."""
    async with runtime.db.unit_of_work(write=False) as db:
        await enter_workspace(db, uuid.UUID(ws))
        query = select(Message).where(Message.workspace_id == uuid.UUID(ws))
        messages = (await db.execute(query)).scalars()
        state = {
            m.text: (
                m.status,
                m.provider_message_id,
                m.error_code,
                "".join(
                    flag
                    for flag, at in (("s", m.sent_at), ("d", m.delivered_at), ("r", m.read_at))
                    if at is not None
                ),
                m.send_attempted_at is not None,
                m.lease_until is not None,
            )
            for m in messages
            if m.text in START or m.text == "inbound"
        }
        events = select(Event.type).where(
            Event.workspace_id == uuid.UUID(ws),
            Event.type.in_(("message.status_updated", "message.failed")),
        )
        types = Counter((await db.execute(events)).scalars())
        return state, types


EXPECTED = {
    "ladder": ("read", "wamid.ladder", None, "sdr", False, False),
    "late": ("read", "wamid.late", None, "sdr", False, False),
    "fails": ("failed", "wamid.fails", "131047", "sd", False, False),
    "read_fail": ("read", "wamid.read-fail", None, "sdr", False, False),
    "unknown": ("delivered", "wamid.unknown", None, "sd", False, False),
    "refused": ("failed", "wamid.refused", "131026", "", False, False),
    "unanswered": ("delivered", "wamid.answered-late", None, "sd", False, False),
    "refused_unnamed": ("failed", "wamid.refused-late", "131026", "", False, False),
    "queued": ("read", "wamid.queued", None, "sdr", False, False),
    "inbound": ("received", "wamid.inbound", None, "", False, False),
}


async def test_statuses_in_one_batch_end_as_one_at_a_time_and_as_the_rules_say(
    api: Api, runtime: Runtime, wa: FakeGraph
) -> None:
    owner = await api.register()
    async with running_receiver() as receiver:  # an endpoint takes every event
        one_by_one = await _world(api, owner, "One by one", NUMBER, receiver.url)
        batched = await _world(api, owner, "Batched", "9988776655443", receiver.url)
        results = []
        for (ws, channel_id), together in ((one_by_one, False), (batched, True)):
            await api.inbound_text(channel_id, WA_ID, "hello", name="Dana")
            ids = await _messages(runtime, ws, channel_id)
            _, before = await _state(runtime, ws)
            event_ids = await _store(runtime, ws, channel_id, _webhooks(ids))
            if together:
                await _run(runtime, "process_inbound_events", ws, event_ids)
            else:
                for event_id in event_ids:
                    await _run(runtime, "process_inbound_events", ws, [event_id])
            state, after = await _state(runtime, ws)
            results.append((state, after - before))

    (alone, alone_events), (batch, batch_events) = results
    assert alone == EXPECTED, alone
    assert batch == EXPECTED, batch
    # One event per status that moved a message: ladder twice (it was sent already), fails,
    # unknown, unanswered twice, queued.
    assert alone_events == Counter({"message.status_updated": 6, "message.failed": 1})
    assert batch_events == alone_events
