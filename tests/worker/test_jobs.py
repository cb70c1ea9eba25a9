"""Jobs on both backends: retries with backoff, dead letters and their retry, and
enqueue-after-commit."""

from __future__ import annotations

import uuid
from collections import Counter

import httpx
import pytest
import redis.asyncio
from sqlalchemy import select

from botplatform.models import DeadJob
from botplatform.runtime import Runtime
from botplatform.worker import dead_letters
from botplatform.worker.jobs import JobContext, enqueue, job
from tests.conftest import eventually

RUNS: Counter[str] = Counter()


@job("test_flaky", max_retries=5, min_backoff_ms=10, max_backoff_ms=40)
async def flaky(ctx: JobContext, key: str, failures: int) -> None:
    RUNS[key] += 1
    if ctx.attempt <= failures:
        raise RuntimeError(f"failure number {ctx.attempt}")
    await ctx.runtime.kv.put(f"done:{key}", str(ctx.attempt))


@job("test_doomed", max_retries=1, min_backoff_ms=10, max_backoff_ms=20)
async def doomed(ctx: JobContext, key: str) -> None:
    RUNS[key] += 1
    if await ctx.runtime.kv.get(f"allow:{key}") is None:
        raise ValueError("the remote end is still broken")
    await ctx.runtime.kv.put(f"done:{key}", "yes")


@job("test_parent", max_retries=0)
async def parent(ctx: JobContext, key: str, fail_after_enqueue: bool) -> None:
    enqueue(ctx.db, "test_flaky", key, 0)
    if fail_after_enqueue:
        raise RuntimeError("rolled back, so the child must not run")


def _key() -> str:
    return uuid.uuid4().hex


async def _done(runtime: Runtime, key: str) -> str | None:
    return await runtime.kv.get(f"done:{key}")


@pytest.mark.usefixtures("client")
async def test_job_fails_twice_then_succeeds(runtime: Runtime) -> None:
    key = _key()
    async with runtime.db.unit_of_work() as db:
        enqueue(db, "test_flaky", key, 2)
    assert await eventually(lambda: _done(runtime, key)) == "3"
    assert RUNS[key] == 3


@pytest.mark.usefixtures("client")
async def test_long_delayed_jobs_do_not_hold_up_a_short_one(runtime: Runtime) -> None:
    """More jobs waiting out a long delay than a consumer prefetches must not keep a job
    with a short delay (a retry's backoff, say) from running when it is due."""
    for _ in range(3 * runtime.settings.worker_threads * 2):
        runtime.jobs.send("test_flaky", _key(), 0, delay_ms=600_000)
    key = _key()
    runtime.jobs.send("test_flaky", key, 0, delay_ms=50)
    assert await eventually(lambda: _done(runtime, key), timeout=5) == "1"


@pytest.mark.usefixtures("client")
async def test_rollback_drops_queued_jobs_and_commit_sends_them(runtime: Runtime) -> None:
    dropped, sent = _key(), _key()
    with pytest.raises(RuntimeError):
        async with runtime.db.unit_of_work() as db:
            enqueue(db, "test_flaky", dropped, 0)
            raise RuntimeError("the request failed")
    async with runtime.db.unit_of_work() as db:
        enqueue(db, "test_flaky", sent, 0)
    await eventually(lambda: _done(runtime, sent))
    assert RUNS[dropped] == 0
    assert await _done(runtime, dropped) is None


@pytest.mark.usefixtures("client")
async def test_a_transactions_jobs_reach_the_queue_together_and_all_run(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit that queued many jobs (one delayed) sends them in one trip to Redis, and each
    runs exactly as if it had been sent alone."""
    keys, delayed = [_key() for _ in range(40)], _key()
    trips = Counter[str]()
    if runtime.jobs.is_redis:
        # A commit's jobs leave through the asyncio client, on the loop (the worker's own
        # enqueues, such as the delayed job's promotion, use dramatiq's client).
        client = runtime.jobs.async_redis
        assert client is not None
        real_pipeline = client.pipeline

        def counted_pipeline(*args: object, **kwargs: object) -> object:
            trips["pipelines"] += 1
            return real_pipeline(*args, **kwargs)

        monkeypatch.setattr(client, "pipeline", counted_pipeline)
    async with runtime.db.unit_of_work() as db:
        for key in keys:
            enqueue(db, "test_flaky", key, 0)
        enqueue(db, "test_flaky", delayed, 0, delay_ms=50)
    for key in [*keys, delayed]:
        assert await eventually(lambda key=key: _done(runtime, key)) == "1"
    assert all(RUNS[key] == 1 for key in [*keys, delayed])
    if runtime.jobs.is_redis:
        assert trips["pipelines"] == 1


@pytest.mark.usefixtures("client")
async def test_jobs_still_leave_after_redis_forgot_the_dispatch_script(runtime: Runtime) -> None:
    """The dispatch script is called by its hash; a Redis that restarted (or flushed its
    scripts) since answers NOSCRIPT, and the jobs are sent again once it is loaded."""
    if not runtime.jobs.is_redis:
        pytest.skip("the in-memory queue has no scripts")
    assert runtime.jobs.async_redis is not None
    first, second = _key(), _key()
    async with runtime.db.unit_of_work() as db:
        enqueue(db, "test_flaky", first, 0)
    assert await eventually(lambda: _done(runtime, first)) == "1"
    await runtime.jobs.async_redis.script_flush()
    async with runtime.db.unit_of_work() as db:
        enqueue(db, "test_flaky", second, 0)
    assert await eventually(lambda: _done(runtime, second)) == "1"
    assert RUNS[first] == RUNS[second] == 1


@pytest.mark.usefixtures("client")
async def test_jobs_still_leave_over_a_connection_redis_dropped(runtime: Runtime) -> None:
    """A Redis restart leaves every pooled connection dead: the next dispatch on one meets a
    closed socket, and its jobs must still leave (one retry on a fresh connection) rather than
    wait for the sweeper."""
    client = runtime.jobs.async_redis
    if client is None:
        pytest.skip("the in-memory queue has no connections")
    first, second = _key(), _key()
    async with runtime.db.unit_of_work() as db:
        enqueue(db, "test_flaky", first, 0)
    assert await eventually(lambda: _done(runtime, first)) == "1"
    dropped = await client.client_id()  # the pool's latest connection, the next one taken
    other = redis.asyncio.Redis.from_url(runtime.settings.redis_url)
    try:
        assert await other.client_kill_filter(_id=dropped) == 1
    finally:
        await other.aclose()
    async with runtime.db.unit_of_work() as db:
        enqueue(db, "test_flaky", second, 0)
    assert await eventually(lambda: _done(runtime, second)) == "1"
    assert RUNS[first] == RUNS[second] == 1


@pytest.mark.usefixtures("client")
async def test_a_job_enqueues_only_when_it_commits(runtime: Runtime) -> None:
    kept, dropped = _key(), _key()
    runtime.jobs.send("test_parent", dropped, True)
    runtime.jobs.send("test_parent", kept, False)
    await eventually(lambda: _done(runtime, kept))
    assert RUNS[dropped] == 0


async def _dead_rows(runtime: Runtime, key: str) -> list[DeadJob]:
    async with runtime.db.unit_of_work() as db:
        rows = (await db.execute(select(DeadJob).where(DeadJob.job == "test_doomed"))).scalars()
        return [row for row in rows if row.args == [key]]


@pytest.mark.usefixtures("client")
async def test_exhausted_job_is_dead_then_retried(runtime: Runtime) -> None:
    key = _key()
    runtime.jobs.send("test_doomed", key)
    (row,) = await eventually(lambda: _dead_rows(runtime, key))
    assert row.attempts == 2
    assert row.queue == "default"
    assert "ValueError: the remote end is still broken" in row.last_error
    assert "Traceback" in row.last_error
    assert RUNS[key] == 2

    await runtime.kv.put(f"allow:{key}", "1")  # the remote end recovered
    async with runtime.db.unit_of_work() as db:
        assert [r.id for r in await dead_letters.request_retry(db, row.id)] == [row.id]
    async with runtime.db.unit_of_work() as db:
        assert await dead_letters.send_requested(runtime, db) == 1
    assert await eventually(lambda: _done(runtime, key)) == "yes"
    (after,) = await _dead_rows(runtime, key)
    assert after.retried_at is not None
    async with runtime.db.unit_of_work() as db:
        assert await dead_letters.count_by_queue(db) == {}


async def test_queue_depth_is_reported(client: httpx.AsyncClient, runtime: Runtime) -> None:
    depths = runtime.jobs.depths()
    assert set(depths["default"]) == {"waiting", "delayed", "in_flight", "failed"}
    text = (await client.get("/metrics")).text
    assert 'queue_depth{queue="default",state="waiting"}' in text
