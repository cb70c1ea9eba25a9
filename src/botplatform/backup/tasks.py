"""The scheduled backup (BACKUP_SCHEDULE), fired by the scheduler like any cron job."""

from __future__ import annotations

from botplatform.backup import service
from botplatform.backup.destinations import destination_for
from botplatform.kit.logging import get_logger
from botplatform.worker.jobs import JobContext, job
from botplatform.worker.scheduler import BACKUP_JOB

log = get_logger("botplatform.backup")


@job(
    BACKUP_JOB,
    max_retries=2,
    min_backoff_ms=300_000,
    time_limit_ms=6 * 3_600_000,
    system=True,
)
async def scheduled_backup(ctx: JobContext) -> None:
    settings = ctx.runtime.settings
    stored = await service.backup_to_destination(
        settings, ctx.runtime.media, destination_for(settings)
    )
    log.info(
        "backup_stored",
        location=stored.location,
        files=len(stored.manifest.files),
        pruned=stored.pruned,
    )
