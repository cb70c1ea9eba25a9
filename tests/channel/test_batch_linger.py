"""`WORKER_BATCH_LINGER_MS`: an inbound batch that would start small waits a moment for the
jobs that follow it, so that at a low steady rate one unit of work serves several messages;
a batch that starts large enough runs at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from botplatform.channels import tasks
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
