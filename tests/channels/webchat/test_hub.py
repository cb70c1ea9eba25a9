"""A visitor's feed in one process (embedded hub, no Redis): an idle feed holds no queue or
task; news is pushed in order by a task that lives only while there is news; a long-poll
wakes for news or times out; a feed that falls behind keeps the newest."""

from __future__ import annotations

import asyncio
from typing import Any

from botplatform.channels.webchat.hub import QUEUE_SIZE, VisitorHub


async def test_pushes_in_order_and_holds_nothing_when_idle() -> None:
    hub = VisitorHub()
    pushed: list[dict[str, Any]] = []

    async def push(payload: dict[str, Any]) -> None:
        await asyncio.sleep(0)  # a send that yields, as a socket's does
        pushed.append(payload)

    async with hub.subscribe("ch", "v:1") as feed:
        await hub.publish("ch", "v:1", {"n": 0})  # before the socket pushes: kept for it
        await hub.publish("ch", "v:2", {"n": -1})  # another visitor's
        feed.push_to(push)
        for n in range(1, 4):
            await hub.publish("ch", "v:1", {"n": n})
        for _ in range(20):
            await asyncio.sleep(0)
        assert [p["n"] for p in pushed] == [0, 1, 2, 3]
        assert feed._pushing is None and feed._pending is None  # idle again: nothing held
        assert hub.held == 1
    assert hub.held == 0


async def test_long_poll_wakes_times_out_and_keeps_the_newest() -> None:
    hub = VisitorHub()
    async with hub.subscribe("ch", "v:1") as feed:
        assert await feed.wait(0.01) is None
        waiting = asyncio.create_task(feed.wait(5))
        await asyncio.sleep(0)
        await hub.publish("ch", "v:1", {"n": 1})
        assert await waiting == {"n": 1}
        for n in range(QUEUE_SIZE + 5):
            await hub.publish("ch", "v:1", {"n": n})
        assert await feed.wait(0) == {"n": 5}  # the oldest five were dropped
