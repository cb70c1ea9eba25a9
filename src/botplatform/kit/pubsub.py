"""One Redis pattern subscription per process, kept open across Redis restarts: the live
inbox (`events.live`) and the widget's visitor sockets (`channels.webchat.hub`) both fan
their events out to every app process this way."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from botplatform.kit.logging import get_logger

log = get_logger("botplatform.pubsub")


async def listen_pattern(
    redis_url: str,
    pattern: str,
    receive: Callable[[dict[str, Any]], None],
    ready: asyncio.Future[None],
    lost_event: str,
) -> None:
    """Hands every `pmessage` of `pattern` to `receive`; `ready` is set once subscribed.
    Reconnects a second after Redis drops; runs until cancelled."""
    while True:
        client = aioredis.Redis.from_url(redis_url)
        pubsub = client.pubsub()
        try:
            await pubsub.psubscribe(pattern)
            if not ready.done():
                ready.set_result(None)
            async for message in pubsub.listen():
                if message.get("type") == "pmessage":
                    receive(message)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning(lost_event)
            await asyncio.sleep(1)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                await client.aclose()


async def stop(listener: asyncio.Task[None] | None) -> None:
    """Cancels a listener task and waits for it to end."""
    if listener is not None:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await listener


async def ensure_listener(
    task: asyncio.Task[None] | None,
    redis_url: str,
    pattern: str,
    receive: Callable[[dict[str, Any]], None],
    lost_event: str,
) -> asyncio.Task[None]:
    """`task` if it still listens, else a new listener, returned once it is subscribed (so
    nothing published after this returns is missed)."""
    if task is not None and not task.done():
        return task
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(listen_pattern(redis_url, pattern, receive, ready, lost_event))
    await asyncio.wait_for(asyncio.shield(ready), timeout=10)
    return task


def decode(message: dict[str, Any], prefix: str) -> tuple[str, Any] | None:
    """A pmessage's channel name without `prefix`, and its JSON data; None if not JSON."""
    channel = message["channel"]
    name = channel.decode() if isinstance(channel, bytes) else str(channel)
    try:
        return name.removeprefix(prefix), json.loads(message["data"])
    except (ValueError, TypeError):
        return None
