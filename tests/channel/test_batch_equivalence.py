"""The batched inbound path does exactly what the per-event path did.

The same webhooks — a returning customer, a new one, a provider's redelivery under another
envelope, a STOP followed by a message from the opted-out customer, a status update for an
earlier reply, a malformed body — are stored in two workspaces alike. One workspace gets a
job per event (the per-event path), the other one job for all of them (the batch); then the
rows, events, usage and what reached the provider are compared."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections import Counter
from typing import Any

from sqlalchemy import select

from botplatform.kit.clock import utcnow
from botplatform.kit.scoping import enter_workspace
from botplatform.models import (
    ConsentEvent,
    Contact,
    Conversation,
    Event,
    InboundEvent,
    Message,
    UsageCounter,
)
from botplatform.runtime import Runtime
from botplatform.sandbox.whatsapp import FakeGraph
from botplatform.worker.jobs import REGISTRY, JobContext
from tests.conftest import Api, eventually, whatsapp_text_payload
from tests.fakes.webhook_receiver import running_receiver

AUTO_REPLY = "Thanks, we answer within the hour."


def _text(wa_id: str, text: str, name: str, wamid: str, at: int | None = None) -> bytes:
    payload = whatsapp_text_payload(wa_id, text, name, wamid)
    if at is not None:
        payload["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(at)
    return json.dumps(payload).encode()


def _status(provider_id: str, wa_id: str, status: str) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": "1122334455667"},
        "statuses": [
            {
                "id": provider_id,
                "status": status,
                "timestamp": str(int(time.time())),
                "recipient_id": wa_id,
            }
        ],
    }
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {"id": "1234567890987654321", "changes": [{"value": value, "field": "messages"}]}
            ],
        }
    ).encode()


MALFORMED = b'{"object":"whatsapp_business_account","entry":{"id":"1"}}'


async def _store(
    runtime: Runtime,
    ws: str,
    channel_id: str,
    bodies: list[bytes],
    ids: list[uuid.UUID] | None = None,
) -> list[str]:
    """Stores webhooks as the intake does (one group: one timestamp), without queueing their
    jobs (the test runs them); their ids in that order."""
    stored = []
    now = utcnow()
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, uuid.UUID(ws))
        for n, body in enumerate(bodies):
            event = InboundEvent(
                id=ids[n] if ids else uuid.uuid4(),
                workspace_id=uuid.UUID(ws),
                channel_id=uuid.UUID(channel_id),
                provider="whatsapp",
                dedupe_key=hashlib.sha256(body).hexdigest(),
                body=body.decode(),
                status="pending",
                created_at=now,
                updated_at=now,
            )
            db.add(event)
            stored.append(str(event.id))
    return stored


async def _run(runtime: Runtime, job: str, *args: Any) -> None:
    spec = REGISTRY[job]
    async with runtime.db.unit_of_work() as db:
        ctx = JobContext(runtime=runtime, db=db, message_id="m", attempt=1, max_attempts=11)
        await spec.fn(ctx, *args)


async def _settled(runtime: Runtime, ws: str) -> bool:
    async with runtime.db.unit_of_work(write=False) as db:
        await enter_workspace(db, uuid.UUID(ws))
        busy = await db.execute(
            select(Message.id).where(
                Message.workspace_id == uuid.UUID(ws), Message.status.in_(("queued", "sending"))
            )
        )
        return busy.first() is None


async def _snapshot(runtime: Runtime, ws: str) -> dict[str, Any]:
    """What the workspace holds, without ids and clocks."""
    workspace_id = uuid.UUID(ws)
    async with runtime.db.unit_of_work(write=False) as db:
        await enter_workspace(db, workspace_id)

        async def rows(model: Any) -> list[Any]:
            query = select(model).where(model.workspace_id == workspace_id)
            return list((await db.execute(query)).scalars())

        contacts = {c.id: c for c in await rows(Contact)}
        conversations = {c.id: c for c in await rows(Conversation)}
        messages = await rows(Message)
        usage = await rows(UsageCounter)
        return {
            "contacts": sorted((c.name, c.opted_out) for c in contacts.values()),
            "conversations": sorted(
                (
                    contacts[c.contact_id].name,
                    c.status,
                    c.unread_count,
                    c.last_inbound_at is not None,
                )
                for c in conversations.values()
            ),
            "messages": sorted(
                (
                    contacts[conversations[m.conversation_id].contact_id].name,
                    m.direction,
                    m.type,
                    m.text or "",
                    m.status,
                    (m.idempotency_key or "").split(":")[0],
                    m.error_code or "",
                )
                for m in messages
            ),
            "events": Counter(e.type for e in await rows(Event)),
            "consent": sorted((e.action, e.source) for e in await rows(ConsentEvent)),
            "inbound": sorted((e.status, (e.error or "")[:40]) for e in await rows(InboundEvent)),
            "usage": [(u.messages_inbound, u.messages_outbound) for u in usage],
        }


async def _world(
    api: Api, owner: Any, name: str, number: str, hook: str | None = None
) -> tuple[str, str]:
    """A workspace with a channel and, given `hook`, an endpoint taking every event (an
    event row is written for its deliveries)."""
    ws = await api.create_workspace(owner, name)
    channel = await api.create_channel(owner, ws, phone_number_id=number, auto_reply=AUTO_REPLY)
    if hook is not None:
        await api.subscribe(owner, ws, hook)
    return ws, channel["id"]


async def test_a_mixed_batch_ends_as_the_per_event_path_left_it(
    api: Api, runtime: Runtime, wa: FakeGraph
) -> None:
    owner = await api.register()
    # The second world's number, known to the fake; no status webhooks but the test's own.
    wa.connect("1122334455668", "http://127.0.0.1:9/unused")
    auto_status, wa.auto_status = wa.auto_status, False
    try:
        async with running_receiver() as receiver:
            await _compare(api, runtime, wa, owner, receiver.url)
    finally:
        wa.auto_status = auto_status


async def _compare(api: Api, runtime: Runtime, wa: FakeGraph, owner: Any, hook: str) -> None:
    worlds = {
        "single": await _world(api, owner, "One by one", "1122334455667", hook),
        "batch": await _world(api, owner, "In a batch", "1122334455668", hook),
    }
    provider_ids: dict[str, str] = {}
    for key, (ws, channel_id) in worlds.items():
        # Phase 1, alike: a customer writes, the channel answers.
        hello = _text("15550001", "hi", "Ann", "wamid.A1", int(time.time()) - 5)
        (first,) = await _store(runtime, ws, channel_id, [hello])
        await _run(runtime, "process_inbound_event", ws, first)
        await eventually(lambda ws=ws: _settled(runtime, ws))
        async with runtime.db.unit_of_work(write=False) as db:
            await enter_workspace(db, uuid.UUID(ws))
            reply = (
                await db.execute(
                    select(Message).where(
                        Message.workspace_id == uuid.UUID(ws), Message.direction == "outbound"
                    )
                )
            ).scalar_one()
        assert reply.provider_message_id
        provider_ids[key] = reply.provider_message_id
    now = int(time.time())
    for key, (ws, channel_id) in worlds.items():
        bodies = [
            _text("15550001", "second", "Ann", "wamid.A2", now),
            _text("15550004", "hello", "Dana", "wamid.D1", now),
            _text("15550001", "hi", "Ann", "wamid.A1", now + 1),  # redelivered, new envelope
            _text("15550002", "STOP", "Bob", "wamid.B1", now),
            _text("15550002", "are you there?", "Bob", "wamid.B2", now + 1),
            _status(provider_ids[key], "15550001", "delivered"),
            MALFORMED,
        ]
        ids = await _store(runtime, ws, channel_id, bodies)
        if key == "single":
            for event_id in ids:
                await _run(runtime, "process_inbound_event", ws, event_id)
        else:
            await _run(runtime, "process_inbound_events", ws, ids)
        await eventually(lambda ws=ws: _settled(runtime, ws))

    single = await _snapshot(runtime, worlds["single"][0])
    batch = await _snapshot(runtime, worlds["batch"][0])
    assert batch == single
    # And what that is: Ann and Dana answered (Ann twice over the test), Bob opted out and
    # not answered, the redelivery stored once, the status applied, the malformed one failed.
    replies = [m for m in single["messages"] if m[1] == "outbound"]
    assert sorted((m[0], m[4]) for m in replies) == [
        ("Ann", "delivered"),
        ("Ann", "sent"),
        ("Dana", "sent"),
    ]
    assert ("Bob", True) in single["contacts"]
    assert single["consent"] == [("opt_out", "keyword")]
    assert [status for status, _ in single["inbound"]].count("failed") == 1
    assert single["usage"] == [(5, 3)]
    assert single["events"]["message.received"] == 5
    sent_to = Counter(sent["to"] for sent in wa.sent if sent["type"] == "text")
    assert sent_to == Counter({"15550001": 4, "15550004": 2})


async def test_messages_stored_at_the_same_moment_are_applied_in_the_order_they_arrived(
    api: Api, runtime: Runtime, wa: FakeGraph
) -> None:
    """The intake stores a group of webhooks with one timestamp and random ids: a STOP and
    the message after it, stored together, are applied in the order the job lists them (the
    order they arrived), never by their ids; the opted-out customer gets no answer."""
    owner = await api.register()
    ws, channel_id = await _world(api, owner, "Acme", "1122334455667")
    now = int(time.time())
    stop = _text("15550002", "STOP", "Bob", "wamid.S1", now)
    after = _text("15550002", "are you there?", "Bob", "wamid.S2", now + 1)
    # Ids that sort the other way round, and one timestamp, as one intake group has them.
    ids = await _store(runtime, ws, channel_id, [stop, after], ids=[_LAST_ID, _FIRST_ID])
    await _run(runtime, "process_inbound_events", ws, ids)
    await eventually(lambda: _settled(runtime, ws))
    snapshot = await _snapshot(runtime, ws)
    assert snapshot["contacts"] == [("Bob", True)]
    assert [m for m in snapshot["messages"] if m[1] == "outbound"] == []
    assert [sent for sent in wa.sent if sent["to"] == "15550002"] == []


_FIRST_ID = uuid.UUID("00000000-0000-4000-8000-000000000000")
_LAST_ID = uuid.UUID("ffffffff-ffff-4fff-bfff-ffffffffffff")


async def test_jobs_arriving_together_share_a_batch_per_workspace(
    api: Api, runtime: Runtime, wa: FakeGraph, monkeypatch: Any
) -> None:
    """Jobs of two workspaces reaching the worker at the same moment: each workspace's events
    are processed together, under that workspace only, and every customer is answered once."""
    from botplatform.channels import tasks

    owner = await api.register()
    first = await _world(api, owner, "First", "1122334455667")
    second = await _world(api, owner, "Second", "1122334455668")
    wa.connect("1122334455668", "http://127.0.0.1:9/unused")
    auto_status, wa.auto_status = wa.auto_status, False
    batches: list[tuple[str, int]] = []
    real = tasks._process

    async def counted(ctx: JobContext, workspace_id: str, event_ids: list[str]) -> None:
        batches.append((workspace_id, len(event_ids)))
        await real(ctx, workspace_id, event_ids)

    monkeypatch.setattr(tasks, "_process", counted)
    now = int(time.time())
    try:
        jobs = []
        for ws, channel_id in (first, second, first, second):
            n = len(jobs)
            body = _text(f"1555000{n}", f"hello {n}", f"Customer {n}", f"wamid.J{n}", now)
            (event_id,) = await _store(runtime, ws, channel_id, [body])
            jobs.append(_run(runtime, "process_inbound_events", ws, [event_id]))
        await asyncio.gather(*jobs)
        for ws, _ in (first, second):
            await eventually(lambda ws=ws: _settled(runtime, ws))
    finally:
        wa.auto_status = auto_status
    # Jobs waiting together became one batch per workspace (never two workspaces in one).
    sizes = [size for _, size in batches]
    assert sum(sizes) == 4 and max(sizes) == 2 and len(batches) <= 3
    for ws, _ in (first, second):
        snapshot = await _snapshot(runtime, ws)
        assert len(snapshot["contacts"]) == 2
        assert [m[4] for m in snapshot["messages"] if m[1] == "outbound"] == ["sent", "sent"]
        assert snapshot["usage"] == [(2, 2)]
    assert Counter(sent["to"] for sent in wa.sent) == Counter(
        {"15550000": 1, "15550001": 1, "15550002": 1, "15550003": 1}
    )


async def test_an_event_that_fails_a_batch_is_retried_alone_and_the_rest_go_on(
    api: Api, runtime: Runtime, wa: FakeGraph, monkeypatch: Any
) -> None:
    from botplatform.channels import tasks

    owner = await api.register()
    ws, channel_id = await _world(api, owner, "Acme", "1122334455667")
    real = tasks._apply
    failing = {"once": True}

    async def status_breaks_once(ctx: JobContext, channel: Any, item: object) -> int:
        if type(item).__name__ == "StatusUpdate" and failing.pop("once", False):
            raise RuntimeError("the database refused this row")
        return await real(ctx, channel, item)

    monkeypatch.setattr(tasks, "_apply", status_breaks_once)
    now = int(time.time())
    bodies = [
        _text("15550001", "hi", "Ann", "wamid.F1", now),
        _status("wamid.unknown", "15550001", "delivered"),
        _text("15550002", "hello", "Bob", "wamid.F2", now),
    ]
    ids = await _store(runtime, ws, channel_id, bodies)
    await _run(runtime, "process_inbound_events", ws, ids)  # split up: each queued alone

    async def all_processed() -> bool:
        try:
            snapshot = await _snapshot(runtime, ws)
        except KeyError:  # its reads straddled a commit (each sees its own moment): again
            return False
        return [status for status, _ in snapshot["inbound"]] == ["processed"] * 3

    await eventually(all_processed)
    await eventually(lambda: _settled(runtime, ws))
    snapshot = await _snapshot(runtime, ws)
    assert sorted(m[0] for m in snapshot["messages"] if m[1] == "outbound") == ["Ann", "Bob"]
