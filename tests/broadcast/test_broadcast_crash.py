"""A `botplatform worker` process SIGKILLed in the middle of a broadcast, then another one
started (with a `botplatform scheduler`, as in production, on PostgreSQL and Redis): no
recipient gets the message twice, and none is lost — each was received by the provider
once, or (only those whose request the dead worker may have sent) ended `failed` /
`delivery_unknown`, at most one chunk of them."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from botplatform.broadcast import repository, sending, service
from botplatform.config import Settings
from botplatform.kit.scoping import enter_workspace
from botplatform.models import Broadcast, BroadcastRecipient
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.broadcast.helpers import phones, sends, shop
from tests.channel.test_send_crash import Workers, _env, _in_flight, workers  # noqa: F401
from tests.conftest import Api, eventually

SCHEDULER = [sys.executable, "-m", "botplatform", "scheduler"]
COUNT = 60
RATE = 20


async def _start_in_workers(sender: Runtime, ws: str, broadcast_id: str) -> None:
    """Started through the workers' Redis: the app's own in-process worker never sees it."""
    async with sender.db.unit_of_work() as db:
        await enter_workspace(db, uuid.UUID(ws))
        row = await repository.lock(db, uuid.UUID(ws), uuid.UUID(broadcast_id))
        await service.start(db, row, None)


async def _recipients(runtime: Runtime, broadcast_id: str) -> list[BroadcastRecipient]:
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        statement = select(BroadcastRecipient).where(
            BroadcastRecipient.broadcast_id == uuid.UUID(broadcast_id)
        )
        return list((await db.execute(statement)).scalars().all())


async def _settled(runtime: Runtime, sender: Runtime, broadcast_id: str) -> bool:
    rows = await _recipients(runtime, broadcast_id)
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        row = await db.get(Broadcast, uuid.UUID(broadcast_id))
    done = row is not None and row.status == "completed"
    if done and len(rows) == COUNT and all(r.status not in ("queued", "sending") for r in rows):
        return True
    sender.jobs.send("sweep_pending_work")  # ends unknown sends after their grace
    await asyncio.sleep(1)
    return False


@pytest.mark.usefixtures("client")
async def test_sigkill_mid_broadcast_neither_duplicates_nor_loses(
    settings: Settings,
    runtime: Runtime,
    api: Api,
    wa: FakeGraph,
    workers: Workers,  # noqa: F811
    tmp_path: Path,
) -> None:
    env = _env(settings, tmp_path)
    workers.start(env)
    scheduler = subprocess.Popen(SCHEDULER, env={**env, "SCHEDULER_LOCK_SECONDS": "2"})
    try:
        s = await shop(api, wa, send_rate_per_second=RATE)
        created = await s.create(phones(COUNT))
        wa.latency = 0.05
        await _start_in_workers(workers.sender, s.ws, created["id"])
        (first,) = workers.processes
        await eventually(lambda: len(sends(wa)) >= COUNT // 4 and _in_flight(wa), timeout=60)
        first.send_signal(signal.SIGKILL)  # mid-broadcast, while the provider holds a request
        first.wait(timeout=10)
        assert len(sends(wa)) < COUNT, "the worker was killed after the broadcast, not during it"
        workers.start(env)
        await eventually(lambda: _settled(runtime, workers.sender, created["id"]), timeout=90)
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=30)
    await asyncio.sleep(3.5)  # past any lease: a repeat would have happened by now
    received = Counter(item["to"] for item in sends(wa))
    assert max(received.values()) == 1, [to for to, n in received.items() if n > 1]
    rows = await _recipients(runtime, created["id"])
    assert len(rows) == COUNT
    unknown = [r for r in rows if r.status == "failed"]
    for row in rows:
        assert row.address is not None
        if row in unknown:  # never a silent loss: said so, and it really never arrived
            assert row.error_code == "delivery_unknown", row.error_code
            assert row.address not in received
        else:
            assert row.status in ("sent", "delivered", "read"), row.status
            assert row.address in received
    assert len(unknown) <= sending.CHUNK
    assert len(received) + len(unknown) == COUNT
