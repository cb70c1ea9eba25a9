"""A broadcast of a few thousand recipients on real processes (PostgreSQL-only by nature:
separate worker processes need Redis), each test on a stack of its own
(tests/broadcast/stack.py) that it breaks mid-broadcast:

- a `botplatform worker` SIGKILLed, another started;
- Redis killed (no persistence: every queued job is gone) and started again;
- PostgreSQL stopped the way a crash stops it and started again (crash recovery).

Each time the broadcast completes, no recipient got the message twice (counted at the fake
Graph API, per recipient), and none is lost: each was received once, or ended `failed` with
`delivery_unknown` — a request whose outcome the platform could not learn, never repeated.

The scheduler's jobs (the broadcast tick that restarts a broadcast whose jobs were lost, the
sweeper) are sent by the test every second instead of each minute."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import select

from botplatform.models import Broadcast, BroadcastRecipient
from tests.broadcast.helpers import (
    add_contacts,
    lift_broadcast_quotas,
    phones,
    sends,
    shop,
    tagged_segment,
)
from tests.broadcast.stack import Stack, own_stack, postgres_binaries
from tests.conftest import eventually

COUNT = 2_000
RATE = 500  # the channel's cap, msg/s
KILLED_AFTER = COUNT // 4  # sends seen by the provider before the stack is broken
LEASE_PAST = 4.0  # seconds past every lease (3 s): a repeat would have happened by then

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        postgres_binaries() is None, reason="initdb/pg_ctl are needed for a cluster of its own"
    ),
]


async def _recipients(stack: Stack, broadcast_id: str) -> list[BroadcastRecipient]:
    async with stack.runtime.db.unit_of_work(write=False, system=True) as db:
        statement = select(BroadcastRecipient).where(
            BroadcastRecipient.broadcast_id == uuid.UUID(broadcast_id)
        )
        return list((await db.execute(statement)).scalars().all())


async def _settled(stack: Stack, broadcast_id: str) -> bool:
    try:
        rows = await _recipients(stack, broadcast_id)
        async with stack.runtime.db.unit_of_work(write=False, system=True) as db:
            row = await db.get(Broadcast, uuid.UUID(broadcast_id))
    except Exception:  # the database is coming back
        await asyncio.sleep(1)
        return False
    done = row is not None and row.status == "completed"
    if done and len(rows) == COUNT and all(r.status not in ("queued", "sending") for r in rows):
        return True
    stack.send_job("broadcast_tick")
    stack.send_job("sweep_pending_work")
    await asyncio.sleep(1)
    return False


async def _run_and_break(stack: Stack, breaking: Callable[[], Awaitable[None]]) -> str:
    """Starts the broadcast on two workers, breaks the stack once a quarter went out, and
    waits until every recipient has ended."""
    await lift_broadcast_quotas(stack.runtime)
    stack.start_worker()
    stack.start_worker()
    s = await shop(stack.api, stack.wa, send_rate_per_second=RATE)
    await add_contacts(stack.runtime, s.ws, phones(COUNT), "spring")
    created = await s.create([], audience=await tagged_segment(s, "spring"))
    stack.wa.latency = 0.01
    begun = time.monotonic()
    await s.start(created["id"])
    try:
        await eventually(lambda: len(sends(stack.wa)) >= KILLED_AFTER, timeout=60)
    except AssertionError as exc:
        progress = (await s.get(created["id"]))["counts"]
        raise AssertionError(f"only {len(sends(stack.wa))} sends; {progress}") from exc
    broke = time.monotonic()
    await breaking()
    assert len(sends(stack.wa)) < COUNT, "broken after the broadcast, not during it"
    await eventually(lambda: _settled(stack, created["id"]), timeout=600, interval=0)
    took = (broke - begun, time.monotonic() - broke)
    print(f"broken after {took[0]:.1f} s, settled {took[1]:.1f} s later")  # for -s
    await asyncio.sleep(LEASE_PAST)  # a repeat would have happened by now
    return str(created["id"])


async def _exactly_once(stack: Stack, broadcast_id: str, *, unknown_may_have_arrived: bool) -> None:
    received = Counter(item["to"] for item in sends(stack.wa))
    assert max(received.values()) == 1, [to for to, n in received.items() if n > 1]
    rows = await _recipients(stack, broadcast_id)
    assert len(rows) == COUNT
    unknown = [r for r in rows if r.status == "failed"]
    for row in rows:
        assert row.address is not None
        if row in unknown:  # never silent: said so
            assert row.error_code == "delivery_unknown", row.error_code
            if not unknown_may_have_arrived:
                assert row.address not in received
        else:
            assert row.status in ("sent", "delivered", "read"), row.status
            assert row.address in received
    arrived_unknown = sum(1 for row in unknown if row.address in received)
    assert len(received) + len(unknown) - arrived_unknown == COUNT  # none lost
    assert len(unknown) <= 50, len(unknown)  # only what was in flight at the break


async def test_a_worker_sigkilled_mid_broadcast() -> None:
    async with own_stack() as stack:

        async def kill_one() -> None:
            first = stack.workers[0]
            first.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.wait, 10)
            stack.start_worker()

        broadcast_id = await _run_and_break(stack, kill_one)
        await _exactly_once(stack, broadcast_id, unknown_may_have_arrived=False)


async def test_redis_restarted_mid_broadcast() -> None:
    async with own_stack() as stack:

        async def restart_redis() -> None:
            stack.redis.kill()  # every queued and in-flight job is gone with it
            await asyncio.sleep(2)
            stack.redis.start()

        broadcast_id = await _run_and_break(stack, restart_redis)
        await _exactly_once(stack, broadcast_id, unknown_may_have_arrived=False)


async def test_postgres_restarted_mid_broadcast() -> None:
    async with own_stack() as stack:

        async def restart_postgres() -> None:
            await asyncio.to_thread(stack.postgres.crash)
            await asyncio.sleep(2)
            await asyncio.to_thread(stack.postgres.start)

        broadcast_id = await _run_and_break(stack, restart_postgres)
        # A send answered while the database was down: its outcome (and the status webhook
        # that would settle it) could not be written, so it ends `delivery_unknown` even
        # though it arrived — said so, and never sent twice.
        await _exactly_once(stack, broadcast_id, unknown_may_have_arrived=True)
