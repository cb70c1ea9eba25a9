"""The job that evaluates the rules of one stored event."""

from __future__ import annotations

import uuid

from botplatform.automation import runner
from botplatform.automation.events import RUN_JOB
from botplatform.kit.scoping import enter_workspace
from botplatform.models import AutomationEvent
from botplatform.worker.jobs import JobContext, job
from botplatform.worker.sweeper import SweepTarget, sweep_target


@job(RUN_JOB, max_retries=8, min_backoff_ms=1_000)
async def run_automation_event(ctx: JobContext, workspace_id: str, event_id: str) -> None:
    ws = uuid.UUID(workspace_id)
    await enter_workspace(ctx.db, ws)
    await runner.process(ctx.db, ws, uuid.UUID(event_id), ctx.runtime.settings.automation_max_chain)


sweep_target(
    SweepTarget(
        name="automation_events",
        model=AutomationEvent,
        is_pending=lambda: AutomationEvent.status == "pending",
        touched_at=AutomationEvent.updated_at,
        job=RUN_JOB,
        with_workspace=True,
    )
)
