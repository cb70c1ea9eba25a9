"""`WORKER_BATCH_LINGER_MS`: an inbound batch that would start small waits a moment for the
jobs that follow it, so that at a low steady rate one unit of work serves several messages;
a batch that starts large enough runs at once, and so does a lone job where jobs come too
seldom for another to come meanwhile."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from botplatform.channels import tasks
from botplatform.kit.linger import EVIDENCE
from botplatform.runtime import Runtime
from botplatform.worker.jobs import JobContext


def _batches(monkeypatch: pytest.MonkeyPatch) -> tuple[tasks._Batches, list[list[str]]]:
    """A fresh `_Batches` whose units of work only record the events they were given."""
    ran: list[list[str]] = []

    async def record(workspace_id: str, jobs: list[Any]) -> None:
        ran.append([event for job in jobs for event in job.event_ids])
        for job in jobs:
            job.done.set_result(None)

    monkeypatch.setattr(tasks, "_run_together", record)
    return tasks._Batches(), ran


def _ctx(runtime: Runtime) -> JobContext:
    return JobContext(runtime=runtime, db=None, message_id="j", attempt=1, max_attempts=1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("linger_ms", "gap", "expected"),
    [
        (150, 0.03, [["e0", "e1", "e2"]]),  # the followers join the lingering batch
        (0, 0.05, [["e0"], ["e1"], ["e2"]]),  # without the linger a lone job runs at once
    ],
    ids=["lingering", "not-lingering"],
)
async def test_jobs_arriving_within_the_linger_share_one_batch(
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    linger_ms: int,
    gap: float,
    expected: list[list[str]],
) -> None:
    batches, ran = _batches(monkeypatch)
    monkeypatch.setattr(runtime.settings, "worker_batch_linger_ms", linger_ms)

    async def later(n: int) -> None:
        await asyncio.sleep(gap * n)
        await batches.join(_ctx(runtime), "ws", [f"e{n}"])

    await asyncio.gather(*(later(n) for n in range(3)))
    assert ran == expected


async def test_a_batch_large_enough_runs_without_lingering(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches, ran = _batches(monkeypatch)
    monkeypatch.setattr(runtime.settings, "worker_batch_linger_ms", 5_000)
    events = [f"e{n}" for n in range(tasks.LINGER_UNTIL_EVENTS)]
    await asyncio.wait_for(batches.join(_ctx(runtime), "ws", events), timeout=2)
    assert ran == [events]


async def test_a_running_batch_leaves_the_lingering_batch_its_jobs(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runner that finishes its batch while another lingers does not take the jobs that
    lingering batch waits for: they run together, once its linger is over (a runner taking
    them would leave the lingering batch with one job, and the timer would buy nothing)."""
    ran: list[list[str]] = []

    async def slow(workspace_id: str, jobs: list[Any]) -> None:
        ran.append([event for job in jobs for event in job.event_ids])
        await asyncio.sleep(0.1)
        for job in jobs:
            job.done.set_result(None)

    monkeypatch.setattr(tasks, "_run_together", slow)
    monkeypatch.setattr(runtime.settings, "worker_batch_linger_ms", 200)
    batches = tasks._Batches()
    first = [f"e{n}" for n in range(tasks.LINGER_UNTIL_EVENTS)]  # large enough: runs at once

    async def later(delay: float, events: list[str]) -> None:
        await asyncio.sleep(delay)
        await batches.join(_ctx(runtime), "ws", events)

    await asyncio.gather(later(0, first), later(0.03, ["late1"]), later(0.15, ["late2"]))
    assert ran == [first, ["late1", "late2"]]


async def test_a_lingering_batch_runs_as_soon_as_it_is_large_enough(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches, ran = _batches(monkeypatch)
    monkeypatch.setattr(runtime.settings, "worker_batch_linger_ms", 5_000)
    rest = [f"e{n}" for n in range(1, tasks.LINGER_UNTIL_EVENTS)]

    async def after_the_linger_began() -> None:
        await asyncio.sleep(0.05)
        await batches.join(_ctx(runtime), "ws", rest)

    lone = batches.join(_ctx(runtime), "ws", ["e0"])
    await asyncio.wait_for(asyncio.gather(lone, after_the_linger_began()), timeout=2)
    assert ran == [[f"e{n}" for n in range(tasks.LINGER_UNTIL_EVENTS)]]


async def test_a_lone_job_runs_at_once_where_jobs_come_too_seldom_to_wait_for(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jobs about 130 ms apart, a 50 ms linger: once the rate is known (EVIDENCE jobs), a lone
    job no longer waits for a follower that, as a rule, would not come in time (its jobs are
    the intake's groups, which have lingered already)."""
    batches, ran = _batches(monkeypatch)
    monkeypatch.setattr(runtime.settings, "worker_batch_linger_ms", 50)
    for n in range(EVIDENCE):
        await batches.join(_ctx(runtime), "ws", [f"e{n}"])  # lingers: no evidence yet
        await asyncio.sleep(0.08)
    started = time.monotonic()
    await batches.join(_ctx(runtime), "ws", ["last"])
    assert time.monotonic() - started < 0.03
    assert ran == [[f"e{n}"] for n in range(EVIDENCE)] + [["last"]]
