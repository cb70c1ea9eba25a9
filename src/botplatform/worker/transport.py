"""How jobs travel: dramatiq's brokers with consumers that block instead of polling.

Dramatiq's Redis consumer polls: an empty fetch sleeps a growing pause (capped by the worker
timeout) and fetches again, so an idle worker burns CPU on polls and a job waits out the pause.
Here every enqueue also pushes a token onto the queue's wake-up list in the same round trip
(`RPUSH` pipelined with dramatiq's own `dispatch` script), and a consumer whose fetch came back
empty blocks on that list (`BLPOP`) instead of sleeping: a job wakes it at once, and an idle
worker sleeps in the kernel. Messages, acks, retries, delays, dead letters and the Lua dispatch
are dramatiq's, untouched.

The block is bounded, so the consumer still checks in: at most `idle_wait_ms` (kept well under
the heartbeat timeout, since every dispatch refreshes this worker's heartbeat), and never past
the eta of the earliest delayed message its thread holds, so delays and retry backoffs fire on
time. Queue maintenance (re-queueing a dead worker's messages, expiring dead letters) is left to
chance per dispatch by dramatiq; with far fewer dispatches, each consumer also forces it every
half heartbeat timeout, so a crashed worker's jobs still come back within about 1.5 timeouts.

A stopping worker does not wait out the bound: each consumer also blocks on a list of its own,
which `wake_to_stop` pushes to once dramatiq has told the consumers to stop (a token on the
shared wake-up list could be taken by another process's consumer instead).

The in-memory broker (embedded mode) already blocks on its queues; a wake there costs no round
trip, so its bound stays at most `STUB_IDLE_WAIT_MS_MAX`, which also bounds how long it takes
to stop.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from queue import Empty, PriorityQueue
from typing import Any

import dramatiq
import redis
import redis.asyncio
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.brokers.stub import StubBroker, _StubConsumer, _StubMessageProxy
from dramatiq.common import current_millis, dq_name
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message

#: Redis times out a blocked client on its own clock tick (`hz`, 10 a second by default), so a
#: BLPOP may return up to a tick late: fine for the idle bound, not for a delayed job's eta.
REDIS_TICK_SECONDS = 0.1

#: The in-memory consumers' bound (see the module's docstring).
STUB_IDLE_WAIT_MS_MAX = 1000

#: How long a stop token outlives a consumer that never read it (a process killed meanwhile).
STOP_TOKEN_TTL_SECONDS = 30

#: Tokens a wake-up list keeps at most: enough to wake every consumer of a burst, bounded so a
#: queue nobody consumes does not grow a list (a stale token costs one empty fetch).
WAKE_TOKENS_MAX = 64


def _earliest_eta(thread: threading.Thread) -> int | None:
    """The eta (ms) of the first delayed message that dramatiq's consumer thread holds in
    memory, waiting to promote it; None when it holds none (or is no consumer thread)."""
    delayed: PriorityQueue[Any] | None = getattr(thread, "delay_queue", None)
    if delayed is None:
        return None
    with delayed.mutex:
        return int(delayed.queue[0].priority) if delayed.queue else None


def _wait_seconds(idle_wait_ms: int, thread: threading.Thread) -> float:
    """How long an idle consumer may block: the idle bound, or until the next eta is due."""
    wait_ms = idle_wait_ms
    eta = _earliest_eta(thread)
    if eta is not None:
        wait_ms = min(wait_ms, max(eta - current_millis(), 0))
    return wait_ms / 1000


class WakingRedisBroker(RedisBroker):
    """Dramatiq's Redis broker whose enqueues wake a blocked consumer, plus `enqueue_many`: a
    transaction's jobs reach Redis in one round trip instead of one per job (a group of
    webhooks queues dozens at once)."""

    def __init__(self, *, idle_wait_ms: int, **options: Any) -> None:
        super().__init__(**options)  # type: ignore[no-untyped-call]
        # Every dispatch refreshes this worker's heartbeat; an idle consumer dispatches once
        # per wait, so the wait stays a fraction of the timeout after which others requeue
        # this worker's messages.
        self.idle_wait_ms = max(1, min(idle_wait_ms, self.heartbeat_timeout // 4))
        self.maintenance_every_ms = max(1, self.heartbeat_timeout // 2)

    def wake_key(self, queue_name: str) -> str:
        return f"{self.namespace}:__wake__.{queue_name}"

    def stop_key(self, queue_name: str) -> str:
        """The list only this process's consumer of `queue_name` blocks on, besides the
        queue's shared wake-up list."""
        return f"{self.namespace}:__stop__.{self.broker_id}.{queue_name}"

    def wake_to_stop(self, queue_names: list[str]) -> None:
        """Ends the blocking reads of this process's consumers, which have been told to stop,
        so that stopping takes a job's time rather than the idle bound."""
        with self.client.pipeline(transaction=False) as pipeline:
            for queue_name in queue_names:
                key = self.stop_key(queue_name)
                pipeline.rpush(key, "1")
                pipeline.expire(key, STOP_TOKEN_TTL_SECONDS)
            pipeline.execute()

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Any:
        # Called by dramatiq's consumer thread, whose in-memory delay queue bounds the wait.
        return _BlockingRedisConsumer(self, queue_name, prefetch, threading.current_thread())

    def dispatch_args(
        self, command: str, queue_name: str, *args: Any, maintenance: bool | None = None
    ) -> list[Any]:
        """The arguments of dramatiq's `dispatch` script, as `RedisBroker._dispatch` builds
        them; `maintenance` forces (or skips) queue maintenance instead of leaving it to
        chance."""
        do_maintenance = (
            self._should_do_maintenance(command) if maintenance is None else int(maintenance)
        )
        return [
            command,
            current_millis(),
            queue_name,
            self.broker_id,
            self.heartbeat_timeout,
            self.dead_message_ttl,
            do_maintenance,
            self._max_unpack_size(),  # type: ignore[no-untyped-call]
            *args,
        ]

    def _wake(self, pipeline: Any, queue_name: str, count: int) -> None:
        key = self.wake_key(queue_name)
        pipeline.rpush(key, *["1"] * min(count, WAKE_TOKENS_MAX))
        pipeline.ltrim(key, -WAKE_TOKENS_MAX, -1)

    def do_enqueue(self, queue_name: str, message_id: str, data: bytes) -> None:
        """`RedisBroker.enqueue`'s last step (also a retry, a delayed message's promotion and
        a requeue by `retry-dead`), with the wake-up in the same round trip."""
        with self.client.pipeline(transaction=False) as pipeline:
            args = self.dispatch_args("enqueue", queue_name, message_id, data)
            self.scripts["dispatch"](keys=[self.namespace], args=args, client=pipeline)
            self._wake(pipeline, queue_name, 1)
            pipeline.execute()

    def do_requeue(self, queue_name: str, *message_ids: str) -> None:
        """Puts a stopping worker's unstarted messages back, waking another worker for them."""
        with self.client.pipeline(transaction=False) as pipeline:
            args = self.dispatch_args("requeue", queue_name, *message_ids)
            self.scripts["dispatch"](keys=[self.namespace], args=args, client=pipeline)
            self._wake(pipeline, queue_name, len(message_ids))
            pipeline.execute()

    def enqueue_many(self, batch: list[tuple[dramatiq.Message[Any], int | None]]) -> None:
        """Each message is prepared exactly as `RedisBroker.enqueue` does (its own redis
        message id, the delay queue and eta, the middleware hooks) and goes through the same
        `dispatch` script, so consumers see nothing different."""
        prepared = [self._prepare(message, delay) for message, delay in batch]
        for message, delay in prepared:
            self.emit_before("enqueue", message, delay)
        dispatch = self.scripts["dispatch"]
        with self.client.pipeline(transaction=False) as pipeline:
            for message, _ in prepared:
                args = self.dispatch_args(
                    "enqueue",
                    message.queue_name,
                    message.options["redis_message_id"],
                    message.encode(),
                )
                dispatch(keys=[self.namespace], args=args, client=pipeline)
            for queue_name, count in Counter(m.queue_name for m, _ in prepared).items():
                self._wake(pipeline, queue_name, count)
            pipeline.execute()
        for message, delay in prepared:
            self.emit_after("enqueue", message, delay)

    async def enqueue_many_async(
        self,
        client: redis.asyncio.Redis,
        batch: list[tuple[dramatiq.Message[Any], int | None]],
    ) -> None:
        """`enqueue_many` on the event loop, through an asyncio client: no thread hand-off,
        and one round trip, since the script is called by its hash (redis-py's pipelined
        `Script` first asks whether the script is loaded, a second round trip each time)."""
        prepared = [self._prepare(message, delay) for message, delay in batch]
        for message, delay in prepared:
            self.emit_before("enqueue", message, delay)
        calls = [
            self.dispatch_args(
                "enqueue",
                message.queue_name,
                message.options["redis_message_id"],
                message.encode(),
            )
            for message, _ in prepared
        ]
        wakes = Counter(message.queue_name for message, _ in prepared)
        missing = await self._dispatch_async(client, calls, wakes)
        if missing:  # Redis restarted (or its scripts were flushed) since the last load
            await client.script_load(self.scripts["dispatch"].script)
            await self._dispatch_async(client, missing, Counter(), retry=False)
        for message, delay in prepared:
            self.emit_after("enqueue", message, delay)

    async def _dispatch_async(
        self,
        client: redis.asyncio.Redis,
        calls: list[list[Any]],
        wakes: Counter[str],
        *,
        retry: bool = True,
    ) -> list[list[Any]]:
        """Runs the dispatch script once per call and the wake-ups, pipelined; the calls that
        met a Redis without the script (when `retry`), to be sent again once it is loaded."""
        sha = self.scripts["dispatch"].sha
        async with client.pipeline(transaction=False) as pipeline:
            for args in calls:
                pipeline.evalsha(sha, 1, self.namespace, *args)
            for queue_name, count in wakes.items():
                self._wake(pipeline, queue_name, count)
            results = await pipeline.execute(raise_on_error=False)
        missing = []
        for args, result in zip(calls, results, strict=False):
            if retry and isinstance(result, redis.exceptions.NoScriptError):
                missing.append(args)
            elif isinstance(result, Exception):
                raise result
        for result in results[len(calls) :]:
            if isinstance(result, Exception):
                raise result
        return missing

    @staticmethod
    def _prepare(
        message: dramatiq.Message[Any], delay: int | None
    ) -> tuple[dramatiq.Message[Any], int | None]:
        options: dict[str, Any] = {"redis_message_id": str(uuid.uuid4())}
        if delay is None:
            return message.copy(options=options), None
        options["eta"] = current_millis() + delay
        return message.copy(queue_name=dq_name(message.queue_name), options=options), delay


class _BlockingRedisConsumer(_RedisConsumer):
    """Fetches up to its free prefetch slots per dispatch; when the queue is empty it blocks
    on the wake-up list, and when every slot is taken it waits for an ack, never polling."""

    def __init__(
        self, broker: WakingRedisBroker, queue_name: str, prefetch: int, thread: threading.Thread
    ) -> None:
        super().__init__(broker, queue_name, prefetch, broker.idle_wait_ms)  # type: ignore[no-untyped-call]
        self.waking_broker = broker
        self.thread = thread
        self.wake_keys = [broker.wake_key(queue_name), broker.stop_key(queue_name)]
        self.slot_freed = threading.Event()
        # A random start spreads the forced maintenance of many consumers over time.
        spread = random.random() * broker.maintenance_every_ms / 1000  # noqa: S311 - not a secret
        self.maintained_at = time.monotonic() - spread

    def ack(self, message: MessageProxy) -> None:
        try:
            super().ack(message)  # type: ignore[no-untyped-call]
        finally:
            self.slot_freed.set()

    def nack(self, message: MessageProxy) -> None:
        try:
            super().nack(message)  # type: ignore[no-untyped-call]
        finally:
            self.slot_freed.set()

    def __next__(self) -> MessageProxy | None:
        try:
            if not self.message_cache:
                free = self.prefetch - self.outstanding_message_count
                if free <= 0:
                    self._wait_for_a_slot()
                    return None
                self.message_cache = self._fetch(free)
                if not self.message_cache:
                    self._block()
                    return None  # dramatiq's thread promotes due delayed messages, checks stop
            message = Message.decode(self.message_cache.pop(0))
            self.queued_message_ids.add(message.message_id)
            return MessageProxy(message)
        except redis.ConnectionError as error:
            raise ConnectionClosed(error) from None  # type: ignore[no-untyped-call]

    def _fetch(self, count: int) -> list[bytes]:
        broker = self.waking_broker
        now = time.monotonic()
        maintain = None
        if (now - self.maintained_at) * 1000 >= broker.maintenance_every_ms:
            maintain, self.maintained_at = True, now
        args = broker.dispatch_args("fetch", self.queue_name, count, maintenance=maintain)
        fetched: list[bytes] = broker.scripts["dispatch"](keys=[broker.namespace], args=args)
        return [data for data in fetched if data is not None]

    def _block(self) -> None:
        idle_wait = self.waking_broker.idle_wait_ms / 1000
        wait = _wait_seconds(self.waking_broker.idle_wait_ms, self.thread)
        if wait < 0.001:  # due now (and BLPOP's 0 would mean "forever")
            return
        if wait < idle_wait:  # bounded by a delayed message's eta, which Redis cannot time
            if wait <= 2 * REDIS_TICK_SECONDS:
                time.sleep(wait)  # the last moment before the eta, timed on our clock
                return
            wait -= 1.5 * REDIS_TICK_SECONDS  # ends before the eta; the rest as above
        self.waking_broker.client.blpop(self.wake_keys, timeout=wait)

    def _wait_for_a_slot(self) -> None:
        self.slot_freed.clear()
        if self.outstanding_message_count < self.prefetch:
            return  # an ack landed between the check and the clear
        wait = _wait_seconds(self.waking_broker.idle_wait_ms, self.thread)
        if not self.slot_freed.wait(wait):
            # Long jobs hold every slot: no fetch refreshes the heartbeat, so do it here.
            heartbeats = f"{self.waking_broker.namespace}:__heartbeats__"
            self.waking_broker.client.zadd(
                heartbeats, {self.waking_broker.broker_id: current_millis()}
            )


class WaitingStubBroker(StubBroker):
    """The in-memory broker (embedded mode): its consumers block on the in-memory queues, at
    most `idle_wait_ms` and never past the next delayed message's eta."""

    def __init__(self, *, idle_wait_ms: int, **options: Any) -> None:
        super().__init__(**options)
        self.idle_wait_ms = min(idle_wait_ms, STUB_IDLE_WAIT_MS_MAX)

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 100) -> Any:
        try:
            queue = self.queues[queue_name]
            dead_letters = self.dead_letters_by_queue[queue_name]
        except KeyError:
            raise dramatiq.errors.QueueNotFound(queue_name) from None  # type: ignore[no-untyped-call]
        return _WaitingStubConsumer(
            queue, dead_letters, prefetch, self.idle_wait_ms, threading.current_thread()
        )


class _WaitingStubConsumer(_StubConsumer):
    def __init__(
        self,
        queue: Any,
        dead_letters: Any,
        prefetch: int,
        idle_wait_ms: int,
        thread: threading.Thread,
    ) -> None:
        super().__init__(queue, dead_letters, prefetch, idle_wait_ms)  # type: ignore[no-untyped-call]
        self.idle_wait_ms = idle_wait_ms
        self.thread = thread

    def __next__(self) -> MessageProxy | None:
        wait = _wait_seconds(self.idle_wait_ms, self.thread)
        if not self.prefetch_semaphore.acquire(timeout=wait):
            return None
        try:
            data = self.queue.get(timeout=_wait_seconds(self.idle_wait_ms, self.thread))
        except Empty:
            self.prefetch_semaphore.release()
            return None
        return _StubMessageProxy(Message.decode(data))
