"""Back-off under pressure (worker/pressure.py): a late message-path job raises a short-lived
flag, seen by other processes through Redis, and bulk work steps back while it is up."""

from __future__ import annotations

import asyncio
import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from botplatform.broadcast import sending
from botplatform.kit.kv import MemoryStore, RedisStore
from botplatform.runtime import Runtime
from botplatform.worker import pressure as pressure_module
from botplatform.worker.pressure import Pressure
from tests.conftest import REDIS_URL, eventually


def _ago(ms: float) -> int:
    return int(time.time() * 1000 - ms)


async def test_a_late_message_path_job_raises_the_flag_and_it_clears() -> None:
    pressure = Pressure(50, MemoryStore(), shared=False)
    pressure.note_start("default", _ago(10))  # within the budget
    assert not await pressure.is_late()
    pressure.note_start("broadcasts", _ago(5_000))  # bulk lateness is not the message path's
    pressure.note_start("statuses", _ago(5_000))
    pressure.note_start("webhooks", _ago(5_000))
    assert not await pressure.is_late()
    pressure.note_start("default", _ago(200))
    assert await pressure.is_late()
    await asyncio.sleep(pressure_module.HOLD_SECONDS + 0.1)
    assert not await pressure.is_late()


async def test_a_zero_budget_never_raises_it() -> None:
    pressure = Pressure(0, MemoryStore(), shared=False)
    pressure.note_start("default", _ago(60_000))
    assert not await pressure.is_late()
    assert await pressure.step_back(1.0) == 0.0


async def test_the_flag_reaches_other_processes_through_redis() -> None:
    late_side, bulk_side = RedisStore(REDIS_URL), RedisStore(REDIS_URL)
    try:
        await late_side.delete(pressure_module.KEY)
        message_path = Pressure(50, late_side, shared=True)
        bulk = Pressure(50, bulk_side, shared=True)  # another process's view
        assert not await bulk.is_late()
        message_path.note_start("default", _ago(500))
        await eventually(bulk.is_late, timeout=2, interval=pressure_module.READ_EVERY)
        assert await bulk_side.get(pressure_module.KEY) == "1"

        async def cleared() -> bool:
            return not await bulk.is_late()

        await eventually(cleared, timeout=3, interval=pressure_module.READ_EVERY)
    finally:
        await late_side.delete(pressure_module.KEY)
        await late_side.close()
        await bulk_side.close()


async def test_step_back_waits_while_late_and_is_bounded() -> None:
    pressure = Pressure(50, MemoryStore(), shared=False)
    assert await pressure.step_back(1.0) == 0.0
    pressure.note_start("default", _ago(500))
    started = time.monotonic()
    waited = await pressure.step_back(0.3)
    assert 0.3 <= time.monotonic() - started < 0.6
    assert waited == pytest.approx(0.3)


def _driver(pressure: Pressure) -> Any:
    runtime = SimpleNamespace(jobs=SimpleNamespace(pressure=pressure))
    channel = SimpleNamespace(send_rate_per_second=1000)
    return SimpleNamespace(
        runtime=runtime, channel=channel, backoff=0.0, pace=1000.0, last_chunk=0.0
    )


async def test_the_broadcast_driver_steps_back_before_a_chunk_while_late() -> None:
    pressure = Pressure(50, MemoryStore(), shared=False)
    driver = _driver(pressure)
    started = time.monotonic()
    await sending._pace(driver, 50)
    assert time.monotonic() - started < 0.1  # nothing late: no wait
    pressure.note_start("default", _ago(500))
    started = time.monotonic()
    await sending._pace(driver, 50)
    assert time.monotonic() - started >= sending.STEP_BACK_SECONDS * 0.9


async def test_a_worker_notes_how_late_its_message_path_jobs_start(runtime: Runtime) -> None:
    """The job queue measures each job's lateness as it starts (the embedded worker here)."""
    if not runtime.jobs.worker_running:
        pytest.skip("this runtime runs no worker")
    runtime.jobs.pressure._late_until = 0.0
    assert not await runtime.jobs.pressure.is_late()
    actor = runtime.jobs._actors["process_inbound_events"]
    message = actor.message_with_options(args=(str(uuid.uuid4()), []))
    runtime.jobs.broker.enqueue(message.copy(message_timestamp=_ago(2_000)))
    await eventually(runtime.jobs.pressure.is_late, timeout=10)
