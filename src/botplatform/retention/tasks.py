"""The retention jobs: a daily sweep over the workspaces with a policy, and one run per
workspace (each in its own job, so one workspace's failure retries alone)."""

from __future__ import annotations

import uuid

from botplatform.retention import repository, service
from botplatform.worker.jobs import JobContext, enqueue, job

SWEEP_JOB = "retention_sweep"


@job(SWEEP_JOB, max_retries=0, system=True)
async def retention_sweep(ctx: JobContext) -> None:
    """Queues a run for every live workspace with a retention policy."""
    for ws in await repository.workspaces_with_policy(ctx.db):
        enqueue(ctx.db, service.APPLY_JOB, str(ws))


@job(service.APPLY_JOB, max_retries=5, min_backoff_ms=60_000, time_limit_ms=3_600_000)
async def retention_apply(ctx: JobContext, workspace_id: str) -> None:
    """Idempotent: the rows decide what is due. It works in short transactions of its own and
    leaves the job's session (`ctx.db`) unused, so it never holds one open while it runs (on
    SQLite an open write transaction would also block the batches behind it)."""
    await service.run(ctx.runtime, uuid.UUID(workspace_id))
