from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from botplatform.audit import repository
from botplatform.audit.schemas import AuditLogOut
from botplatform.authz.dependencies import AuditRead
from botplatform.db import DbSession, reads_replica
from botplatform.kit.envelope import Envelope, ok
from botplatform.kit.pagination import Page, PageQuery, paginate
from botplatform.models import AuditLog

router = APIRouter(prefix="/workspaces/{ws}", tags=["audit"])

Text = Annotated[str | None, Query(max_length=100)]


@router.get("/audit-logs")
@reads_replica
async def list_audit_logs(
    access: AuditRead,
    db: DbSession,
    page: PageQuery,
    action: Text = None,
    actor_id: Text = None,
    target_type: Text = None,
    target_id: Text = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Envelope[Page[AuditLogOut]]:
    """The workspace's audit log, newest first, with filters."""
    statement = repository.list_statement(
        access.workspace_id,
        action=action,
        actor_id=actor_id,
        target_type=target_type,
        target_id=target_id,
        since=since,
        until=until,
    )
    rows, next_cursor = await paginate(
        db, statement, AuditLog.created_at, AuditLog.id, page, newest_first=True
    )
    items = [AuditLogOut.model_validate(row[0], from_attributes=True) for row in rows]
    return ok(Page(items=items, next_cursor=next_cursor))
