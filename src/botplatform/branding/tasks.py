"""Removes a replaced or removed logo file, after the change has committed."""

from __future__ import annotations

import uuid

from botplatform.branding.service import DELETE_LOGO_JOB
from botplatform.kit.logging import get_logger
from botplatform.media.storage import validate_key
from botplatform.models import Workspace
from botplatform.worker.jobs import JobContext, job

log = get_logger("botplatform.branding")


@job(DELETE_LOGO_JOB, max_retries=8, min_backoff_ms=2_000)
async def delete_logo(ctx: JobContext, workspace_id: str, key: str) -> None:
    """Idempotent. The row is the truth: a key the workspace names again (the same image
    uploaded since) is kept; only keys under the workspace's own branding prefix go."""
    ws = uuid.UUID(workspace_id)
    if not validate_key(key).startswith(f"ws/{ws}/branding/"):
        return
    workspace = await ctx.db.get(Workspace, ws)
    if workspace is not None and workspace.logo_key == key:
        return
    await ctx.runtime.media.delete(key)
    log.info("logo_deleted", workspace_id=workspace_id)
