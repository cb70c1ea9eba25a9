from __future__ import annotations

import uuid
from datetime import timedelta

from dramatiq import Retry
from sqlalchemy import update

from botplatform.email import service, smtp
from botplatform.kit.clock import utcnow
from botplatform.kit.logging import get_logger
from botplatform.models import Email
from botplatform.worker.jobs import JobContext, job
from botplatform.worker.sweeper import SweepTarget, sweep_target

log = get_logger("botplatform.email")


def _lease(ctx: JobContext) -> timedelta:
    # Long enough for one SMTP conversation to finish or time out.
    return timedelta(seconds=ctx.runtime.settings.smtp_timeout_seconds * 2)


@job("send_email", max_retries=8, min_backoff_ms=5_000, max_backoff_ms=3_600_000)
async def send_email(ctx: JobContext, email_id: str) -> None:
    """Sends one outbox row, once: the row is leased before the SMTP conversation, and a sent
    row is never sent again. If the worker dies mid-send, the lease runs out and the job's
    redelivery (or the sweeper) sends it."""
    row_id = uuid.UUID(email_id)
    async with ctx.runtime.db.unit_of_work() as db:  # the lease must be visible to others now
        email = await service.claim(db, row_id, _lease(ctx))
        busy = None if email else await service.lease_remaining(db, row_id)
    if email is None:
        if busy is not None:  # another worker is sending it; check again when its lease ends
            raise Retry(delay=int(busy.total_seconds() * 1000) + 1000)
        return
    try:
        await smtp.deliver(ctx.runtime.settings, email)
    except Exception as exc:
        await _release_after_failure(ctx, row_id, exc)
        raise
    await ctx.db.execute(
        update(Email)
        .where(Email.id == row_id)
        .values(status="sent", sent_at=utcnow(), lease_until=None, last_error=None)
    )
    log.info("email_sent", email_id=email_id, kind=email.kind)


async def _release_after_failure(ctx: JobContext, email_id: uuid.UUID, exc: Exception) -> None:
    async with ctx.runtime.db.unit_of_work() as db:
        await db.execute(
            update(Email)
            .where(Email.id == email_id)
            .values(
                status="failed" if ctx.is_last_attempt else "queued",
                lease_until=None,
                last_error=f"{type(exc).__name__}: {exc}"[:2000],
            )
        )


sweep_target(
    SweepTarget(
        name="emails",
        model=Email,
        is_pending=service.is_claimable,  # type: ignore[arg-type]
        touched_at=Email.updated_at,
        job=service.SEND_JOB,
    )
)
