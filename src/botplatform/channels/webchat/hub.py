"""Visitor sockets across processes: what the platform says to one visitor (a reply, a
typing indicator, "seen") is PUBLISHed on the visitor's Redis channel; every app process
holds one pattern subscription and hands it to the sockets and long-polls it holds for that
visitor. Embedded (no Redis), the one process hands it over directly. As for the live inbox
(`events.live`), this is the transport only: the rows stay the truth, and a visitor who
missed a push reads it from the history."""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis

from botplatform.kit import pubsub

CHANNEL_PREFIX = "botplatform:webchat:"
QUEUE_SIZE = 200


def _key(channel_id: str, visitor: str) -> str:
    return f"{channel_id}/{visitor}"


class VisitorFeed:
    """What one socket or long-poll of a visitor receives. A feed that falls behind drops
    its oldest news: the client reads the history again on its next turn."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self.loop = asyncio.get_running_loop()

    def put(self, payload: dict[str, Any]) -> None:
        if asyncio.get_running_loop() is not self.loop:  # pragma: no cover - other thread
            self.loop.call_soon_threadsafe(self._put, payload)
        else:
            self._put(payload)

    def _put(self, payload: dict[str, Any]) -> None:
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
        self.queue.put_nowait(payload)


class VisitorHub:
    def __init__(self, redis_url: str = "") -> None:
        self.redis_url = redis_url
        self._feeds: dict[str, set[VisitorFeed]] = {}
        self._listener: asyncio.Task[None] | None = None
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

    def _dispatch(self, key: str, payload: dict[str, Any]) -> None:
        for feed in list(self._feeds.get(key, ())):
            feed.put(payload)

    async def _ensure_listener(self) -> None:
        self._listener = await pubsub.ensure_listener(
            self._listener, self.redis_url, f"{CHANNEL_PREFIX}*", self._receive,
            "webchat_listener_lost",
        )  # fmt: skip

    def _receive(self, message: dict[str, Any]) -> None:
        decoded = pubsub.decode(message, CHANNEL_PREFIX)
        if decoded is not None and isinstance(decoded[1], dict):
            self._dispatch(*decoded)

    async def close(self) -> None:
        await pubsub.stop(self._listener)
        self._listener = None
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
