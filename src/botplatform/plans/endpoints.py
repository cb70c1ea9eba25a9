"""The superadmin's plan API: list plans, edit their quotas, move a workspace to a plan.
Workspace members never reach these (a member cannot choose its own plan)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from botplatform.audit.dependencies import Audit
from botplatform.authz.dependencies import Superadmin
from botplatform.db import DbSession
from botplatform.kit.envelope import Envelope, ok
from botplatform.models import Workspace
from botplatform.plans import repository, service
from botplatform.plans.schemas import PlanOut, PlanUpdate, WorkspacePlanChange, WorkspacePlanOut
from botplatform.workspace import repository as workspace_repository

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/plans")
async def list_plans(admin: Superadmin, db: DbSession) -> Envelope[list[PlanOut]]:
    """Every plan with its quotas, cheapest first (superadmins only)."""
    return ok([service.to_out(plan) for plan in await repository.list_plans(db)])


@router.patch("/plans/{name}")
async def update_plan(
    admin: Superadmin, name: str, body: PlanUpdate, db: DbSession, audit: Audit
) -> Envelope[PlanOut]:
    """Changes the quotas named in the body (`null`: unlimited) for every workspace on the
    plan at once (superadmins only)."""
    plan = await repository.get(db, name)
    changes = await service.update_quotas(db, plan, body)
    await audit.log("plan.update", target_type="plan", target_id=plan.name, changes=changes)
    return ok(service.to_out(plan), "Plan updated")


@router.put("/workspaces/{workspace_id}/plan")
async def change_workspace_plan(
    admin: Superadmin,
    workspace_id: uuid.UUID,
    body: WorkspacePlanChange,
    db: DbSession,
    audit: Audit,
) -> Envelope[WorkspacePlanOut]:
    """Moves a workspace to another plan (superadmins only); its usage this month stays."""
    workspace = await db.get(Workspace, workspace_id)
    if workspace is None or workspace.deleted_at is not None:
        raise workspace_repository.workspace_not_found()
    changes = await service.change_plan(db, workspace, body.plan)
    await audit.log(
        "workspace.plan_change",
        workspace_id=workspace.id,
        target_type="workspace",
        target_id=workspace.id,
        changes=changes,
    )
    return ok(WorkspacePlanOut(workspace_id=str(workspace.id), plan=workspace.plan), "Plan changed")
