"""A lane keeps a share of a process's threads free for the message path (worker/lane.py). In
a process that runs no message path (a worker's bulk child, which consumes only `broadcasts`
and `statuses`) there is nobody to keep them for: a status job there never bounces back
through the delay queue because `STATUS_WORKER_SHARE` of the threads are busy."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from botplatform.channels.tasks import STATUS_BATCH_JOB, STATUS_GATE, process_status_events
from botplatform.config import Settings
from botplatform.runtime import Runtime
from botplatform.worker.jobs import JobContext, PendingJob, take_pending
from botplatform.worker.queues import BULK_QUEUES

THREADS = 2


@asynccontextmanager
async def _worker(settings: Settings, queues: frozenset[str] | None) -> AsyncIterator[Runtime]:
    """A runtime whose worker consumes `queues` (None: every queue), as `botplatform worker`
    and its bulk child start theirs."""
    runtime = Runtime.create(settings.model_copy(update={"worker_in_process": False}))
    await runtime.start()
    runtime.jobs.start_worker(asyncio.get_running_loop(), THREADS, queues)
    try:
        yield runtime
    finally:
        await runtime.jobs.stop_worker()
        await runtime.close()


async def _status_job_while_the_lane_is_full(runtime: Runtime) -> list[PendingJob]:
    """Runs a status job while as many run as STATUS_WORKER_SHARE allows beside the message
    path; the jobs it queued again (none when it ran)."""
    settings = runtime.settings
    busy = max(1, math.floor(THREADS * settings.status_worker_share))
    for _ in range(busy):
        assert STATUS_GATE.enter(THREADS, settings.status_worker_share)
    try:
        async with runtime.db.unit_of_work() as db:
            ctx = JobContext(runtime, db, "test", attempt=1, max_attempts=1)
            await process_status_events(ctx, str(uuid.uuid4()), [])
            return take_pending(db)  # taken: nothing is dispatched by the commit
    finally:
        for _ in range(busy):
            STATUS_GATE.leave()


@pytest.fixture
def worker_threads(settings: Settings) -> Settings:
    return settings.model_copy(update={"worker_threads": THREADS})


async def test_beside_the_message_path_a_full_status_lane_sends_the_job_back(
    worker_threads: Settings,
) -> None:
    async with _worker(worker_threads, None) as runtime:
        assert runtime.jobs.lane_share(0.25) == 0.25
        requeued = await _status_job_while_the_lane_is_full(runtime)
    assert [(job.name, job.delay_ms is not None) for job in requeued] == [(STATUS_BATCH_JOB, True)]


async def test_a_bulk_only_process_gives_its_lanes_every_thread(worker_threads: Settings) -> None:
    async with _worker(worker_threads, BULK_QUEUES) as runtime:
        assert runtime.jobs.lane_share(0.25) == 1.0
        requeued = await _status_job_while_the_lane_is_full(runtime)
    assert requeued == []  # it ran, holding no slot anyone else needed
    assert STATUS_GATE._running == 0  # and left the lane
