"""Rules of retention: the policy (set through the API) and one run of the job.

A run never holds a long transaction: it reads the policy, then (when archiving) reads the
old messages page by page into one gzipped JSON-lines object and stores it, then deletes in
batches of `BATCH` messages, each batch its own short transaction. Only messages the archive
holds are deleted (the archive's last (created_at, id) bounds the deletion), and a failed
archive raises before anything is deleted. A run handles at most `RUN_LIMIT` messages (one
archive object of bounded size) and queues the next run when more are due.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.audit.service import diff
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import Unprocessable
from botplatform.kit.logging import get_logger
from botplatform.kit.scoping import enter_workspace
from botplatform.models import Workspace
from botplatform.privacy import repository as privacy_repository
from botplatform.privacy.service import DELETE_MEDIA_JOB
from botplatform.retention import archive, repository
from botplatform.retention.repository import Position
from botplatform.retention.schemas import RetentionIn, RetentionOut
from botplatform.usage import service as usage
from botplatform.worker.jobs import enqueue

if TYPE_CHECKING:
    from botplatform.runtime import Runtime

log = get_logger("botplatform.retention")

APPLY_JOB = "retention.apply"
BATCH = 500  # messages per delete transaction
RUN_LIMIT = 20_000  # messages per run, so one archive object stays of bounded size


async def plan_retention_ceiling(db: AsyncSession, workspace: Workspace) -> int | None:
    """The most retention days the workspace's plan allows (None: the plan sets no ceiling,
    and only the absolute range 1..3650 applies)."""
    return (await usage.plan_of(db, workspace)).retention_days


async def policy_of(db: AsyncSession, workspace: Workspace) -> RetentionOut:
    return RetentionOut(
        retention_days=workspace.retention_days,
        archive_before_delete=workspace.archive_before_delete,
        plan_ceiling_days=await plan_retention_ceiling(db, workspace),
    )


async def set_policy(db: AsyncSession, workspace: Workspace, data: RetentionIn) -> dict[str, Any]:
    """Replaces the policy; returns the audit diff."""
    ceiling = await plan_retention_ceiling(db, workspace)
    if data.retention_days is not None and ceiling is not None and data.retention_days > ceiling:
        raise Unprocessable(
            f"Your plan keeps messages at most {ceiling} days.",
            code="retention_above_plan",
            details={"field": "retention_days", "max": ceiling},
        )
    before = {
        "retention_days": workspace.retention_days,
        "archive_before_delete": workspace.archive_before_delete,
    }
    workspace.retention_days = data.retention_days
    workspace.archive_before_delete = data.archive_before_delete
    await db.flush()
    return diff(before, data.model_dump())


@dataclass
class RunResult:
    deleted: int = 0
    batches: int = 0
    media_files: int = 0  # stored files queued for removal
    archive_key: str | None = None
    archived: int = 0
    more: bool = False  # RUN_LIMIT reached: another run was queued


@dataclass(frozen=True)
class _Policy:
    cutoff: datetime
    archive: bool


async def _policy(runtime: Runtime, ws: uuid.UUID, now: datetime) -> _Policy | None:
    async with runtime.db.unit_of_work(write=False) as db:
        await enter_workspace(db, ws)
        workspace = await db.get(Workspace, ws)
        if workspace is None or workspace.deleted_at is not None or not workspace.retention_days:
            return None
        # A plan lowered after the policy was set caps it from then on.
        ceiling = await plan_retention_ceiling(db, workspace)
        days = min(workspace.retention_days, ceiling or workspace.retention_days)
        return _Policy(now - timedelta(days=days), workspace.archive_before_delete)


async def run(runtime: Runtime, ws: uuid.UUID, now: datetime | None = None) -> RunResult:
    """One run of the policy for one workspace (the `retention.apply` job)."""
    policy = await _policy(runtime, ws, now or utcnow())
    result = RunResult()
    if policy is None:
        return result
    until: Position | None = None
    if policy.archive:
        written = await archive.write(runtime, ws, policy.cutoff, RUN_LIMIT)
        if written is None:
            return result  # nothing old enough
        result.archive_key, result.archived, until = written.key, written.count, written.last
    while result.deleted < RUN_LIMIT:
        size = min(BATCH, RUN_LIMIT - result.deleted)
        deleted, files = await _delete_batch(runtime, ws, policy.cutoff, until, size)
        if not deleted:
            break
        result.deleted += deleted
        result.media_files += files
        result.batches += 1
    result.more = result.deleted >= RUN_LIMIT
    if result.more:
        async with runtime.db.unit_of_work() as db:
            enqueue(db, APPLY_JOB, str(ws))
    log.info("retention_run", workspace_id=str(ws), **_fields(result))
    return result


def _fields(result: RunResult) -> dict[str, Any]:
    return {
        "deleted": result.deleted,
        "batches": result.batches,
        "media_files": result.media_files,
        "archive_key": result.archive_key,
        "more": result.more,
    }


async def _delete_batch(
    runtime: Runtime, ws: uuid.UUID, cutoff: datetime, until: Position | None, size: int
) -> tuple[int, int]:
    """Deletes up to `size` of the oldest due messages in one short transaction; their files
    no remaining message carries are removed by the privacy media job after the commit."""
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        rows = await repository.oldest(db, ws, cutoff, until, size)
        if not rows:
            return 0, 0
        deleted = await repository.delete_messages(db, ws, [row_id for row_id, _ in rows])
        keys = sorted({key for _, key in rows if key})
        orphaned = sorted(set(keys) - await privacy_repository.media_in_use(db, ws, keys))
        if orphaned:
            enqueue(db, DELETE_MEDIA_JOB, str(ws), *orphaned)
        return deleted, len(orphaned)
