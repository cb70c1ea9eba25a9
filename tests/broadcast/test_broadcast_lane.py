"""Broadcasts run in their own lane: at most BROADCAST_WORKER_SHARE of a worker's threads
drive broadcasts at once, so the message path keeps its threads — a customer's message in
another workspace is answered while several broadcasts are running."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import func, select

from botplatform.broadcast.tasks import LANE_GATE
from botplatform.kit.clock import utcnow
from botplatform.models import Broadcast
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.broadcast.helpers import phones, sends, shop
from tests.conftest import Api, eventually


async def _live_drivers(runtime: Runtime) -> int:
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        statement = select(func.count()).where(Broadcast.driver_until > utcnow())
        return int((await db.execute(statement)).scalar_one())


async def test_broadcasts_take_a_bounded_share_and_replies_still_go_out(
    api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    settings = runtime.settings
    lane = max(1, int(settings.worker_threads * settings.broadcast_worker_share))
    assert lane < settings.worker_threads  # the message path keeps threads of its own
    s = await shop(api, wa, send_rate_per_second=4)
    created = [await s.create(phones(6, start=100 * i)) for i in range(3)]
    for broadcast in created:
        await s.start(broadcast["id"])
    # Another workspace's customer writes while they run; its auto-reply is not held back.
    owner = await api.register()
    ws = await api.create_workspace(owner, "Other")
    other = await api.create_channel(owner, ws, auto_reply="Thanks, we got it")
    await eventually(lambda: len(sends(wa)) >= 2, timeout=10)
    written = time.monotonic()
    await api.inbound_text(other["id"], "15559990000", "hello?", name="Waiting")

    def replied() -> bool:
        return any(item["type"] == "text" and item["to"] == "15559990000" for item in wa.sent)

    await eventually(replied, timeout=10)
    assert time.monotonic() - written < 3
    peak = 0
    while True:
        peak = max(peak, await _live_drivers(runtime))
        states = [(await s.get(b["id"]))["status"] for b in created]
        if all(state == "completed" for state in states):
            break
        await asyncio.sleep(0.1)
    assert 1 <= peak <= lane
    assert len(sends(wa)) == 18
    await eventually(lambda: LANE_GATE._running == 0)  # every job left the lane


def test_the_tick_fires_each_minute() -> None:
    from datetime import datetime

    from botplatform.worker.scheduler import SCHEDULES, _due_times

    (cron,) = [schedule.cron for schedule in SCHEDULES if schedule.job == "broadcast_tick"]
    due = _due_times(cron, datetime(2026, 1, 1, 13, 0, 1), datetime(2026, 1, 1, 13, 3, 0))
    assert [(moment.minute, moment.second) for moment in due] == [(1, 0), (2, 0), (3, 0)]
