from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from botplatform.ai import repository, service
from botplatform.ai.schemas import (
    AnswerOut,
    AnswerRequest,
    IntentCreate,
    IntentModelOut,
    IntentOut,
    IntentUpdate,
    KnowledgeCreate,
    KnowledgeHit,
    KnowledgeOut,
    KnowledgeUpdate,
    PredictionOut,
    UsageOut,
)
from botplatform.audit.dependencies import Audit
from botplatform.authz.dependencies import BotsManage, BotsRead
from botplatform.db import DbSession
from botplatform.kit.clock import utcnow
from botplatform.kit.envelope import Envelope, ok
from botplatform.kit.errors import Conflict
from botplatform.kit.pagination import Page, PageQuery, paginate
from botplatform.models import AiIntent, AiIntentModel, KnowledgeEntry
from botplatform.runtime import RuntimeDep
from botplatform.usage import service as usage

router = APIRouter(prefix="/workspaces/{ws}/ai", tags=["ai"])

PredictText = Annotated[str, Query(min_length=1, max_length=2000, description="Text to classify")]


# --- intents -------------------------------------------------------------------------------


@router.get("/intents")
async def list_intents(
    access: BotsRead, db: DbSession, page: PageQuery
) -> Envelope[Page[IntentOut]]:
    statement = repository.intents_statement(access.workspace_id)
    rows, next_cursor = await paginate(db, statement, AiIntent.created_at, AiIntent.id, page)
    return ok(Page(items=[service.intent_out(row[0]) for row in rows], next_cursor=next_cursor))


@router.post("/intents", status_code=status.HTTP_201_CREATED)
async def create_intent(
    access: BotsManage, body: IntentCreate, db: DbSession, audit: Audit
) -> Envelope[IntentOut]:
    """Adds an intent with its example phrases; it is learnt at the next training run."""
    intent = await service.create_intent(db, access.workspace_id, body)
    await audit.log(
        "ai_intent.create",
        workspace_id=access.workspace_id,
        target_type="ai_intent",
        target_id=intent.id,
        changes={"name": intent.name, "examples": len(intent.examples)},
    )
    return ok(service.intent_out(intent), "Intent created")


@router.get("/intents/predict")
async def predict_intent(
    access: BotsRead, text: PredictText, db: DbSession, runtime: RuntimeDep
) -> Envelope[PredictionOut]:
    """Classifies `text` with the active model version (the bot tester's "which intent?")."""
    match = await service.detect_intent(runtime, db, access.workspace_id, text)
    if match is None:
        raise Conflict(
            "There is no trained intent model yet: add intents and train one first.",
            code="no_active_model",
        )
    return ok(
        PredictionOut(
            intent=match.name,
            confidence=round(match.confidence, 4),
            version=match.version,
            scores={name: round(p, 4) for name, p in match.scores.items()},
        )
    )


@router.post("/intents/train", status_code=status.HTTP_202_ACCEPTED)
async def train_intents(
    access: BotsManage, db: DbSession, audit: Audit
) -> Envelope[IntentModelOut]:
    """Queues a new model version trained on today's intents. It becomes the active version
    when training succeeds; earlier versions are kept (and can be activated again)."""
    model = await service.request_training(db, access.workspace_id, access.membership.user_id)
    await audit.log(
        "ai_model.train",
        workspace_id=access.workspace_id,
        target_type="ai_intent_model",
        target_id=model.id,
        changes={"version": model.version, "intents": len(model.dataset)},
    )
    return ok(service.model_out(model), "Training queued")


@router.get("/intents/{intent_id}")
async def get_intent(access: BotsRead, intent_id: uuid.UUID, db: DbSession) -> Envelope[IntentOut]:
    return ok(service.intent_out(await repository.get_intent(db, access.workspace_id, intent_id)))


@router.patch("/intents/{intent_id}")
async def update_intent(
    access: BotsManage, intent_id: uuid.UUID, body: IntentUpdate, db: DbSession, audit: Audit
) -> Envelope[IntentOut]:
    intent = await repository.get_intent(db, access.workspace_id, intent_id)
    changes = await service.update_intent(db, intent, body)
    await audit.log(
        "ai_intent.update",
        workspace_id=access.workspace_id,
        target_type="ai_intent",
        target_id=intent.id,
        changes=changes,
    )
    return ok(service.intent_out(intent), "Intent updated")


@router.delete("/intents/{intent_id}")
async def delete_intent(
    access: BotsManage, intent_id: uuid.UUID, db: DbSession, audit: Audit
) -> Envelope[None]:
    """Deletes the intent; trained versions keep recognising it until the next training."""
    intent = await repository.get_intent(db, access.workspace_id, intent_id)
    await db.delete(intent)
    await db.flush()
    await audit.log(
        "ai_intent.delete",
        workspace_id=access.workspace_id,
        target_type="ai_intent",
        target_id=intent_id,
        changes={"name": intent.name},
    )
    return ok(None, "Intent deleted")


# --- model versions ------------------------------------------------------------------------


@router.get("/models")
async def list_models(
    access: BotsRead, db: DbSession, page: PageQuery
) -> Envelope[Page[IntentModelOut]]:
    """Every trained (or training) version, oldest first, with its held-out accuracy."""
    rows, next_cursor = await paginate(
        db,
        repository.models_statement(access.workspace_id),
        AiIntentModel.created_at,
        AiIntentModel.id,
        page,
    )
    return ok(Page(items=[service.model_out(row[0]) for row in rows], next_cursor=next_cursor))


@router.get("/models/{model_id}")
async def get_model(
    access: BotsRead, model_id: uuid.UUID, db: DbSession
) -> Envelope[IntentModelOut]:
    return ok(service.model_out(await repository.get_model(db, access.workspace_id, model_id)))


@router.post("/models/{model_id}/activate")
async def activate_model(
    access: BotsManage, model_id: uuid.UUID, db: DbSession, audit: Audit
) -> Envelope[IntentModelOut]:
    """Makes this version the one inference uses (e.g. to roll back a worse retraining)."""
    model = await repository.get_model(db, access.workspace_id, model_id)
    await service.activate(db, model)
    await audit.log(
        "ai_model.activate",
        workspace_id=access.workspace_id,
        target_type="ai_intent_model",
        target_id=model.id,
        changes={"version": model.version},
    )
    return ok(service.model_out(model), "Model activated")


# --- knowledge -----------------------------------------------------------------------------


@router.get("/knowledge")
async def list_knowledge(
    access: BotsRead, db: DbSession, page: PageQuery
) -> Envelope[Page[KnowledgeOut]]:
    rows, next_cursor = await paginate(
        db,
        repository.knowledge_statement(access.workspace_id),
        KnowledgeEntry.created_at,
        KnowledgeEntry.id,
        page,
    )
    return ok(Page(items=[service.entry_out(row[0]) for row in rows], next_cursor=next_cursor))


@router.post("/knowledge", status_code=status.HTTP_201_CREATED)
async def create_knowledge(
    access: BotsManage, body: KnowledgeCreate, db: DbSession, audit: Audit
) -> Envelope[KnowledgeOut]:
    """Adds a FAQ / knowledge entry that generated answers can be grounded on."""
    entry = await service.create_entry(db, access.workspace_id, body)
    await audit.log(
        "knowledge.create",
        workspace_id=access.workspace_id,
        target_type="knowledge_entry",
        target_id=entry.id,
        changes={"question": entry.question},
    )
    return ok(service.entry_out(entry), "Knowledge entry created")


@router.get("/knowledge/search")
async def search_knowledge(
    access: BotsRead,
    db: DbSession,
    q: Annotated[str, Query(min_length=1, max_length=2000, description="A customer's question")],
    k: Annotated[int, Query(ge=1, le=20, description="How many entries")] = 3,
) -> Envelope[list[KnowledgeHit]]:
    """The entries an answer to `q` would be grounded on, best first (TF-IDF cosine)."""
    hits = await service.search_knowledge(db, access.workspace_id, q, k)
    return ok([KnowledgeHit(entry=service.entry_out(e), score=round(s, 4)) for e, s in hits])


@router.get("/knowledge/{entry_id}")
async def get_knowledge(
    access: BotsRead, entry_id: uuid.UUID, db: DbSession
) -> Envelope[KnowledgeOut]:
    return ok(service.entry_out(await repository.get_entry(db, access.workspace_id, entry_id)))


@router.patch("/knowledge/{entry_id}")
async def update_knowledge(
    access: BotsManage, entry_id: uuid.UUID, body: KnowledgeUpdate, db: DbSession, audit: Audit
) -> Envelope[KnowledgeOut]:
    entry = await repository.get_entry(db, access.workspace_id, entry_id)
    changes = await service.update_entry(db, entry, body)
    await audit.log(
        "knowledge.update",
        workspace_id=access.workspace_id,
        target_type="knowledge_entry",
        target_id=entry.id,
        changes=changes,
    )
    return ok(service.entry_out(entry), "Knowledge entry updated")


@router.delete("/knowledge/{entry_id}")
async def delete_knowledge(
    access: BotsManage, entry_id: uuid.UUID, db: DbSession, audit: Audit
) -> Envelope[None]:
    entry = await repository.get_entry(db, access.workspace_id, entry_id)
    await db.delete(entry)
    await db.flush()
    await audit.log(
        "knowledge.delete",
        workspace_id=access.workspace_id,
        target_type="knowledge_entry",
        target_id=entry_id,
        changes={"question": entry.question},
    )
    return ok(None, "Knowledge entry deleted")


# --- answers and usage ---------------------------------------------------------------------


@router.post("/answer")
async def answer_question(
    access: BotsManage, body: AnswerRequest, db: DbSession, runtime: RuntimeDep, audit: Audit
) -> Envelope[AnswerOut]:
    """Asks the language model, grounded on the top-k knowledge entries, as a bot's AI
    answer would; the tokens are metered to the workspace. On a timeout or provider failure
    the answer is the fallback message, with `fallback_used` and the reason in `outcome`."""
    prepared = await service.prepare_answer(
        runtime, db, access.workspace_id, body.question, instructions=body.instructions
    )
    # Nothing is written yet: end the transaction so that on SQLite this request does not hold
    # the database's write lock while the model thinks (up to OPENAI_TIMEOUT_SECONDS).
    await db.commit()
    reply = await service.ask_model(runtime, prepared)
    answer = await service.record_answer(runtime, db, prepared, reply)
    await audit.log(
        "ai.answer",
        workspace_id=access.workspace_id,
        target_type="workspace",
        target_id=access.workspace_id,
        changes={
            "outcome": answer.outcome,
            "tokens": answer.prompt_tokens + answer.completion_tokens,
        },
    )
    return ok(
        AnswerOut(
            text=answer.text,
            fallback_used=answer.fallback_used,
            outcome=answer.outcome,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            sources=list(answer.sources),
        )
    )


@router.get("/usage")
async def ai_usage(access: BotsRead, db: DbSession) -> Envelope[UsageOut]:
    """AI calls and tokens of this calendar month (UTC), against the plan's monthly limit."""
    since = service.month_start(utcnow())
    summary = service.usage_summary(await repository.usage_since(db, access.workspace_id, since))
    limit = (await usage.plan_of(db, access.workspace)).ai_tokens_per_month
    return ok(UsageOut(period_start=since, monthly_token_limit=limit, **summary))
