"""The intent-training job: fits the classifier for one queued model version."""

from __future__ import annotations

import uuid

from botplatform.ai import classifier, repository, service
from botplatform.kit.errors import NotFound
from botplatform.kit.logging import get_logger
from botplatform.kit.scoping import enter_workspace
from botplatform.worker.jobs import JobContext, job

log = get_logger("botplatform.ai")


@job(service.TRAIN_JOB, max_retries=3, min_backoff_ms=5_000, time_limit_ms=900_000)
async def train_intent_model(ctx: JobContext, workspace_id: str, model_id: str) -> None:
    """Idempotent: a version already trained (or failed) is left as it is. The dataset is the
    snapshot taken when training was requested, so a redelivered job learns the same thing."""
    ws, row_id = uuid.UUID(workspace_id), uuid.UUID(model_id)
    async with ctx.runtime.db.unit_of_work() as db:  # "training" is visible while it runs
        await enter_workspace(db, ws)
        try:
            model = await repository.get_model(db, ws, row_id)
        except NotFound:  # its workspace was deleted meanwhile
            return
        if model.status not in {"queued", "training"}:
            return
        model.status = "training"
        dataset = dict(model.dataset)
    try:
        result = await service.train_in_thread(dataset)
    except classifier.TrainingError as exc:  # not retryable: the snapshot will not change
        await _fail(ctx, ws, row_id, str(exc))
        return
    except Exception as exc:
        if ctx.is_last_attempt:
            await _fail(ctx, ws, row_id, f"{type(exc).__name__}: {exc}")
        raise
    await enter_workspace(ctx.db, ws)
    model = await repository.get_model(ctx.db, ws, row_id)
    if model.status != "training":
        return
    await service.finish_training(ctx.db, model, result)
    log.info(
        "intent_model_trained",
        workspace_id=workspace_id,
        version=model.version,
        accuracy=round(result.accuracy, 4),
        examples=result.metrics.get("examples"),
    )


async def _fail(ctx: JobContext, ws: uuid.UUID, model_id: uuid.UUID, error: str) -> None:
    # Its own unit of work: the job's session rolls back when the job raises.
    async with ctx.runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        model = await repository.get_model(db, ws, model_id)
        model.status, model.error = "failed", error[:2000]
    log.warning("intent_model_failed", workspace_id=str(ws), version=model.version, error=error)
