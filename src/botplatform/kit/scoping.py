"""The one tenant-scoping helper. Every read of a workspace-scoped table goes through here,
so "which workspace" is decided in exactly one place (and PostgreSQL RLS backs it up)."""

from __future__ import annotations

import uuid
from typing import TypeVar

from sqlalchemy import Select, select

from botplatform.models.base import WorkspaceScoped

M = TypeVar("M", bound=WorkspaceScoped)


def scoped(model: type[M], workspace_id: uuid.UUID) -> Select[M]:
    """`SELECT model … WHERE workspace_id = :workspace_id`, ready for more filters."""
    return select(model).where(model.workspace_id == workspace_id)
