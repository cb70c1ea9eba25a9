"""The sweeper: re-enqueues work rows left pending too long.

Rows are the truth and jobs only carry ids. A job can be lost between commit and enqueue
(Redis down, process killed); the sweeper finds its row still pending after
SWEEP_AFTER_SECONDS and sends the job again, so a lost job costs a delay, never the work.
Jobs are idempotent, so a job that was merely slow and now runs twice does its work once.
Each domain registers what it wants swept with `sweep_target`, and any other periodic
repair of its rows (e.g. ending sends whose outcome stayed unknown) with `sweep_step`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import InstrumentedAttribute

from botplatform.kit.clock import utcnow
from botplatform.kit.logging import get_logger
from botplatform.worker import dead_letters
from botplatform.worker.jobs import JobContext, enqueue, job

log = get_logger("botplatform.sweeper")
BATCH = 500


@dataclass(frozen=True)
class SweepTarget:
    name: str
    model: Any
    is_pending: Callable[[], ColumnElement[bool]]
    touched_at: InstrumentedAttribute[Any]  # bumped on each re-enqueue, so it waits again
    job: str
    with_workspace: bool = False  # tenant jobs take (workspace id, row id)


TARGETS: list[SweepTarget] = []
#: Named steps run on every sweep in the sweeper's (system) session; each returns a count.
STEPS: dict[str, Callable[[JobContext], Awaitable[int]]] = {}


def sweep_target(target: SweepTarget) -> None:
    TARGETS.append(target)


def sweep_step(name: str, step: Callable[[JobContext], Awaitable[int]]) -> None:
    STEPS[name] = step


async def sweep_once(ctx: JobContext, after_seconds: int | None = None) -> dict[str, int]:
    """Re-enqueues the pending rows of every target; returns how many per target."""
    threshold = ctx.runtime.settings.sweep_after_seconds if after_seconds is None else after_seconds
    cutoff = utcnow() - timedelta(seconds=threshold)
    swept: dict[str, int] = {}
    for target in TARGETS:
        statement = (
            select(target.model)
            .where(target.is_pending(), target.touched_at <= cutoff)
            .order_by(target.touched_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
        rows = (await ctx.db.execute(statement)).scalars().all()
        for row in rows:
            setattr(row, target.touched_at.key, utcnow())
            args = (str(row.workspace_id), str(row.id)) if target.with_workspace else (str(row.id),)
            enqueue(ctx.db, target.job, *args)
        swept[target.name] = len(rows)
    for name, step in STEPS.items():
        swept[name] = await step(ctx)
    swept["dead_jobs_retried"] = await dead_letters.send_requested(ctx.runtime, ctx.db)
    if any(swept.values()):
        log.info("swept", **swept)
    return swept


@job("sweep_pending_work", max_retries=0, system=True)
async def sweep_pending_work(ctx: JobContext) -> None:
    await sweep_once(ctx)
