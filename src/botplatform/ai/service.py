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

from botplatform.ai import classifier, llm, repository, retrieval, schemas
from botplatform.audit.service import diff
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import Conflict, Unprocessable
from botplatform.kit.logging import get_logger
from botplatform.kit.scoping import enter_workspace
from botplatform.models import AiIntent, AiIntentModel, AiUsage, KnowledgeEntry
from botplatform.usage import service as usage
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
    await usage.add_ai_tokens(db, workspace_id, completion.total_tokens if completion else 0)
    await db.flush()


async def _refusal(runtime: Runtime, db: AsyncSession, workspace_id: uuid.UUID) -> str | None:
    settings = runtime.settings
    if not settings.openai_api_key:
        return "not_configured"
    if await usage.ai_tokens_spent(db, workspace_id):  # the plan's tokens for this month
        return "quota_exceeded"
    return None


@dataclass(frozen=True)
class PreparedAnswer:
    """What one answer needs, read from the database: the prompt, the entries it is grounded
    on, and `refusal` when the model must not be called (`not_configured`,
    `quota_exceeded`)."""

    workspace_id: uuid.UUID
    messages: list[dict[str, str]]
    sources: tuple[uuid.UUID, ...]
    refusal: str | None


@dataclass(frozen=True)
class ModelReply:
    outcome: str
    completion: llm.Completion | None = None


async def prepare_answer(
    runtime: Runtime,
    db: AsyncSession,
    workspace_id: uuid.UUID,
    question: str,
    *,
    instructions: str | None = None,
) -> PreparedAnswer:
    """Reads only: retrieval, the quota, the prompt."""
    hits = await search_knowledge(db, workspace_id, question, runtime.settings.ai_knowledge_top_k)
    entries = [entry for entry, _ in hits]
    return PreparedAnswer(
        workspace_id,
        build_messages(question, entries, instructions),
        tuple(entry.id for entry in entries),
        await _refusal(runtime, db, workspace_id),
    )


async def ask_model(runtime: Runtime, prepared: PreparedAnswer) -> ModelReply:
    """The Chat Completions call; touches no database, so a caller on SQLite can commit
    before it and not hold the write lock for up to OPENAI_TIMEOUT_SECONDS."""
    settings, ws = runtime.settings, str(prepared.workspace_id)
    if prepared.refusal is not None:
        log.warning("ai_answer_skipped", workspace_id=ws, reason=prepared.refusal)
        return ModelReply(prepared.refusal)
    try:
        completion = await llm.chat_completion(runtime.http, settings, prepared.messages)
    except llm.LlmError as exc:
        log.error(
            "ai_answer_failed",
            workspace_id=ws,
            outcome=exc.outcome,
            status=exc.status,
            error=str(exc),
            base_url=settings.openai_base_url,
        )
        return ModelReply(exc.outcome)
    return ModelReply("ok", completion)


async def record_answer(
    runtime: Runtime, db: AsyncSession, prepared: PreparedAnswer, reply: ModelReply
) -> GeneratedAnswer:
    """Meters the call (a usage row, flushed with `db`) and shapes the answer. Re-enters the
    workspace, so it also works in a transaction begun after `ask_model`."""
    await enter_workspace(db, prepared.workspace_id)
    completion = reply.completion
    model = completion.model if completion else runtime.settings.openai_model
    await _meter(db, prepared.workspace_id, model, reply.outcome, completion)
    if completion is None:
        return GeneratedAnswer(
            runtime.settings.ai_fallback_message,
            True,
            outcome=reply.outcome,
            sources=prepared.sources,
        )
    return GeneratedAnswer(
        completion.text,
        False,
        completion.prompt_tokens,
        completion.completion_tokens,
        sources=prepared.sources,
    )


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
    the call times out or fails. Every call is metered (a usage row, flushed with `db`).

    On SQLite, a transaction that has written holds the database's write lock through the
    model call; callers that can should run `prepare_answer`, commit, `ask_model`, then
    `record_answer` instead (the three steps this function chains)."""
    prepared = await prepare_answer(runtime, db, workspace_id, question, instructions=instructions)
    reply = await ask_model(runtime, prepared)
    return await record_answer(runtime, db, prepared, reply)


def usage_summary(rows: list[tuple[str, int, int, int, int]]) -> dict[str, Any]:
    by_outcome = {o: {"calls": c, "total_tokens": t} for o, c, _, _, t in rows}
    return {
        "calls": sum(r[1] for r in rows),
        "prompt_tokens": sum(r[2] for r in rows),
        "completion_tokens": sum(r[3] for r in rows),
        "total_tokens": sum(r[4] for r in rows),
        "by_outcome": by_outcome,
    }


# --- CRUD ----------------------------------------------------------------------------------


async def _ensure_name_free(
    db: AsyncSession, workspace_id: uuid.UUID, name: str, keep: uuid.UUID | None = None
) -> None:
    found = await repository.intent_named(db, workspace_id, name)
    if found is not None and found.id != keep:
        raise Conflict(f"An intent named {name!r} exists already.", code="intent_exists")


async def create_intent(
    db: AsyncSession, workspace_id: uuid.UUID, data: schemas.IntentCreate
) -> AiIntent:
    await _ensure_name_free(db, workspace_id, data.name)
    intent = AiIntent(
        workspace_id=workspace_id,
        name=data.name,
        description=data.description or None,
        examples=list(data.examples),
    )
    try:
        async with db.begin_nested():  # the unique name, should a twin request win the race
            db.add(intent)
            await db.flush()
    except IntegrityError as exc:
        raise Conflict(
            f"An intent named {data.name!r} exists already.", code="intent_exists"
        ) from exc
    return intent


async def update_intent(
    db: AsyncSession, intent: AiIntent, data: schemas.IntentUpdate
) -> dict[str, Any]:
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    if "name" in changes:
        await _ensure_name_free(db, intent.workspace_id, changes["name"], keep=intent.id)
    before = {name: getattr(intent, name) for name in changes}
    for name, value in changes.items():
        setattr(intent, name, value if value != "" else None)
    await db.flush()
    # Counts rather than the phrases themselves, which would bloat the audit log.
    summary = {k: len(v) if k == "examples" else v for k, v in before.items()}
    return diff(summary, {k: len(v) if k == "examples" else v for k, v in changes.items()})


async def create_entry(
    db: AsyncSession, workspace_id: uuid.UUID, data: schemas.KnowledgeCreate
) -> KnowledgeEntry:
    entry = KnowledgeEntry(
        workspace_id=workspace_id,
        question=data.question,
        answer=data.answer,
        content=data.content or None,
    )
    db.add(entry)
    await db.flush()
    return entry


async def update_entry(
    db: AsyncSession, entry: KnowledgeEntry, data: schemas.KnowledgeUpdate
) -> dict[str, Any]:
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    before = {name: getattr(entry, name) for name in changes}
    for name, value in changes.items():
        setattr(entry, name, value or None if name == "content" else value)
    await db.flush()
    return diff(before, {name: getattr(entry, name) for name in changes})


def intent_out(intent: AiIntent) -> schemas.IntentOut:
    return schemas.IntentOut.model_validate(intent, from_attributes=True)


def model_out(model: AiIntentModel) -> schemas.IntentModelOut:
    return schemas.IntentModelOut(
        id=model.id,
        version=model.version,
        status=model.status,
        is_active=model.is_active,
        accuracy=model.accuracy,
        intents=sorted(model.dataset or {}),
        metrics=model.metrics or {},
        error=model.error,
        trained_at=model.trained_at,
        created_at=model.created_at,
    )


def entry_out(entry: KnowledgeEntry) -> schemas.KnowledgeOut:
    return schemas.KnowledgeOut.model_validate(entry, from_attributes=True)
