"""The one Redis pattern listener of a hub: a burst of subscribers arriving while it is still
subscribing share it (each used to start its own, and 200 sockets opening at once held 200
subscriptions, each handing every message over again)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from botplatform.kit import pubsub


async def test_a_burst_of_subscribers_starts_one_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []

    async def listen(
        url: str, pattern: str, receive: Any, ready: asyncio.Future[None], lost: str
    ) -> None:
        started.append(pattern)
        await asyncio.sleep(0.01)  # subscribing
        ready.set_result(None)
        await asyncio.Event().wait()

    monkeypatch.setattr(pubsub, "listen_pattern", listen)
    listener = pubsub.PatternListener("redis://unused", "hub:*", lambda message: None, "lost")
    await asyncio.gather(*(listener.ensure() for _ in range(50)))
    await listener.ensure()
    assert started == ["hub:*"]
    await listener.stop()
    await listener.ensure()  # stopped, then needed again: a new one
    assert started == ["hub:*", "hub:*"]
    await listener.stop()
