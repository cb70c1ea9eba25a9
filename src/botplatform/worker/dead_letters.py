"""Jobs that exhausted their retries: kept as rows, listed, retried and cleaned by operators."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.kit.clock import utcnow
from botplatform.models import DeadJob
from botplatform.worker.jobs import enqueue

if TYPE_CHECKING:
    import dramatiq

    from botplatform.runtime import Runtime

MAX_ERROR_CHARS = 10_000


async def record(
    runtime: Runtime, message: dramatiq.MessageProxy, exception: BaseException
) -> None:
    error = f"{type(exception).__name__}: {exception}"
    traceback = message.options.get("traceback")
    if traceback:
        error = f"{error}\n\n{traceback}"
    async with runtime.db.unit_of_work() as db:
        db.add(
            DeadJob(
                job=message.actor_name,
                queue=message.queue_name,
                args=list(message.args),
                message_id=str(message.message_id),
                last_error=error[:MAX_ERROR_CHARS],
                attempts=int(message.options.get("retries", 0)),
                first_enqueued_at=datetime.fromtimestamp(message.message_timestamp / 1000, UTC),
                failed_at=utcnow(),
            )
        )


async def count_by_queue(db: AsyncSession) -> dict[str, int]:
    statement = (
        select(DeadJob.queue, func.count())
        .where(DeadJob.retried_at.is_(None))
        .group_by(DeadJob.queue)
    )
    return {queue: int(count) for queue, count in (await db.execute(statement)).all()}


async def request_retry(db: AsyncSession, dead_job_id: uuid.UUID | None = None) -> list[DeadJob]:
    """Marks dead jobs (all, or one) to be sent again; returns them."""
    statement = select(DeadJob).where(
        DeadJob.retried_at.is_(None), DeadJob.retry_requested_at.is_(None)
    )
    if dead_job_id is not None:
        statement = statement.where(DeadJob.id == dead_job_id)
    rows = list((await db.execute(statement)).scalars().all())
    for row in rows:
        row.retry_requested_at = utcnow()
    await db.flush()
    return rows


async def send_requested(runtime: Runtime, db: AsyncSession) -> int:
    """Sends every dead job whose retry was requested, fresh (its retry count starts over)."""
    statement = select(DeadJob).where(
        DeadJob.retry_requested_at.is_not(None), DeadJob.retried_at.is_(None)
    )
    rows = list((await db.execute(statement.limit(1000))).scalars().all())
    sent = 0
    for row in rows:
        if row.job not in runtime.jobs.job_names:
            continue
        enqueue(db, row.job, *row.args)
        row.retried_at = utcnow()
        sent += 1
    await db.flush()
    return sent


async def clean(db: AsyncSession, older_than: timedelta) -> int:
    """Deletes dead jobs that failed more than `older_than` ago; returns how many."""
    cutoff = utcnow() - older_than
    result = await db.execute(delete(DeadJob).where(DeadJob.failed_at <= cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


def describe(row: DeadJob) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "job": row.job,
        "queue": row.queue,
        "attempts": row.attempts,
        "failed_at": row.failed_at.isoformat(),
        "retried": row.retried_at is not None,
        "error": row.last_error.splitlines()[0] if row.last_error else "",
    }
