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


class PatternListener:
    """The one listener of a hub: started by the first subscriber, shared by every other,
    including those that arrive while it is still subscribing (a burst of sockets opening at
    once must not start one Redis subscription each)."""

    def __init__(
        self,
        redis_url: str,
        pattern: str,
        receive: Callable[[dict[str, Any]], None],
        lost_event: str,
    ) -> None:
        self.redis_url, self.pattern = redis_url, pattern
        self.receive, self.lost_event = receive, lost_event
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None

    async def ensure(self) -> None:
        """Returns once the listener is subscribed (so nothing published after this returns
        is missed); starts it if it is not running."""
        if self._task is None or self._task.done() or self._ready is None:
            self._ready = asyncio.get_running_loop().create_future()
            self._task = asyncio.create_task(
                listen_pattern(
                    self.redis_url, self.pattern, self.receive, self._ready, self.lost_event
                )
            )
        await asyncio.wait_for(asyncio.shield(self._ready), timeout=10)

    async def stop(self) -> None:
        """Cancels the listener and waits for it to end."""
        task, self._task, self._ready = self._task, None, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def decode(message: dict[str, Any], prefix: str) -> tuple[str, Any] | None:
    """A pmessage's channel name without `prefix`, and its JSON data; None if not JSON."""
    channel = message["channel"]
    name = channel.decode() if isinstance(channel, bytes) else str(channel)
    try:
        return name.removeprefix(prefix), json.loads(message["data"])
    except (ValueError, TypeError):
        return None
