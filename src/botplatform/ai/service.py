"""The AI rules: intent detection and grounded answers (the interface the bot engine calls),
and the intent models they rest on. Services flush, never commit.

    match = await detect_intent(runtime, db, workspace_id, "where is my parcel?")
    answer = await generate_answer(runtime, db, workspace_id, "Do you ship abroad?")
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.ai import classifier, llm, repository, retrieval
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import Conflict, Unprocessable
from botplatform.kit.logging import get_logger
from botplatform.models import AiIntentModel, AiUsage, KnowledgeEntry
from botplatform.worker.jobs import enqueue

if TYPE_CHECKING:
    from botplatform.runtime import Runtime

log = get_logger("botplatform.ai")

TRAIN_JOB = "train_intent_model"


@dataclass(frozen=True)
class IntentMatch:
    """The most likely intent of a text under the workspace's active model. The caller
    decides what confidence is enough (a flow trigger has its own threshold)."""

    name: str
    confidence: float
    version: int = 0
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class GeneratedAnswer:
    """`fallback_used` is true when `text` is the fallback message: `outcome` says why
    (`timeout`, `provider_error`, `not_configured`, `quota_exceeded`)."""

    text: str
    fallback_used: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0
    outcome: str = "ok"
    sources: tuple[uuid.UUID, ...] = ()


# --- intent detection ----------------------------------------------------------------------

_CACHE_SIZE = 64
_models: OrderedDict[tuple[uuid.UUID, int], classifier.LoadedClassifier] = OrderedDict()
_models_lock = threading.Lock()


def _cached(key: tuple[uuid.UUID, int]) -> classifier.LoadedClassifier | None:
    with _models_lock:
        found = _models.get(key)
        if found is not None:
            _models.move_to_end(key)
        return found


def _remember(key: tuple[uuid.UUID, int], model: classifier.LoadedClassifier) -> None:
    with _models_lock:
        _models[key] = model
        _models.move_to_end(key)
        while len(_models) > _CACHE_SIZE:
            _models.popitem(last=False)


async def _active_classifier(
    db: AsyncSession, workspace_id: uuid.UUID
) -> tuple[int, classifier.LoadedClassifier] | None:
    active = await repository.active_model_version(db, workspace_id)
    if active is None:
        return None
    model_id, version = active
    # A version never changes once trained, so (workspace, version) is a safe cache key.
    loaded = _cached((workspace_id, version))
    if loaded is None:
        artifact = await repository.artifact_of(db, workspace_id, model_id)
        if artifact is None:
            return None
        loaded = classifier.LoadedClassifier(artifact)
        _remember((workspace_id, version), loaded)
    return version, loaded


async def detect_intent(
    runtime: Runtime, db: AsyncSession, workspace_id: uuid.UUID, text: str
) -> IntentMatch | None:
    """The best intent for `text`, or None when the workspace has no trained model (or the
    text is empty)."""
    if not text.strip():
        return None
    found = await _active_classifier(db, workspace_id)
    if found is None:
        return None
    version, model = found
    scores = model.probabilities(text)
    best = max(scores, key=scores.__getitem__)
    return IntentMatch(best, scores[best], version, scores)


# --- intents and their models --------------------------------------------------------------


async def dataset_of(db: AsyncSession, workspace_id: uuid.UUID) -> dict[str, list[str]]:
    return {i.name: list(i.examples) for i in await repository.all_intents(db, workspace_id)}


async def request_training(
    db: AsyncSession, workspace_id: uuid.UUID, requested_by: uuid.UUID | None
) -> AiIntentModel:
    """A new model version (queued) over a snapshot of today's intents, and its job."""
    dataset = await dataset_of(db, workspace_id)
    try:
        classifier.check_dataset(dataset)
    except classifier.TrainingError as exc:
        raise Unprocessable(str(exc), code="training_data_insufficient") from exc
    model = AiIntentModel(
        workspace_id=workspace_id,
        version=await repository.next_version(db, workspace_id),
        status="queued",
        is_active=False,
        dataset=dataset,
        metrics={},
        requested_by_id=requested_by,
    )
    try:
        async with db.begin_nested():
            db.add(model)
            await db.flush()
    except IntegrityError as exc:  # another request took this version number meanwhile
        raise Conflict(
            "Another training run was requested at the same moment; try again.",
            code="training_conflict",
        ) from exc
    enqueue(db, TRAIN_JOB, str(workspace_id), str(model.id))
    return model


async def activate(db: AsyncSession, model: AiIntentModel) -> None:
    """Makes `model` the workspace's one active version (a rollback is activating an older
    one)."""
    if model.status != "ready":
        raise Conflict("Only a trained (ready) model can be activated.", code="model_not_ready")
    await db.execute(
        update(AiIntentModel)
        .where(AiIntentModel.workspace_id == model.workspace_id)
        .where(AiIntentModel.id != model.id)
        .values(is_active=False)
    )
    model.is_active = True
    await db.flush()


async def finish_training(
    db: AsyncSession, model: AiIntentModel, result: classifier.TrainingResult
) -> None:
    model.artifact = result.artifact
    model.accuracy = result.accuracy
    model.metrics = result.metrics
    model.status, model.error, model.trained_at = "ready", None, utcnow()
    await db.flush()
    await activate(db, model)


async def train_in_thread(dataset: dict[str, list[str]]) -> classifier.TrainingResult:
    # Fitting is CPU work of a second or more: off the event loop.
    return await asyncio.to_thread(classifier.train, dataset)


# --- knowledge and generated answers -------------------------------------------------------


async def search_knowledge(
    db: AsyncSession, workspace_id: uuid.UUID, query: str, k: int
) -> list[tuple[KnowledgeEntry, float]]:
    entries = await repository.knowledge_base(db, workspace_id)
    if len(entries) > 200:  # fitting the index is CPU work: off the loop when it is not tiny
        hits = await asyncio.to_thread(retrieval.top_k, entries, query, k)
    else:
        hits = retrieval.top_k(entries, query, k)
    return [(entries[hit.index], hit.score) for hit in hits]


SYSTEM_PROMPT = (
    "You are the customer support assistant of this business, answering in a chat. Answer "
    "only from the knowledge entries below. If they do not contain the answer, say you do "
    "not know and offer to connect the customer with a person. Be brief and friendly, and "
    "answer in the customer's language."
)


def build_messages(
    question: str, entries: list[KnowledgeEntry], instructions: str | None
) -> list[dict[str, str]]:
    parts = [SYSTEM_PROMPT]
    if instructions:
        parts.append(f"Additional instructions from the business:\n{instructions}")
    if entries:
        blocks = []
        for number, entry in enumerate(entries, 1):
            block = f"[{number}] Q: {entry.question}\nA: {entry.answer}"
            if entry.content:
                block += f"\n{entry.content}"
            blocks.append(block)
        parts.append("Knowledge entries:\n\n" + "\n\n".join(blocks))
    else:
        parts.append("Knowledge entries: none match this question.")
    return [
        {"role": "system", "content": "\n\n".join(parts)},
        {"role": "user", "content": question},
    ]


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


async def _meter(
    db: AsyncSession,
    workspace_id: uuid.UUID,
    model: str,
    outcome: str,
    completion: llm.Completion | None = None,
) -> None:
    db.add(
        AiUsage(
            workspace_id=workspace_id,
            kind="answer",
            model=model[:100],
            outcome=outcome,
            prompt_tokens=completion.prompt_tokens if completion else 0,
            completion_tokens=completion.completion_tokens if completion else 0,
            total_tokens=completion.total_tokens if completion else 0,
        )
    )
    await db.flush()


async def _refusal(runtime: Runtime, db: AsyncSession, workspace_id: uuid.UUID) -> str | None:
    settings = runtime.settings
    if not settings.openai_api_key:
        return "not_configured"
    limit = settings.ai_monthly_token_limit
    if limit and await repository.tokens_since(db, workspace_id, month_start(utcnow())) >= limit:
        return "quota_exceeded"
    return None


async def generate_answer(
    runtime: Runtime,
    db: AsyncSession,
    workspace_id: uuid.UUID,
    question: str,
    *,
    instructions: str | None = None,
) -> GeneratedAnswer:
    """An answer from the language model grounded on the workspace's top-k knowledge
    entries; the fallback message when the model is not configured, the quota is spent, or
    the call times out or fails. Every call is metered (a usage row, flushed with `db`)."""
    settings = runtime.settings
    hits = await search_knowledge(db, workspace_id, question, settings.ai_knowledge_top_k)
    entries = [entry for entry, _ in hits]
    sources = tuple(entry.id for entry in entries)
    fallback = settings.ai_fallback_message
    refusal = await _refusal(runtime, db, workspace_id)
    if refusal is not None:
        log.warning("ai_answer_skipped", workspace_id=str(workspace_id), reason=refusal)
        await _meter(db, workspace_id, settings.openai_model, refusal)
        return GeneratedAnswer(fallback, True, outcome=refusal, sources=sources)
    messages = build_messages(question, entries, instructions)
    try:
        completion = await llm.chat_completion(runtime.http, settings, messages)
    except llm.LlmError as exc:
        log.error(
            "ai_answer_failed",
            workspace_id=str(workspace_id),
            outcome=exc.outcome,
            status=exc.status,
            error=str(exc),
            base_url=settings.openai_base_url,
        )
        await _meter(db, workspace_id, settings.openai_model, exc.outcome)
        return GeneratedAnswer(fallback, True, outcome=exc.outcome, sources=sources)
    await _meter(db, workspace_id, completion.model, "ok", completion)
    return GeneratedAnswer(
        completion.text,
        False,
        completion.prompt_tokens,
        completion.completion_tokens,
        sources=sources,
    )


def usage_summary(rows: list[tuple[str, int, int, int, int]]) -> dict[str, Any]:
    by_outcome = {o: {"calls": c, "total_tokens": t} for o, c, _, _, t in rows}
    return {
        "calls": sum(r[1] for r in rows),
        "prompt_tokens": sum(r[2] for r in rows),
        "completion_tokens": sum(r[3] for r in rows),
        "total_tokens": sum(r[4] for r in rows),
        "by_outcome": by_outcome,
    }
