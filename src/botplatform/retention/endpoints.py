"""The workspace's retention policy: read by any member, set with `workspace:update`."""

from __future__ import annotations

from fastapi import APIRouter

from botplatform.audit.dependencies import Audit
from botplatform.authz.dependencies import WorkspaceRead, WorkspaceUpdate
from botplatform.db import DbSession
from botplatform.kit.envelope import Envelope, ok
from botplatform.retention import service
from botplatform.retention.schemas import RetentionIn, RetentionOut

router = APIRouter(prefix="/workspaces/{ws}", tags=["retention"])


@router.get("/retention")
async def get_retention(access: WorkspaceRead, db: DbSession) -> Envelope[RetentionOut]:
    """How long messages are kept, and whether they are archived before deletion."""
    return ok(await service.policy_of(db, access.workspace))


@router.put("/retention")
async def set_retention(
    access: WorkspaceUpdate, body: RetentionIn, db: DbSession, audit: Audit
) -> Envelope[RetentionOut]:
    """Sets the policy: `retention_days` 1..3650 (null keeps messages forever). A daily job
    deletes the workspace's messages older than that (conversations and contacts stay), and
    with `archive_before_delete` first stores them as gzipped JSON lines."""
    changes = await service.set_policy(db, access.workspace, body)
    await audit.log(
        "retention.update",
        workspace_id=access.workspace_id,
        target_type="workspace",
        target_id=access.workspace_id,
        changes=changes,
    )
    return ok(await service.policy_of(db, access.workspace), "Retention policy saved")
