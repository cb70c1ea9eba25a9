"""Queueing and claiming email. The row is written in the caller's transaction and the job
leaves after it commits; nothing is sent for a transaction that rolls back."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import and_, or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.kit.clock import utcnow
from botplatform.models import Email
from botplatform.worker.jobs import enqueue

SEND_JOB = "send_email"


async def queue_email(
    db: AsyncSession,
    *,
    kind: str,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
) -> Email:
    email = Email(
        kind=kind,
        to_address=to,
        subject=subject,
        text_body=text,
        html_body=html,
        status="queued",
        attempts=0,
    )
    db.add(email)
    await db.flush()
    enqueue(db, SEND_JOB, str(email.id))
    return email


def is_claimable() -> object:
    """Queued, or left `sending` by a worker whose lease ran out (it died mid-send)."""
    return or_(
        Email.status == "queued", and_(Email.status == "sending", Email.lease_until < utcnow())
    )


async def claim(db: AsyncSession, email_id: uuid.UUID, lease: timedelta) -> Email | None:
    """Leases the email to this worker with one conditional UPDATE — atomic on SQLite and
    PostgreSQL alike — so of several copies of a job exactly one sends. None when the
    email is sent, failed, or leased to someone else."""
    result = await db.execute(
        update(Email)
        .where(Email.id == email_id, is_claimable())  # type: ignore[arg-type]
        .values(status="sending", lease_until=utcnow() + lease, attempts=Email.attempts + 1)
    )
    if getattr(result, "rowcount", 0) != 1:
        return None
    return await db.get(Email, email_id, populate_existing=True)


async def lease_remaining(db: AsyncSession, email_id: uuid.UUID) -> timedelta | None:
    """How long another worker still holds this email, if it does."""
    email = await db.get(Email, email_id)
    if email is None or email.status != "sending" or email.lease_until is None:
        return None
    return max(email.lease_until - utcnow(), timedelta(0))
