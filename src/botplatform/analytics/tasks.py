"""The rollup jobs: a scheduled sweep over the live workspaces, then one run per workspace
(each its own job, so one workspace's failure retries alone). Both idempotent."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from botplatform.analytics import service
from botplatform.kit.scoping import enter_workspace
from botplatform.models import Workspace
from botplatform.worker.jobs import JobContext, enqueue, job

SWEEP_JOB = "analytics_rollup"


@job(SWEEP_JOB, max_retries=0, system=True)
async def analytics_rollup(ctx: JobContext) -> None:
    """Queues a rollup run for every live workspace."""
    statement = select(Workspace.id).where(Workspace.deleted_at.is_(None)).order_by(Workspace.id)
    for ws in (await ctx.db.execute(statement)).scalars():
        enqueue(ctx.db, service.ROLLUP_JOB, str(ws))


@job(service.ROLLUP_JOB, max_retries=5, min_backoff_ms=60_000, time_limit_ms=1_800_000)
async def analytics_rollup_workspace(ctx: JobContext, workspace_id: str) -> None:
    ws = uuid.UUID(workspace_id)
    await enter_workspace(ctx.db, ws)
    workspace = await ctx.db.get(Workspace, ws)
    if workspace is not None and workspace.deleted_at is None:
        await service.run(ctx.db, workspace)
