"""The broadcast jobs. `run_broadcast` runs on its own queue (`broadcasts`), and at most
BROADCAST_WORKER_SHARE of a process's worker threads run it at once: the other threads
stay free for the message path, so a reply never waits behind a broadcast."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import or_, select, update

from botplatform.broadcast import engine, mail, service, status
from botplatform.kit.clock import utcnow
from botplatform.kit.scoping import enter_workspace
from botplatform.models import Broadcast
from botplatform.worker.jobs import JobContext, enqueue, job
from botplatform.worker.lane import Lane
from botplatform.worker.sweeper import sweep_step

LANE = "broadcasts"
TICK_JOB = "broadcast_tick"
TICK_BATCH = 100


#: How many broadcast jobs this process runs at once, out of its worker threads.
LANE_GATE = Lane()


@job(service.RUN_JOB, queue=LANE, max_retries=20, min_backoff_ms=1_000, max_backoff_ms=60_000)
async def run_broadcast(
    ctx: JobContext, workspace_id: str, broadcast_id: str, kicks: int = 0
) -> None:
    """One slice of a broadcast's driver (broadcast/engine.py); it queues the next."""
    settings = ctx.runtime.settings
    share = ctx.runtime.jobs.lane_share(settings.broadcast_worker_share)
    if not LANE_GATE.enter(settings.worker_threads, share):
        # The lane is full: come back in a moment, holding no thread meanwhile.
        enqueue(ctx.db, service.RUN_JOB, workspace_id, broadcast_id, kicks, delay_ms=1_000)
        return
    ws, bid = uuid.UUID(workspace_id), uuid.UUID(broadcast_id)
    if await _starts_now(ctx, ws, bid):
        LANE_GATE.leave()
        return
    await ctx.db.commit()  # no transaction held open while the driver works
    try:
        wait = await engine.drive(ctx.runtime, ws, bid)
    finally:
        LANE_GATE.leave()
    if wait is not None:
        delay_ms = int(wait * 1000) or None
        # One kick: if a job of the tick took the lease meanwhile, this one waits it out once.
        enqueue(ctx.db, service.RUN_JOB, workspace_id, broadcast_id, 1, delay_ms=delay_ms)
        return
    if kicks > 0:
        await _kick_again(ctx, ws, bid, kicks)


async def _starts_now(ctx: JobContext, ws: uuid.UUID, bid: uuid.UUID) -> bool:
    """A scheduled broadcast's delayed job: at its time it starts (queuing its driver);
    a paused or cancelled one, or one already started, is left alone."""
    await enter_workspace(ctx.db, ws)
    row = await ctx.db.get(Broadcast, bid)
    if row is None or row.status != "scheduled":
        return False
    early = (row.scheduled_at - utcnow()).total_seconds() if row.scheduled_at else 0.0
    if early > 0:  # woken a moment early: again at the time
        delay_ms = int(early * 1000) + 50
        enqueue(ctx.db, service.RUN_JOB, str(ws), str(bid), service.KICKS, delay_ms=delay_ms)
        return True
    await service.start_due(ctx.db, row)
    return True


async def _kick_again(ctx: JobContext, ws: uuid.UUID, bid: uuid.UUID, kicks: int) -> None:
    await enter_workspace(ctx.db, ws)
    row = await ctx.db.get(Broadcast, bid)
    if row is None or row.status != "running" or row.driver_until is None:
        return
    wait_ms = max(int((row.driver_until - utcnow()).total_seconds() * 1000), 0) + 500
    enqueue(ctx.db, service.RUN_JOB, str(ws), str(bid), kicks - 1, delay_ms=wait_ms)


@job(TICK_JOB, max_retries=0, system=True)
async def broadcast_tick(ctx: JobContext) -> None:
    """Each minute (the scheduler), the safety net: starts scheduled broadcasts whose time
    has come and restarts running ones without a live driver that are due (their jobs were
    lost, e.g. with Redis; a wait longer than a driver wakes itself for)."""
    now = utcnow()
    due = (
        select(Broadcast)
        .where(
            or_(
                (Broadcast.status == "scheduled") & (Broadcast.next_run_at <= now),
                (Broadcast.status == "running")
                & or_(Broadcast.driver_until.is_(None), Broadcast.driver_until < now)
                & or_(Broadcast.next_run_at.is_(None), Broadcast.next_run_at <= now),
            )
        )
        .limit(TICK_BATCH)
        .with_for_update(skip_locked=True)
    )
    rows = (await ctx.db.execute(due)).scalars().all()
    lease = timedelta(seconds=ctx.runtime.settings.send_lease_seconds)
    for row in rows:
        if row.status == "scheduled":
            await service.start_due(ctx.db, row)
            continue
        # Not again before this job had its chance to take the lease.
        await ctx.db.execute(
            update(Broadcast).where(Broadcast.id == row.id).values(next_run_at=now + lease)
        )
        # One kick: should the dead driver's lease still be running, it waits that out.
        enqueue(ctx.db, service.RUN_JOB, str(row.workspace_id), str(row.id), 1)


sweep_step("broadcast_recipients", status.reconcile)
sweep_step("broadcast_emails", mail.reconcile)
