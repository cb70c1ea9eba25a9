"""A broadcast sends in batches, on both backends: a chunk's messages are marked in one
transaction and its outcomes written back together (one statement per kind of outcome), not
one by one; a chunk mixing accepted and refused sends ends each recipient where it belongs;
the template is rendered once per distinct set of values."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from botplatform.broadcast import sending
from botplatform.broadcast.personalise import Renderer
from botplatform.channels import policy
from botplatform.kit import core
from botplatform.models import BroadcastRecipient, Message
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.broadcast.helpers import TEMPLATE, per_recipient, phones, shop
from tests.conftest import Api, driver_statements, eventually, sql_statements


async def _rows(
    runtime: Runtime, broadcast_id: str
) -> tuple[list[Message], list[BroadcastRecipient]]:
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        recipients = list(
            (
                await db.execute(
                    select(BroadcastRecipient).where(
                        BroadcastRecipient.broadcast_id == uuid.UUID(broadcast_id)
                    )
                )
            ).scalars()
        )
        ids = [r.message_id for r in recipients if r.message_id is not None]
        messages = list((await db.execute(select(Message).where(Message.id.in_(ids)))).scalars())
    return messages, recipients


async def test_a_chunk_is_marked_once_and_its_outcomes_written_together(
    api: Api, wa: FakeGraph, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wa, "auto_status", False)  # the rows as the driver left them
    s = await shop(api, wa, send_rate_per_second=1_000)  # chunks up to a quarter second, 250
    created = await s.create(phones(40))
    with driver_statements(monkeypatch) as sent:
        await s.start(created["id"])
        done = await s.finished(created["id"])
    assert done["counts"]["sent"] == 40
    if runtime.db.dialect == "postgresql":
        # A chunk's rows and the recipients pointing at them, and then its accepted
        # outcomes, each one statement of two parts (`core.together`): a part that misses
        # `kit.core`'s fast path would send them one round trip each, through SQLAlchemy.
        for part in ("SET message_id=marked.mids", "provider_message_id=accepted.pids"):
            found = [sql for sql in sent if part in sql]
            assert found and all(sql.startswith("WITH w0 AS") for sql in found), sent
    assert per_recipient(wa) == Counter({p.lstrip("+"): 1 for p in phones(40)})
    messages, recipients = await _rows(runtime, created["id"])
    assert len(messages) == 40
    # Marked a chunk per transaction (the first of 16, the next as large as the pace allows)
    # — one at a time, or 8 per commit, would make many more …
    marks = Counter(m.created_at for m in messages)
    assert len(marks) <= 3 and max(marks.values()) >= 16, marks
    # … and the outcomes written back a chunk at a time.
    writes = Counter(r.sent_at for r in recipients)
    assert len(writes) <= 3 and max(writes.values()) >= 16, writes
    assert all(m.status == "sent" and m.provider_message_id for m in messages)
    assert all(m.send_attempted_at is None and m.lease_until is None for m in messages)
    assert {r.status for r in recipients} == {"sent"}


async def test_a_chunk_of_accepted_and_refused_sends_ends_each_where_it_belongs(
    api: Api, wa: FakeGraph, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wa, "auto_status", False)
    s = await shop(api, wa, send_rate_per_second=1_000)
    wa.fail_next(400, 131026, title="Message undeliverable", times=3)  # final refusals
    created = await s.create(phones(20))
    await s.start(created["id"])
    done = await s.finished(created["id"])
    assert done["counts"]["sent"] == 17
    assert done["counts"]["failed"] == 3
    messages, recipients = await _rows(runtime, created["id"])
    by_status = Counter(m.status for m in messages)
    assert by_status == Counter({"sent": 17, "failed": 3})
    failed = [r for r in recipients if r.status == "failed"]
    assert {r.error_code for r in failed} == {"131026"}
    sent_messages = {m.id for m in messages if m.status == "sent"}
    assert {r.message_id for r in recipients if r.status == "sent"} == sent_messages
    assert all(m.provider_message_id for m in messages if m.status == "sent")
    # Each send left once: nobody refused was tried again.
    assert sum(per_recipient(wa).values()) == 17


def test_the_renderer_renders_each_distinct_value_set_once() -> None:
    renderer = Renderer(TEMPLATE)
    first, request = renderer("Ada", {})
    again, _ = renderer("Ada", {"unrelated": "x"})
    other, _ = renderer("Grace", {})
    assert again is first  # the same values: not rendered (nor validated) again
    assert other is not first
    assert request["template"]["components"][0]["parameters"][0]["text"] == "Ada"
    assert TEMPLATE["template"]["components"][0]["parameters"][0]["text"] == "{{first}}"


async def test_a_chunk_cut_short_by_a_lost_rate_limiter_records_what_left_and_requeues_the_rest(
    api: Api, wa: FakeGraph, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis goes away after the chunk's first group left: those requests are waited for and
    recorded (not left to `delivery_unknown`), the rest, provably never sent, are queued
    again, and the broadcast's next driver sends them — each recipient exactly once."""
    monkeypatch.setattr(wa, "auto_status", False)
    calls = 0
    take = policy.take_send_slots_upto

    async def failing_once(*args: Any, **kwargs: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("Redis is gone")
        return await take(*args, **kwargs)

    monkeypatch.setattr(policy, "take_send_slots_upto", failing_once)
    s = await shop(api, wa, send_rate_per_second=1_000)
    created = await s.create(phones(40))
    await s.start(created["id"])
    done = await s.finished(created["id"], timeout=60)
    assert calls > 2  # it did fail once, mid-chunk
    assert done["counts"]["sent"] == 40
    assert per_recipient(wa) == Counter({p.lstrip("+"): 1 for p in phones(40)})
    messages, recipients = await _rows(runtime, created["id"])
    assert {m.status for m in messages} == {"sent"}  # the dropped rows are gone
    assert {r.status for r in recipients} == {"sent"}
    # The first chunk (16, one group) left before the failure; of the next, none had left.
    requeued = [r for r in recipients if r.attempts == 2]
    assert 1 <= len(requeued) <= 40 - sending.SLOT_GROUP


async def test_a_webhook_of_many_statuses_moves_them_in_a_few_statements(
    api: Api, wa: FakeGraph, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broadcast brings three status webhooks per send: a batch of them reads its messages
    (and their conversations) in one query, moves the messages in one flush and the
    recipients in one statement — not a query, an UPDATE and another UPDATE per status."""
    monkeypatch.setattr(wa, "auto_status", False)
    s = await shop(api, wa, send_rate_per_second=1_000)
    created = await s.create(phones(30))
    await s.start(created["id"])
    await s.finished(created["id"])
    messages, _ = await _rows(runtime, created["id"])
    now = str(int(time.time()))
    statuses = [
        {"id": m.provider_message_id, "status": "delivered", "timestamp": now, "recipient_id": "1"}
        for m in messages
    ]

    async def all_delivered() -> bool:
        _, recipients = await _rows(runtime, created["id"])
        return {r.status for r in recipients} == {"delivered"}

    with sql_statements(runtime) as seen:
        await wa.deliver({"statuses": statuses})  # one webhook: one batch
        await eventually(all_delivered)
    messages, _ = await _rows(runtime, created["id"])
    assert all(m.status == "delivered" and m.delivered_at is not None for m in messages)
    reads = [q for q in seen if q.startswith("select") and "messages.provider_message_id " in q]
    updates = [q for q in seen if q.startswith("update messages")]
    followed = [q for q in seen if q.startswith("update broadcast_recipients")]
    # One of each (an executemany is one), whatever the number of statuses; on PostgreSQL the
    # recipients' statement runs on the driver itself (kit/core.py), unseen here.
    assert len(reads) <= 1 and len(updates) <= 1 and len(followed) <= 1, (reads, updates, followed)


async def test_a_webhook_of_many_statuses_writes_their_events_in_one_insert(
    api: Api, wa: FakeGraph, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an endpoint subscribed, every status is a `message.status_updated` event with a
    delivery: a batch writes its events in one INSERT (and their deliveries in another), not
    two per status."""
    monkeypatch.setattr(wa, "auto_status", False)
    s = await shop(api, wa, send_rate_per_second=1_000)
    created = await s.create(phones(30))
    await s.start(created["id"])
    await s.finished(created["id"])
    await api.subscribe(s.owner, s.ws)
    messages, _ = await _rows(runtime, created["id"])
    now = str(int(time.time()))
    statuses = [
        {"id": m.provider_message_id, "status": "delivered", "timestamp": now, "recipient_id": "1"}
        for m in messages
    ]
    written: list[tuple[str, int]] = []
    insert_many = core.insert_many

    async def counted(db: Any, model: Any, rows: list[dict[str, Any]], **kw: Any) -> Any:
        written.append((model.__tablename__, len(rows)))
        return await insert_many(db, model, rows, **kw)

    monkeypatch.setattr(core, "insert_many", counted)

    async def all_delivered() -> bool:
        _, recipients = await _rows(runtime, created["id"])
        return {r.status for r in recipients} == {"delivered"}

    await wa.deliver({"statuses": statuses})  # one webhook: one batch
    await eventually(all_delivered)
    events = [rows for table, rows in written if table == "events"]
    deliveries = [rows for table, rows in written if table == "webhook_deliveries"]
    assert events == [30] and deliveries == [30], written
