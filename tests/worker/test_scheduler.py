"""Two schedulers on one store: exactly one fires each tick, and the other takes over when
the leader stops."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from botplatform.runtime import Runtime
from botplatform.worker.scheduler import Schedule, Scheduler


@pytest.mark.usefixtures("client")
async def test_two_schedulers_fire_once_per_tick(runtime: Runtime) -> None:
    fired: list[tuple[str, str, float]] = []
    every_second = [Schedule("tick", "* * * * * *")]

    def make(name: str) -> Scheduler:
        def fire(job: str) -> None:
            fired.append((name, job, datetime.now(UTC).timestamp()))

        return Scheduler(
            runtime.kv, fire, every_second, lock_seconds=2, tick_seconds=0.2, instance_id=name
        )

    first, second = make("first"), make("second")
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    tasks = [
        asyncio.create_task(first.run(stop_first)),
        asyncio.create_task(second.run(stop_second)),
    ]
    await asyncio.sleep(3.5)

    leaders = {name for name, _, _ in fired}
    assert len(leaders) == 1, fired
    seconds = Counter(int(at) for _, _, at in fired)
    assert len(seconds) >= 2
    assert all(count == 1 for count in seconds.values()), fired  # one fire per tick

    # The leader stops (and releases the lock): the other one takes over.
    leader = leaders.pop()
    before = len(fired)
    (stop_first if leader == "first" else stop_second).set()
    await asyncio.sleep(2.5)
    takeover = [name for name, _, _ in fired[before:]]
    assert takeover and set(takeover) == {"second" if leader == "first" else "first"}
    stop_first.set()
    stop_second.set()
    await asyncio.gather(*tasks)


@pytest.mark.usefixtures("client")
async def test_a_tick_is_claimed_once_even_across_a_handover(runtime: Runtime) -> None:
    fired: list[str] = []
    minutely = [Schedule("sweep", "* * * * *")]
    start = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
    a = Scheduler(runtime.kv, fired.append, minutely, instance_id="a")
    b = Scheduler(runtime.kv, fired.append, minutely, instance_id="b")
    assert await a.tick(start) == []  # becomes leader, starts counting from now
    assert await b.tick(start) == []  # not the leader
    assert [job for job, _ in await a.tick(start + timedelta(seconds=40))] == ["sweep"]
    # A handover that replays the same minute cannot fire it again.
    await runtime.kv.delete("scheduler:leader")
    await b.tick(start + timedelta(seconds=41))
    b._last_checked = start  # as if b had been leading all along
    assert await b.tick(start + timedelta(seconds=42)) == []
    assert fired == ["sweep"]
