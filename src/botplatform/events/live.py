"""Live events to dashboards: one hub per process.

With Redis, an event is PUBLISHed on the workspace's channel and every app process listens
(one pattern subscription per process, opened when its first socket subscribes), so a socket
held by any process sees events produced by any other process or worker. Embedded, the hub
hands events to the local sockets directly.

Nothing is published for a workspace nobody watches (most of them, most of the time: the
message path would otherwise pay a Redis round trip per unit of work for no one). A process
holding sockets of a workspace keeps a presence key alive in Redis (`LISTENING_PREFIX`,
refreshed well within its expiry); a producer asks for it once and keeps the answer for
`PRESENCE_TTL_SECONDS`. A socket's first subscription in a process also tells every other
process at once, through the shared cache's invalidation channel (`PRESENCE_KIND`), so an
answer "nobody" kept elsewhere is dropped before the next event; where that channel is down,
producers keep no such answer and publish every event as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
import weakref
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis

from botplatform.kit import pubsub
from botplatform.kit.logging import get_logger
from botplatform.kit.shared_cache import SharedCache

log = get_logger("botplatform.live")
CHANNEL_PREFIX = "botplatform:live:"
LISTENING_PREFIX = "botplatform:live-listening:"
#: The presence key lives this long unless refreshed; it is refreshed every third of it.
LISTENING_EXPIRY_SECONDS = 60
#: How long a producer keeps "watched / not watched" for a workspace.
PRESENCE_TTL_SECONDS = 30.0
#: The shared cache's kind for "a workspace has a new watcher" (`kit.shared_cache`).
PRESENCE_KIND = "live_presence"
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
    def __init__(self, redis_url: str = "", cache: SharedCache | None = None) -> None:
        self.redis_url = redis_url
        self._cache = cache
        self._subscribers: dict[uuid.UUID, set[Subscription]] = {}
        self._watched: dict[uuid.UUID, tuple[float, bool]] = {}  # producer side
        self._presence: dict[uuid.UUID, asyncio.Task[None]] = {}  # holder side
        self._listener = pubsub.PatternListener(
            redis_url, f"{CHANNEL_PREFIX}*", self._receive, "live_listener_lost"
        )
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
            if not await self._is_watched(client, workspace_id):
                return
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

    async def watched(self, workspace_id: uuid.UUID) -> bool:
        """Does a socket watch this workspace (here, or in any process)? True when unsure."""
        if not self.redis_url:
            return bool(self._subscribers.get(workspace_id))
        try:
            return await self._is_watched(self._publisher(), workspace_id)
        except Exception:
            return True

    async def _is_watched(self, client: aioredis.Redis, workspace_id: uuid.UUID) -> bool:
        now = time.monotonic()
        known = self._watched.get(workspace_id)
        if known is not None and known[0] > now and self._cache and self._cache.listening:
            return known[1]
        watched = bool(await client.exists(f"{LISTENING_PREFIX}{workspace_id}"))
        if self._cache is not None and self._cache.listening:  # else: asked every time
            if len(self._watched) > 10_000:
                self._watched.clear()
            self._watched[workspace_id] = (now + PRESENCE_TTL_SECONDS, watched)
        return watched

    def forget_presence(self, workspace_id: uuid.UUID | None, key: str | None = None) -> None:
        """A new watcher somewhere (the shared cache's drop of `PRESENCE_KIND`)."""
        if workspace_id is None:
            self._watched.clear()
        else:
            self._watched.pop(workspace_id, None)

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
                await self._announce(workspace_id)
            yield subscription
        finally:
            subscribers = self._subscribers.get(workspace_id)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscribers[workspace_id]
                    presence = self._presence.pop(workspace_id, None)
                    if presence is not None:
                        presence.cancel()  # the key expires by itself

    async def _announce(self, workspace_id: uuid.UUID) -> None:
        """Marks the workspace watched (before the socket is told it is subscribed) and keeps
        it marked while this process holds a socket of it."""
        task = self._presence.get(workspace_id)
        if task is not None and not task.done():
            return
        key = f"{LISTENING_PREFIX}{workspace_id}"
        await self._publisher().set(key, b"1", ex=LISTENING_EXPIRY_SECONDS)
        if self._cache is not None:
            self._cache.invalidate([(PRESENCE_KIND, workspace_id, None)])
        self._presence[workspace_id] = asyncio.create_task(self._keep_present(key))

    async def _keep_present(self, key: str) -> None:
        while True:
            await asyncio.sleep(LISTENING_EXPIRY_SECONDS / 3)
            with contextlib.suppress(Exception):  # a later round retries; the key outlives one
                await self._publisher().set(key, b"1", ex=LISTENING_EXPIRY_SECONDS)

    def _dispatch(self, workspace_id: uuid.UUID, payload: dict[str, Any]) -> None:
        for subscription in list(self._subscribers.get(workspace_id, ())):
            subscription.put(payload)

    async def _ensure_listener(self) -> None:
        """One pattern subscription for the whole process; reconnects after Redis drops."""
        await self._listener.ensure()

    def _receive(self, message: dict[str, Any]) -> None:
        decoded = pubsub.decode(message, CHANNEL_PREFIX)
        if decoded is None:
            return
        try:
            workspace_id = uuid.UUID(decoded[0])
        except ValueError:
            return
        self._dispatch(workspace_id, decoded[1])

    async def close(self) -> None:
        for presence in self._presence.values():
            presence.cancel()
        await self._listener.stop()
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
        loop = asyncio.get_running_loop()
        client = self._publishers.pop(loop, None)
        if client is not None:
            await client.aclose()
