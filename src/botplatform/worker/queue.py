"""The job queue of one process: a dramatiq broker (Redis in production, in-memory when
embedded) with one actor per declared job, bound to this process's Runtime.

Dramatiq keeps a global broker and a global event loop by default; we keep neither. Each
Runtime builds its own broker and actors, and job coroutines run on the loop that owns the
Runtime's database engine (the app's loop when embedded, a dedicated loop thread in
`botplatform worker`), so one engine is never shared across loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import dramatiq
import redis.asyncio
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name
from dramatiq.middleware import CurrentMessage, Middleware, default_middleware
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from botplatform.config import Settings
from botplatform.kit import metrics
from botplatform.kit.logging import get_logger
from botplatform.worker.jobs import REGISTRY, JobContext, JobSpec, PendingJob, load_task_modules
from botplatform.worker.pressure import Pressure
from botplatform.worker.queues import MESSAGE_QUEUES, NAMESPACE, PRIORITIES, redis_depth
from botplatform.worker.transport import WaitingStubBroker, WakingRedisBroker

if TYPE_CHECKING:
    from botplatform.runtime import Runtime

log = get_logger("botplatform.jobs")


#: How often an idle worker thread looks at its stop flag (see `JobQueue.start_worker`).
WORKER_THREAD_CHECK_MS = 1000
#: How often a stopping worker looks whether dramatiq has told its consumers to stop yet.
STOP_CHECK_SECONDS = 0.02


class _Outcomes(Middleware):
    """Counts outcomes and records dead jobs. Listed before Retries so that its `after` hook
    runs after Retries has decided whether the message is dead (dramatiq runs `after` hooks
    in reverse order)."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        if exception is None:
            metrics.JOBS.labels(message.actor_name, "succeeded").inc()
        elif message.failed:
            metrics.JOBS.labels(message.actor_name, "dead").inc()
            self.queue.record_dead(message, exception)
        else:
            metrics.JOBS.labels(message.actor_name, "retried").inc()

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        metrics.JOBS.labels(message.actor_name, "skipped").inc()


class JobQueue:
    def __init__(self, settings: Settings, runtime: Runtime) -> None:
        load_task_modules()
        self._runtime = runtime
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: dramatiq.Worker | None = None
        #: Whether this process's worker consumes the message path's queues (`lane_share`).
        self._runs_message_path = True
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        self._trailing: set[asyncio.Task[Any]] = set()
        middleware = [_Outcomes(self), *(m() for m in default_middleware), CurrentMessage()]
        self.broker: dramatiq.Broker
        #: The asyncio client that `dispatch` sends through, on the loop that first used it.
        self.async_redis: redis.asyncio.Redis | None = None
        self._async_loop: asyncio.AbstractEventLoop | None = None
        if settings.redis_url:
            # One immediate retry on a broken connection: after a Redis restart every pooled
            # connection is dead, and without it each one's first dispatch was lost (its rows
            # then waited SWEEP_AFTER_SECONDS for the sweeper, though Redis was back).
            self.async_redis = redis.asyncio.Redis.from_url(
                settings.redis_url, retry=Retry(NoBackoff(), 1)
            )
            self.broker = WakingRedisBroker(
                idle_wait_ms=settings.queue_idle_wait_ms,
                url=settings.redis_url,
                namespace=NAMESPACE,
                middleware=middleware,
                heartbeat_timeout=settings.queue_heartbeat_timeout_ms,
                maintenance_chance=settings.queue_maintenance_chance,
            )
        else:
            self.broker = WaitingStubBroker(
                idle_wait_ms=settings.queue_idle_wait_ms, middleware=middleware
            )
        self._actors = {spec.name: self._declare(spec) for spec in REGISTRY.values()}
        #: How late the message path runs, seen from this process (worker/pressure.py).
        self.pressure = Pressure(
            settings.message_path_budget_ms, runtime.kv, shared=bool(settings.redis_url)
        )

    @property
    def job_names(self) -> set[str]:
        return set(self._actors)

    @property
    def is_redis(self) -> bool:
        return isinstance(self.broker, RedisBroker)

    def _declare(self, spec: JobSpec) -> dramatiq.Actor[Any, Any]:
        return dramatiq.Actor(
            self._runner(spec),
            broker=self.broker,
            actor_name=spec.name,
            queue_name=spec.queue,
            priority=PRIORITIES[spec.queue],
            options={
                "max_retries": spec.max_retries,
                "min_backoff": spec.min_backoff_ms,
                "max_backoff": spec.max_backoff_ms,
                "time_limit": spec.time_limit_ms,
            },
        )

    # --- sending -------------------------------------------------------------------------

    def send(self, name: str, *args: Any, delay_ms: int | None = None) -> str:
        """Sends a job now (outside any transaction). Returns the message id."""
        message = self._actors[name].send_with_options(args=args, delay=delay_ms)
        return str(message.message_id)

    async def dispatch(self, pending: list[PendingJob]) -> None:
        """Sends jobs whose transaction has committed. A failure here loses no work: the rows
        stay pending and the sweeper sends their jobs again."""
        try:
            if self._on_this_loop():
                await self._send_all_async(pending)
            elif self.is_redis:
                await anyio.to_thread.run_sync(self._send_all, pending)
            else:
                self._send_all(pending)
        except Exception:
            log.exception("enqueue_failed", jobs=[job.name for job in pending])

    def _on_this_loop(self) -> bool:
        """Whether the asyncio client may be used here: its connections belong to the loop
        that first used it (the app's, or the worker's job loop)."""
        if self.async_redis is None:
            return False
        loop = asyncio.get_running_loop()
        if self._async_loop is None:
            self._async_loop = loop
        return self._async_loop is loop

    async def _send_all_async(self, pending: list[PendingJob]) -> None:
        assert isinstance(self.broker, WakingRedisBroker)
        assert self.async_redis is not None
        batch = [
            (self._actors[job.name].message_with_options(args=job.args), job.delay_ms)
            for job in pending
        ]
        await self.broker.enqueue_many_async(self.async_redis, batch)

    def _send_all(self, pending: list[PendingJob]) -> None:
        if isinstance(self.broker, WakingRedisBroker):
            batch = [
                (self._actors[job.name].message_with_options(args=job.args), job.delay_ms)
                for job in pending
            ]
            self.broker.enqueue_many(batch)
            return
        for job in pending:
            self.send(job.name, *job.args, delay_ms=job.delay_ms)

    # --- running -------------------------------------------------------------------------

    def _runner(self, spec: JobSpec) -> Callable[..., None]:
        def run(*args: Any) -> None:
            message = CurrentMessage.get_current_message()
            loop = self._loop
            if loop is None:
                raise RuntimeError("this process runs no worker")
            future = asyncio.run_coroutine_threadsafe(self._execute(spec, args, message), loop)
            try:
                future.result()
            except BaseException:
                future.cancel()  # time limit or shutdown interrupted the waiting thread
                raise

        run.__name__ = spec.name
        run.__module__ = spec.fn.__module__
        return run

    async def _execute(self, spec: JobSpec, args: tuple[Any, ...], message: Any) -> None:
        retries = int(message.options.get("retries", 0)) if message is not None else 0
        started = time.perf_counter()
        if message is not None:
            due = max(int(message.message_timestamp), int(message.options.get("eta", 0)))
            self.pressure.note_start(spec.queue, due)
        with self._in_flight_lock:
            self._in_flight += 1
        try:
            async with self._runtime.db.unit_of_work(system=spec.system) as db:
                context = JobContext(
                    runtime=self._runtime,
                    db=db,
                    message_id=str(message.message_id) if message is not None else "",
                    attempt=retries + 1,
                    max_attempts=spec.max_retries + 1,
                )
                await spec.fn(context, *args)
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1
            metrics.JOB_DURATION.labels(spec.name).observe(time.perf_counter() - started)

    def record_dead(self, message: dramatiq.MessageProxy, exception: BaseException) -> None:
        from botplatform.worker import dead_letters

        loop = self._loop
        if loop is None:
            return
        coroutine = dead_letters.record(self._runtime, message, exception)
        try:
            asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=30)
        except Exception:
            log.exception("dead_job_not_recorded", job=message.actor_name)

    def start_worker(
        self,
        loop: asyncio.AbstractEventLoop,
        threads: int,
        queues: frozenset[str] | None = None,
    ) -> None:
        """Consumes `queues` (default: every queue) in this process; job coroutines run on
        `loop`."""
        self._loop = loop
        self._runs_message_path = queues is None or bool(queues & MESSAGE_QUEUES)
        # worker_timeout is how long an idle worker thread blocks on the in-process work
        # queue before it looks at its stop flag (a wake costs no round trip); the consumers
        # block on their queues for the idle bound (see transport.py), so nothing polls.
        self._worker = dramatiq.Worker(
            self.broker,
            queues=set(queues) if queues else None,
            worker_threads=threads,
            worker_timeout=WORKER_THREAD_CHECK_MS,
        )
        if isinstance(self.broker, StubBroker):
            # The in-memory broker lists its delay queues among its ordinary queues, so the
            # worker consumes them with an ordinary queue's small prefetch: that many jobs
            # waiting out a long delay would hold up every shorter one (a retry's backoff)
            # behind them. One process consumes everything here, so prefetch costs nothing.
            self._worker.queue_prefetch = self._worker.delay_prefetch
        self._worker.start()
        log.info(
            "worker_started",
            threads=threads,
            broker=type(self.broker).__name__,
            queues=sorted(queues) if queues else "all",
        )

    def lane_share(self, share: float) -> float:
        """The share of this process's threads a bulk lane (worker/lane.py) may take: `share`
        where the process also runs the message path, whose threads the lane keeps free; all
        of them in a process that runs nothing else (a worker's bulk child). There a full
        lane protected nobody and only bounced its jobs through Redis's delay queue: during a
        100,000-recipient broadcast the status jobs requeued themselves about 2,400 times a
        second, and the bounces took most of the child's CPU (docs/decisions.md)."""
        return share if self._runs_message_path else 1.0

    @property
    def worker_running(self) -> bool:
        return self._worker is not None

    def hold_stop_for(self, task: asyncio.Task[Any]) -> None:
        """`task`, started by a job to finish its work a moment later (the reply path's
        outcomes waiting for the next batch), ends before the worker counts as stopped."""
        self._trailing.add(task)
        task.add_done_callback(self._trailing.discard)

    async def stop_worker(self, grace_seconds: float = 10) -> None:
        """Stops consuming and waits up to `grace_seconds` for running jobs, then for what
        they left to finish (`hold_stop_for`). A job cut short is redelivered (Redis) or
        swept up later: its row still says what is left to do."""
        worker, self._worker = self._worker, None
        if worker is not None:
            # In a thread: the worker waits for running jobs, whose coroutines need this loop.
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._wake_consumers_once_told, worker)
                await anyio.to_thread.run_sync(
                    lambda: worker.stop(timeout=int(grace_seconds * 1000))
                )
                tasks.cancel_scope.cancel()
        await self.finish_trailing(grace_seconds)

    async def finish_trailing(self, grace_seconds: float = 10) -> None:
        """Waits (up to `grace_seconds`) for the tasks jobs left behind (`hold_stop_for`)."""
        if self._trailing:
            await asyncio.wait(list(self._trailing), timeout=grace_seconds)

    async def _wake_consumers_once_told(self, worker: dramatiq.Worker) -> None:
        """dramatiq tells the consumers to stop only once the running jobs are done; from that
        moment their blocking reads are ended (`WakingRedisBroker.wake_to_stop`)."""
        if not isinstance(self.broker, WakingRedisBroker):
            return  # the in-memory consumers' bound is short (transport.py)
        consumers = list(worker.consumers.values())
        # dramatiq has no hook between telling its consumers to stop and joining them, so this
        # looks, only while a stop is under way.
        while any(consumer.running for consumer in consumers):  # noqa: ASYNC110
            await anyio.sleep(STOP_CHECK_SECONDS)
        broker = self.broker
        names = [consumer.queue_name for consumer in consumers]
        with contextlib.suppress(redis.RedisError):  # then they stop at the bound instead
            await anyio.to_thread.run_sync(lambda: broker.wake_to_stop(names))

    async def aclose(self) -> None:
        if self.async_redis is not None:
            await self.async_redis.aclose()

    def close(self) -> None:
        self.broker.close()

    # --- observing -----------------------------------------------------------------------

    def queue_names(self) -> list[str]:
        return sorted(q for q in self.broker.get_declared_queues() if not q.endswith(".DQ"))

    def depths(self) -> dict[str, dict[str, int]]:
        """Per queue: waiting, delayed, in flight and failed (dead-lettered by the broker)."""
        if isinstance(self.broker, RedisBroker):
            client, namespace = self.broker.client, self.broker.namespace
            return {q: redis_depth(client, q, namespace) for q in self.queue_names()}
        stub = self.broker
        assert isinstance(stub, StubBroker)
        return {
            q: {
                "waiting": stub.queues[q].qsize(),
                "delayed": stub.queues[dq_name(q)].qsize(),
                "in_flight": self._in_flight,
                "failed": len(stub.dead_letters_by_queue[q]),
            }
            for q in self.queue_names()
        }

    def drop_dead_letters(self, older_than: timedelta) -> int:
        """Removes the broker's own dead letters older than `older_than`; returns how many.
        (They expire by themselves after a week; the rows in `dead_jobs` are what we keep.)"""
        cutoff_ms = int((time.time() - older_than.total_seconds()) * 1000)
        if isinstance(self.broker, StubBroker):
            dropped = 0
            for messages in self.broker.dead_letters_by_queue.values():
                keep = [m for m in messages if m.message_timestamp > cutoff_ms]
                dropped += len(messages) - len(keep)
                messages[:] = keep
            return dropped
        assert isinstance(self.broker, RedisBroker)
        client, prefix, dropped = self.broker.client, f"{self.broker.namespace}:", 0
        for queue in self.queue_names():
            dead_key = f"{prefix}{queue}.XQ"
            ids = client.zrangebyscore(dead_key, 0, cutoff_ms)
            if ids:
                client.zrem(dead_key, *ids)
                client.hdel(f"{dead_key}.msgs", *ids)
                dropped += len(ids)
        return dropped
