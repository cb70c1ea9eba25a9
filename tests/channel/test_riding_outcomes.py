"""The outcomes of a batch's accepted sends ride with the workspace's next batch in the process
(no transaction of their own) when one is waiting or comes within a moment; they are written
on their own otherwise (also when that next batch ends up applying nothing, and before a
stopping worker ends)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from botplatform.channels import sender, tasks
from botplatform.kit import linger
from botplatform.kit.scoping import enter_workspace
from botplatform.models import Event, Message
from botplatform.runtime import Runtime
from botplatform.sandbox.whatsapp import FakeGraph
from botplatform.worker.jobs import JobContext
from tests.channel.test_batch_equivalence import _run, _store, _text, _world
from tests.conftest import Api, driver_statements, eventually
from tests.fakes.webhook_receiver import running_receiver


async def _replies(runtime: Runtime, ws: str) -> list[tuple[str, str | None]]:
    async with runtime.db.unit_of_work(write=False) as db:
        await enter_workspace(db, uuid.UUID(ws))
        rows = await db.execute(
            select(Message.status, Message.provider_message_id)
            .where(Message.workspace_id == uuid.UUID(ws), Message.direction == "outbound")
            .order_by(Message.created_at)
        )
        return [(status, provider_id) for status, provider_id in rows]


async def _sent_events(runtime: Runtime, ws: str) -> int:
    async with runtime.db.unit_of_work(write=False) as db:
        await enter_workspace(db, uuid.UUID(ws))
        rows = await db.execute(
            select(Event.id).where(
                Event.workspace_id == uuid.UUID(ws), Event.type == "message.sent"
            )
        )
        return len(rows.all())


async def _all_sent(runtime: Runtime, ws: str) -> list[tuple[str, str | None]] | None:
    replies = await _replies(runtime, ws)
    return replies if all(status == "sent" for status, _ in replies) else None


def _waiting(runtime: Runtime, ws: str, event_id: str) -> Any:
    """A job of the workspace waiting for the next batch, as `_Batches.join` leaves it."""
    ctx = JobContext(runtime=runtime, db=None, message_id="w", attempt=1, max_attempts=1)  # type: ignore[arg-type]
    joined = tasks._Joined(ctx, ws, [event_id], asyncio.get_running_loop().create_future())
    tasks._BATCHES._waiting.append(joined)
    return joined


async def _first_batch_with_a_waiting_one(
    api: Api, runtime: Runtime, wa: FakeGraph, hook: str, second_text: bytes | None
) -> tuple[str, str, str]:
    owner = await api.register()
    ws, channel_id = await _world(api, owner, "Riding", "1122334455667", hook)
    first_body = _text("15550001", "hi", "Ann", "wamid.R1")
    (first,) = await _store(runtime, ws, channel_id, [first_body])
    # Without a second text, the waiting job is the first event's again (a redelivered job).
    second = (await _store(runtime, ws, channel_id, [second_text]))[0] if second_text else first
    joined = _waiting(runtime, ws, second)
    try:
        await _run(runtime, "process_inbound_event", ws, first)
    finally:
        tasks._BATCHES._waiting.remove(joined)
    return ws, first, second


async def test_accepted_outcomes_ride_with_the_next_batch(
    api: Api, runtime: Runtime, wa: FakeGraph
) -> None:
    auto_status, wa.auto_status = wa.auto_status, False  # no status webhook settles them
    try:
        async with running_receiver() as receiver:
            second_text = _text("15550002", "hello", "Bob", "wamid.R2")
            ws, _, second = await _first_batch_with_a_waiting_one(
                api, runtime, wa, receiver.url, second_text
            )
            # The reply left (the provider has it) but its outcome waits for the next batch.
            assert len(wa.sent) == 1
            assert await _replies(runtime, ws) == [("sending", None)]
            assert await _sent_events(runtime, ws) == 0

            await _run(runtime, "process_inbound_event", ws, second)
            replies = await _replies(runtime, ws)
            # The first reply's outcome was written by the second batch; the second batch's
            # own reply waits for a next batch that does not come, then is written alone.
            assert [status for status, _ in replies] == ["sent", "sending"]
            replies = await eventually(lambda: _all_sent(runtime, ws))
            assert all(provider_id for _, provider_id in replies)
            assert await _sent_events(runtime, ws) == 2
            assert tasks._BATCHES.take_outcomes(ws) == []
    finally:
        wa.auto_status = auto_status


async def test_riding_outcomes_are_a_part_of_the_batch_s_last_statement(
    api: Api, runtime: Runtime, wa: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the outcomes that ride are one part of the next batch's last statement
    (beside the events' marking and the batch's reply), not round trips of their own: every
    part of it must take `kit.core`'s fast path (a value SQLAlchemy computes, such as an
    `onupdate`, sends the whole group one statement at a time)."""
    if runtime.db.dialect != "postgresql":
        pytest.skip("one statement on PostgreSQL; SQLite runs the writes in turn")
    auto_status, wa.auto_status = wa.auto_status, False
    try:
        second_text = _text("15550032", "hello", "Di", "wamid.P2")
        ws, _, second = await _first_batch_with_a_waiting_one(api, runtime, wa, None, second_text)
        with driver_statements(monkeypatch) as sent:
            await _run(runtime, "process_inbound_event", ws, second)
        riding = [sql for sql in sent if "provider_message_id=accepted.pid" in sql]
        assert len(riding) == 1, sent
        assert riding[0].startswith("WITH w0 AS") and "UPDATE inbound_events" in riding[0]
        assert [status for status, _ in await _replies(runtime, ws)] == ["sent", "sending"]
    finally:
        wa.auto_status = auto_status


async def test_a_next_batch_that_applies_nothing_writes_them_alone(
    api: Api, runtime: Runtime, wa: FakeGraph
) -> None:
    auto_status, wa.auto_status = wa.auto_status, False
    try:
        async with running_receiver() as receiver:
            # The waiting job's event is the same webhook again: already processed by then.
            ws, first, _ = await _first_batch_with_a_waiting_one(
                api, runtime, wa, receiver.url, None
            )
            assert await _replies(runtime, ws) == [("sending", None)]
            await _run(runtime, "process_inbound_event", ws, first)  # nothing left to apply
            [(status, provider_id)] = await eventually(lambda: _all_sent(runtime, ws))
            assert status == "sent" and provider_id
            assert await _sent_events(runtime, ws) == 1
            assert len(wa.sent) == 1
    finally:
        wa.auto_status = auto_status


async def test_outcomes_wait_a_moment_for_the_next_batch(
    api: Api, runtime: Runtime, wa: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No batch waits when the first one's reply is accepted: its outcome lingers, and the
    batch that comes next writes it with its own last statement."""
    monkeypatch.setattr(tasks, "OUTCOME_LINGER_SECONDS", 1.0)
    written_alone: list[int] = []
    write_outcomes = sender.write_outcomes

    async def counted(runtime: Runtime, workspace_id: uuid.UUID, results: list[Any]) -> None:
        if results:  # (the batch's refusals, none here, are written at once)
            written_alone.append(len(results))
        await write_outcomes(runtime, workspace_id, results)

    monkeypatch.setattr(sender, "write_outcomes", counted)
    auto_status, wa.auto_status = wa.auto_status, False
    try:
        async with running_receiver() as receiver:
            owner = await api.register()
            ws, channel_id = await _world(api, owner, "Linger", "1122334455667", receiver.url)
            first_body = _text("15550011", "hi", "Ann", "wamid.L1")
            second_body = _text("15550012", "hello", "Bob", "wamid.L2")
            first, second = await _store(runtime, ws, channel_id, [first_body, second_body])
            await _run(runtime, "process_inbound_event", ws, first)
            assert await _replies(runtime, ws) == [("sending", None)]
            await _run(runtime, "process_inbound_event", ws, second)
            assert [status for status, _ in await _replies(runtime, ws)] == ["sent", "sending"]
            assert written_alone == []  # the first outcome rode with the second batch
            await eventually(lambda: _all_sent(runtime, ws))
            assert written_alone == [1]  # the second one, with no batch after it
            assert await _sent_events(runtime, ws) == 2
    finally:
        wa.auto_status = auto_status


async def test_a_stopping_worker_writes_the_lingering_outcomes(
    api: Api, runtime: Runtime, wa: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "OUTCOME_LINGER_SECONDS", 1.0)
    auto_status, wa.auto_status = wa.auto_status, False
    try:
        owner = await api.register()
        ws, channel_id = await _world(api, owner, "Stopping", "1122334455667", None)
        (first,) = await _store(
            runtime, ws, channel_id, [_text("15550021", "hi", "Cy", "wamid.S1")]
        )
        await _run(runtime, "process_inbound_event", ws, first)
        assert await _replies(runtime, ws) == [("sending", None)]
        await runtime.jobs.finish_trailing()  # what a stopping worker waits for
        [(status, provider_id)] = await _replies(runtime, ws)
        assert status == "sent" and provider_id
    finally:
        wa.auto_status = auto_status


def _jobs_every(monkeypatch: pytest.MonkeyPatch, batches: Any, ws: str, gap: float) -> None:
    """EVIDENCE jobs of `ws`, `gap` seconds apart, the last one just now."""
    clock = [0.0]
    monkeypatch.setattr(linger, "_now", lambda: clock[0])
    for _ in range(linger.EVIDENCE):
        batches._job_came(ws)
        clock[0] += gap


@pytest.mark.parametrize(
    ("gap", "wait"),
    [
        (None, tasks.OUTCOME_LINGER_SECONDS),  # no evidence yet: the short wait
        (0.01, tasks.OUTCOME_LINGER_SECONDS),  # batches come anyway: never less than it
        (0.3, 0.6),  # a few a second, each its own batch: twice the gap
        (0.8, tasks.OUTCOME_RIDE_SECONDS),  # never more than the ride's bound
        (3.0, tasks.OUTCOME_LINGER_SECONDS),  # too seldom to wait for
    ],
    ids=["unseen", "busy", "steady-low-rate", "bounded", "rare"],
)
def test_outcomes_wait_for_the_next_batch_as_long_as_the_workspace_rate_says(
    monkeypatch: pytest.MonkeyPatch, gap: float | None, wait: float
) -> None:
    batches = tasks._Batches()
    ws = str(uuid.uuid4())
    if gap is not None:
        _jobs_every(monkeypatch, batches, ws, gap)
    assert batches._outcome_wait(ws) == pytest.approx(wait)
    assert batches._outcome_wait(str(uuid.uuid4())) == tasks.OUTCOME_LINGER_SECONDS


def test_a_process_keeps_the_rates_of_its_most_recent_workspaces_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tasks, "WORKSPACES_TIMED", 3)
    batches = tasks._Batches()
    for ws in ["a", "b", "c", "a", "d"]:
        batches._job_came(ws)
    assert list(batches._arrivals) == ["c", "a", "d"]


async def test_outcomes_taken_by_the_next_batch_stop_their_timer(
    api: Api, runtime: Runtime, wa: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long wait (a steady low rate) ends when the next batch takes the outcomes: a
    stopping worker does not wait it out."""
    monkeypatch.setattr(tasks, "OUTCOME_LINGER_SECONDS", 30.0)
    auto_status, wa.auto_status = wa.auto_status, False
    try:
        owner = await api.register()
        ws, channel_id = await _world(api, owner, "Timer", "1122334455667", None)
        first, second = await _store(
            runtime,
            ws,
            channel_id,
            [_text("15550031", "hi", "Di", "wamid.T1"), _text("15550032", "hi", "Ed", "wamid.T2")],
        )
        await _run(runtime, "process_inbound_event", ws, first)
        timer = tasks._BATCHES._lingering[ws]
        await _run(runtime, "process_inbound_event", ws, second)  # takes the first outcome
        await asyncio.sleep(0)
        assert timer.cancelled()
        assert [status for status, _ in await _replies(runtime, ws)] == ["sent", "sending"]
        # The second one's, as its timer would (it is 30 s away here).
        await sender.write_outcomes(runtime, uuid.UUID(ws), tasks._BATCHES.take_outcomes(ws))
        assert await _all_sent(runtime, ws)
    finally:
        wa.auto_status = auto_status
