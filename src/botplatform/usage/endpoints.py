from __future__ import annotations

from fastapi import APIRouter

from botplatform.authz.dependencies import BillingRead
from botplatform.db import DbSession, reads_replica
from botplatform.kit.envelope import Envelope, ok
from botplatform.usage import service
from botplatform.usage.schemas import UsageOut

router = APIRouter(prefix="/workspaces/{ws}", tags=["usage"])


@router.get("/usage")
@reads_replica
async def get_usage(access: BillingRead, db: DbSession) -> Envelope[UsageOut]:
    """The workspace's plan, each quota with what is used and what remains, and the month
    (UTC) the monthly counters cover. Inbound messages count towards the message quota but
    are never refused; a spent quota stops only what the platform sends."""
    return ok(await service.summary(db, access.workspace))
