from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select

from botplatform.kit.scoping import scoped_audit
from botplatform.models import AuditLog


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def list_statement(
    workspace_id: uuid.UUID,
    *,
    action: str | None = None,
    actor_id: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Select[Any]:
    statement = scoped_audit(AuditLog, workspace_id)
    filters = {
        AuditLog.action: action,
        AuditLog.actor_id: actor_id,
        AuditLog.target_type: target_type,
        AuditLog.target_id: target_id,
    }
    for column, value in filters.items():
        if value is not None:
            statement = statement.where(column == value)
    if since is not None:
        statement = statement.where(AuditLog.created_at >= _aware(since))
    if until is not None:
        statement = statement.where(AuditLog.created_at < _aware(until))
    return statement
