from __future__ import annotations

from fastapi import APIRouter

from botplatform.audit.dependencies import Audit
from botplatform.authz.dependencies import WorkspaceRead, WorkspaceUpdate
from botplatform.business_hours import service
from botplatform.business_hours.schemas import BusinessHours, BusinessHoursOut
from botplatform.db import DbSession
from botplatform.kit.clock import utcnow
from botplatform.kit.envelope import Envelope, ok

router = APIRouter(prefix="/workspaces/{ws}", tags=["business hours"])


def _out(hours: BusinessHours) -> BusinessHoursOut:
    return BusinessHoursOut(
        timezone=hours.timezone, days=hours.days, open_now=service.is_open(hours, utcnow())
    )


@router.get("/business-hours")
async def get_business_hours(access: WorkspaceRead) -> Envelope[BusinessHoursOut]:
    """The workspace's time zone and weekly opening hours, and whether it is open now."""
    return ok(_out(service.hours_of(access.workspace)))


@router.put("/business-hours")
async def set_business_hours(
    access: WorkspaceUpdate, body: BusinessHours, db: DbSession, audit: Audit
) -> Envelope[BusinessHoursOut]:
    """Replaces the time zone and weekly hours (automation's `business_hours` condition)."""
    before = service.store(access.workspace, body)
    await db.flush()
    await audit.log(
        "business_hours.update",
        workspace_id=access.workspace_id,
        target_type="workspace",
        target_id=access.workspace_id,
        changes={
            "timezone": {"before": before["timezone"], "after": body.timezone},
            "days": {"before": before["days"], "after": access.workspace.business_hours},
        },
    )
    return ok(_out(service.hours_of(access.workspace)), "Business hours saved")
