"""Live events to dashboards: one hub per process.

With Redis, an event is PUBLISHed on the workspace's channel and every app process listens
(one pattern subscription per process, opened when its first socket subscribes), so a socket
held by any process sees events produced by any other process or worker. Embedded, the hub
hands events to the local sockets directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
import weakref
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis

from botplatform.kit.logging import get_logger

log = get_logger("botplatform.live")
CHANNEL_PREFIX = "botplatform:live:"
QUEUE_SIZE = 1000
#: Key of the process's hub in every database session's `info` (set by Runtime.create).
LIVE_HUB = "live_hub"


class Subscription:
    """The events of one workspace, for one socket. A socket that falls QUEUE_SIZE events
    behind is told so and closed rather than slowing everyone else down."""

    def __init__(self, workspace_id: uuid.UUID) -> None:
        self.workspace_id = workspace_id
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_SIZE)
        self.overflowed = False

    def put(self, payload: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(payload)
        except asyncio.QueueFull:
            self.overflowed = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(None)


class LiveHub:
    def __init__(self, redis_url: str = "") -> None:
        self.redis_url = redis_url
        self._subscribers: dict[uuid.UUID, set[Subscription]] = {}
        self._listener: asyncio.Task[None] | None = None
        # redis.asyncio clients belong to the loop that made them (the app's loop, or a
        # worker's job loop): one publisher per loop.
        self._publishers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
            weakref.WeakKeyDictionary()
        )
        self._tasks: set[asyncio.Task[None]] = set()

    # --- producing ----------------------------------------------------------------------

    async def publish(self, workspace_id: uuid.UUID, payloads: list[dict[str, Any]]) -> None:
        if not self.redis_url:
            for payload in payloads:
                self._dispatch(workspace_id, payload)
            return
        client = self._publisher()
        channel = f"{CHANNEL_PREFIX}{workspace_id}"
        try:
            # One round trip for a unit of work's events, however many (a batch has many).
            async with client.pipeline(transaction=False) as pipe:
                for payload in payloads:
                    pipe.publish(channel, json.dumps(payload))
                await pipe.execute()
        except Exception:  # live updates are best effort; webhooks carry the durable copy
            log.warning("live_publish_failed", workspace_id=str(workspace_id))

    def publish_soon(self, workspace_id: uuid.UUID, payloads: list[dict[str, Any]]) -> None:
        """From synchronous code on a running loop (an after-commit callback)."""
        task = asyncio.get_running_loop().create_task(self.publish(workspace_id, payloads))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _publisher(self) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        client = self._publishers.get(loop)
        if client is None:
            client = aioredis.Redis.from_url(self.redis_url)
            self._publishers[loop] = client
        return client

    # --- consuming ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def subscribe(self, workspace_id: uuid.UUID) -> AsyncIterator[Subscription]:
        subscription = Subscription(workspace_id)
        self._subscribers.setdefault(workspace_id, set()).add(subscription)
        try:
            if self.redis_url:
                await self._ensure_listener()
            yield subscription
        finally:
            subscribers = self._subscribers.get(workspace_id)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscribers[workspace_id]

    def _dispatch(self, workspace_id: uuid.UUID, payload: dict[str, Any]) -> None:
        for subscription in list(self._subscribers.get(workspace_id, ())):
            subscription.put(payload)

    async def _ensure_listener(self) -> None:
        if self._listener is not None and not self._listener.done():
            return
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._listener = asyncio.create_task(self._listen(ready))
        await asyncio.wait_for(asyncio.shield(ready), timeout=10)

    async def _listen(self, ready: asyncio.Future[None]) -> None:
        """One pattern subscription for the whole process; reconnects after Redis drops."""
        while True:
            client = aioredis.Redis.from_url(self.redis_url)
            pubsub = client.pubsub()
            try:
                await pubsub.psubscribe(f"{CHANNEL_PREFIX}*")
                if not ready.done():
                    ready.set_result(None)
                async for message in pubsub.listen():
                    if message.get("type") == "pmessage":
                        self._receive(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("live_listener_lost")
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                    await client.aclose()

    def _receive(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        try:
            workspace_id = uuid.UUID(name.removeprefix(CHANNEL_PREFIX))
            payload = json.loads(message["data"])
        except (ValueError, TypeError):
            return
        self._dispatch(workspace_id, payload)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
        loop = asyncio.get_running_loop()
        client = self._publishers.pop(loop, None)
        if client is not None:
            await client.aclose()
