"""Visitor sockets across processes: what the platform says to one visitor (a reply, a
typing indicator, "seen") is PUBLISHed on the visitor's Redis channel; every app process
holds one pattern subscription and hands it to the sockets and long-polls it holds for that
visitor. Embedded (no Redis), the one process hands it over directly. As for the live inbox
(`events.live`), this is the transport only: the rows stay the truth, and a visitor who
missed a push reads it from the history."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from botplatform.kit import pubsub

CHANNEL_PREFIX = "botplatform:webchat:"
QUEUE_SIZE = 200


def _key(channel_id: str, visitor: str) -> str:
    return f"{channel_id}/{visitor}"


class VisitorFeed:
    """What one socket or long-poll of a visitor receives. An idle feed is a few hundred
    bytes: no queue and no task of its own (10,000 idle sockets per process is the target,
    docs/decisions.md). A socket's feed, once `push_to` is called, pushes in a task that
    lives only while there is news to send; a long-poll's feed wakes its `wait`. A feed
    that falls behind drops its oldest news: the client reads the history again on its next
    turn."""

    __slots__ = ("_pending", "_push", "_pushing", "_waiter", "loop")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._push: Callable[[dict[str, Any]], Awaitable[None]] | None = None
        self._pending: collections.deque[dict[str, Any]] | None = None
        self._pushing: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def put(self, payload: dict[str, Any]) -> None:
        if asyncio.get_running_loop() is not self.loop:  # pragma: no cover - other thread
            self.loop.call_soon_threadsafe(self._put, payload)
        else:
            self._put(payload)

    def _put(self, payload: dict[str, Any]) -> None:
        if self._pending is None:
            self._pending = collections.deque(maxlen=QUEUE_SIZE)
        self._pending.append(payload)  # a full deque drops its oldest
        if self._push is not None:
            self._start_pushing(self._push)
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def push_to(self, push: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        """From now on every news (and what came meanwhile) is sent through `push`."""
        self._push = push
        if self._pending:
            self._start_pushing(push)

    def _start_pushing(self, push: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if self._pushing is None:
            self._pushing = self.loop.create_task(self._drain(push))

    async def _drain(self, push: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        try:
            while self._pending:
                await push(self._pending.popleft())
        except Exception:  # noqa: S110 - the socket is going away; its reader sees that
            pass
        finally:
            self._pending, self._pushing = None, None

    async def wait(self, seconds: float) -> dict[str, Any] | None:
        """The next news (oldest first), waiting up to `seconds`; None if none came."""
        if not self._pending:
            self._waiter = self.loop.create_future()
            try:
                await asyncio.wait_for(self._waiter, seconds)
            except TimeoutError:
                return None
            finally:
                self._waiter = None
        return self._pending.popleft() if self._pending else None

    async def close(self) -> None:
        """Stops a push in progress (the socket is closing)."""
        pushing, self._pushing = self._pushing, None
        if pushing is not None:
            pushing.cancel()
            with contextlib.suppress(BaseException):
                await pushing


class VisitorHub:
    def __init__(self, redis_url: str = "") -> None:
        self.redis_url = redis_url
        self._feeds: dict[str, set[VisitorFeed]] = {}
        self._listener = pubsub.PatternListener(
            redis_url, f"{CHANNEL_PREFIX}*", self._receive, "webchat_listener_lost"
        )
        self._publishers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def held(self) -> int:
        """Feeds (sockets and long-polls) this process holds."""
        return sum(len(feeds) for feeds in self._feeds.values())

    async def publish(self, channel_id: str, visitor: str, payload: dict[str, Any]) -> None:
        if not self.redis_url:
            self._dispatch(_key(channel_id, visitor), payload)
            return
        loop = asyncio.get_running_loop()
        client = self._publishers.get(loop)
        if client is None:
            client = self._publishers[loop] = aioredis.Redis.from_url(self.redis_url)
        name = f"{CHANNEL_PREFIX}{_key(channel_id, visitor)}"
        await client.publish(name, json.dumps(payload))

    @contextlib.asynccontextmanager
    async def subscribe(self, channel_id: str, visitor: str) -> AsyncIterator[VisitorFeed]:
        """A feed of this visitor's news while the block runs (nothing published after the
        block starts is missed)."""
        key = _key(channel_id, visitor)
        feed = VisitorFeed()
        self._feeds.setdefault(key, set()).add(feed)
        try:
            if self.redis_url:
                await self._ensure_listener()
            yield feed
        finally:
            feeds = self._feeds.get(key)
            if feeds is not None:
                feeds.discard(feed)
                if not feeds:
                    del self._feeds[key]
            await feed.close()

    def _dispatch(self, key: str, payload: dict[str, Any]) -> None:
        for feed in list(self._feeds.get(key, ())):
            feed.put(payload)

    async def _ensure_listener(self) -> None:
        await self._listener.ensure()

    def _receive(self, message: dict[str, Any]) -> None:
        decoded = pubsub.decode(message, CHANNEL_PREFIX)
        if decoded is not None and isinstance(decoded[1], dict):
            self._dispatch(*decoded)

    async def close(self) -> None:
        await self._listener.stop()
        client = self._publishers.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()


#: One hub per process and Redis URL: the adapter (built per send, in a worker or in the app)
#: and the visitor routes must reach the same in-process feeds when embedded.
_HUBS: dict[str, VisitorHub] = {}


def hub_for(redis_url: str) -> VisitorHub:
    hub = _HUBS.get(redis_url)
    if hub is None:
        hub = _HUBS[redis_url] = VisitorHub(redis_url)
    return hub
