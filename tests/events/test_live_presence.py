"""Live events are published only for workspaces someone watches (`events/live.py`): a
producer asks Redis once and keeps the answer, and a socket's first subscription anywhere
makes every producer ask again at once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from botplatform.events.live import CHANNEL_PREFIX, LISTENING_PREFIX, PRESENCE_KIND, LiveHub
from botplatform.kit.shared_cache import SharedCache
from botplatform.runtime import Runtime


@contextlib.asynccontextmanager
async def _hub(url: str) -> AsyncIterator[LiveHub]:
    """A process's hub, wired to its shared cache as `Runtime.create` wires them."""
    cache = SharedCache(url)
    hub = LiveHub(url, cache)
    cache.on_drop(PRESENCE_KIND, hub.forget_presence)
    await cache.start()
    try:
        yield hub
    finally:
        await hub.close()
        await cache.close()


async def _published(pubsub: aioredis.client.PubSub, within: float) -> list[bytes]:
    seen: list[bytes] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
        if message is not None:
            seen.append(message["data"])
    return seen


async def test_nothing_is_published_until_someone_watches_then_at_once(runtime: Runtime) -> None:
    url = runtime.settings.redis_url
    if not url:
        pytest.skip("embedded: events go straight to the process's own sockets")
    ws = uuid.uuid4()
    spy = aioredis.Redis.from_url(url)
    pubsub = spy.pubsub()
    await pubsub.subscribe(f"{CHANNEL_PREFIX}{ws}")
    try:
        async with _hub(url) as producer, _hub(url) as holder:
            await producer.publish(ws, [{"n": 1}])
            assert await _published(pubsub, within=0.3) == []  # nobody watches: not sent

            async with holder.subscribe(ws) as subscription:
                assert await spy.exists(f"{LISTENING_PREFIX}{ws}")
                # The producer kept "nobody" (for 30 s): the subscription's notice drops it.
                received = None
                for n in range(2, 40):
                    await producer.publish(ws, [{"n": n}])
                    with contextlib.suppress(TimeoutError):
                        received = await asyncio.wait_for(subscription.queue.get(), 0.05)
                        break
                assert received is not None and received["n"] < 40
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await spy.aclose()
