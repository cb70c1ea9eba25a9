"""Removes the stored files of an erased contact, after the erasure has committed."""

from __future__ import annotations

import uuid

from botplatform.kit.logging import get_logger
from botplatform.kit.scoping import enter_workspace
from botplatform.media.storage import validate_key
from botplatform.privacy import repository
from botplatform.privacy.service import DELETE_MEDIA_JOB
from botplatform.worker.jobs import JobContext, job

log = get_logger("botplatform.privacy")


@job(DELETE_MEDIA_JOB, max_retries=8, min_backoff_ms=2_000)
async def delete_media(ctx: JobContext, workspace_id: str, *keys: str) -> None:
    """Idempotent: a file already gone is not an error. The rows are the truth: a key a
    message of the workspace carries again (the same bytes sent since) is kept."""
    ws = uuid.UUID(workspace_id)
    await enter_workspace(ctx.db, ws)
    prefix = f"ws/{ws}/"  # media.storage.media_key: a workspace's files sit under it
    wanted = [validate_key(k) for k in keys if k.startswith(prefix)]
    in_use = await repository.media_in_use(ctx.db, ws, wanted)
    removed = 0
    for key in wanted:
        if key not in in_use:
            await ctx.runtime.media.delete(key)
            removed += 1
    log.info("erased_media_deleted", workspace_id=workspace_id, files=removed)
