"""The AI interface the bot engine calls: `detect_intent` and `generate_answer`, against the
real database and the fake OpenAI-compatible server on loopback."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from botplatform.ai import classifier, service
from botplatform.kit.scoping import enter_workspace
from botplatform.models import AiIntent, AiIntentModel, AiUsage, KnowledgeEntry
from botplatform.runtime import Runtime
from tests.conftest import Api, set_quota
from tests.fakes.openai import FakeOpenAI

DATASET = Path(service.__file__).parent / "datasets" / "support_intents.json"

FAQ = [
    ("What are your opening hours?", "We are open Monday to Friday, 9:00 to 18:00."),
    ("Do you ship abroad?", "Yes, we ship to every EU country within 5 working days."),
    ("How can I return an item?", "Returns are free within 30 days using the prepaid label."),
    ("Which payment methods do you accept?", "Visa, Mastercard, PayPal and bank transfer."),
]


def support_dataset() -> dict[str, list[str]]:
    intents: dict[str, list[str]] = json.loads(DATASET.read_text())["intents"]
    return intents


async def workspace(api: Api) -> uuid.UUID:
    owner = await api.register()
    return uuid.UUID(await api.create_workspace(owner))


async def add_knowledge(runtime: Runtime, ws: uuid.UUID) -> list[uuid.UUID]:
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        entries = [KnowledgeEntry(workspace_id=ws, question=q, answer=a) for q, a in FAQ]
        db.add_all(entries)
        await db.flush()
        return [entry.id for entry in entries]


async def trained_model(runtime: Runtime, ws: uuid.UUID) -> AiIntentModel:
    """Intents stored and a version trained the way the job does it, synchronously."""
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        for name, phrases in support_dataset().items():
            db.add(AiIntent(workspace_id=ws, name=name, examples=phrases))
        await db.flush()
        model = await service.request_training(db, ws, None)
        model.status = "training"
        await service.finish_training(db, model, classifier.train(model.dataset))
        return model


async def test_no_model_means_no_intent(api: Api, runtime: Runtime) -> None:
    ws = await workspace(api)
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        assert await service.detect_intent(runtime, db, ws, "hello there") is None


async def test_detect_intent_with_the_active_model(api: Api, runtime: Runtime) -> None:
    ws = await workspace(api)
    model = await trained_model(runtime, ws)
    assert model.accuracy is not None and model.accuracy >= 0.9
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        cases = {
            "hey, good morning!": "greeting",
            "where is my parcel, it's been a week": "order_status",
            "what time do you open on saturday?": "opening_hours",
            "I want to speak to a real person": "human_agent",
            "please cancel my order": "cancel",
            "how much is the pro plan?": "pricing",
        }
        for text, expected in cases.items():
            match = await service.detect_intent(runtime, db, ws, text)
            assert match is not None
            assert (match.name, match.version) == (expected, 1), text
            assert 0.3 < match.confidence <= 1.0
            assert sum(match.scores.values()) == pytest.approx(1.0)
        assert await service.detect_intent(runtime, db, ws, "   ") is None


async def test_answer_is_grounded_on_the_best_entries_and_metered(
    api: Api, runtime: Runtime, openai: FakeOpenAI
) -> None:
    ws = await workspace(api)
    ids = await add_knowledge(runtime, ws)
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        answer = await service.generate_answer(
            runtime, db, ws, "Do you ship to Germany?", instructions="Sign as Ada."
        )
    assert answer.fallback_used is False and answer.outcome == "ok"
    assert answer.text == f"Here is what I found: {FAQ[1][1]}"
    assert answer.sources[0] == ids[1]
    (request,) = openai.requests
    assert request["model"] == runtime.settings.openai_model
    assert request["max_tokens"] == runtime.settings.openai_max_tokens
    system, user = request["messages"]
    assert system["role"] == "system"
    assert user == {"role": "user", "content": "Do you ship to Germany?"}
    assert FAQ[1][0] in system["content"] and FAQ[1][1] in system["content"]
    assert "Sign as Ada." in system["content"]
    assert answer.prompt_tokens > 20 and answer.completion_tokens > 5
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        (usage,) = (await db.execute(select(AiUsage))).scalars()
    assert (usage.workspace_id, usage.outcome) == (ws, "ok")
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        answer.prompt_tokens,
        answer.completion_tokens,
    )
    assert usage.total_tokens == answer.prompt_tokens + answer.completion_tokens


@pytest.mark.parametrize(
    ("setup", "outcome", "status"),
    [
        ("timeout", "timeout", None),
        ("server_error", "provider_error", 503),
        ("bad_key", "provider_error", 401),
    ],
)
async def test_failures_answer_the_fallback_and_say_why(
    setup: str,
    outcome: str,
    status: int | None,
    api: Api,
    runtime: Runtime,
    openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ws = await workspace(api)
    await add_knowledge(runtime, ws)
    if setup == "timeout":
        openai.delay = 2.0
        monkeypatch.setattr(runtime.settings, "openai_timeout_seconds", 0.3)
    elif setup == "server_error":
        openai.fail_status = 503
    else:
        monkeypatch.setattr(runtime.settings, "openai_api_key", "sk-wrong-key-000000")
    caplog.set_level(logging.WARNING)
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        answer = await service.generate_answer(runtime, db, ws, "Do you ship abroad?")
    assert answer.fallback_used is True
    assert answer.text == runtime.settings.ai_fallback_message
    assert (answer.outcome, answer.prompt_tokens, answer.completion_tokens) == (outcome, 0, 0)
    logged = [r for r in caplog.records if "ai_answer_failed" in r.getMessage()]
    assert logged, [r.getMessage() for r in caplog.records]
    text = logged[-1].getMessage()
    assert outcome in text
    if status:
        assert str(status) in text
    if setup == "bad_key":
        assert "Incorrect API key" in text
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        (usage,) = (await db.execute(select(AiUsage))).scalars()
    assert (usage.outcome, usage.total_tokens) == (outcome, 0)


async def test_not_configured_and_quota_fall_back_without_calling(
    api: Api, runtime: Runtime, openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = await workspace(api)
    await add_knowledge(runtime, ws)
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        first = await service.generate_answer(runtime, db, ws, "How can I return an item?")
    assert first.fallback_used is False
    spent = first.prompt_tokens + first.completion_tokens
    await set_quota(runtime, "starter", ai_tokens_per_month=spent)
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        capped = await service.generate_answer(runtime, db, ws, "How can I return an item?")
    assert (capped.fallback_used, capped.outcome) == (True, "quota_exceeded")
    await set_quota(runtime, "starter", ai_tokens_per_month=None)
    monkeypatch.setattr(runtime.settings, "openai_api_key", "")
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        unset = await service.generate_answer(runtime, db, ws, "How can I return an item?")
    assert (unset.fallback_used, unset.outcome) == (True, "not_configured")
    assert len(openai.requests) == 1
