"""AI: intents with their example phrases, training into model versions (with held-out
accuracy; activate an earlier one), a "which intent?" tester, and the knowledge entries that
generated answers are grounded on. Every action is the AI API's own endpoint function."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from botplatform.ai import endpoints as ai_api
from botplatform.ai.schemas import IntentCreate, KnowledgeCreate
from botplatform.audit.dependencies import Auditor
from botplatform.authz.permissions import Permission
from botplatform.dashboard.web import NOTICES, Page, PageRoute, attempt, parse_form, ws_page
from botplatform.kit.errors import AppError
from botplatform.kit.pagination import PageParams

router = APIRouter(prefix="/app/w/{ws}", route_class=PageRoute, include_in_schema=False)

ReadPage = Annotated[Page, ws_page(Permission.BOTS_READ)]
ManagePage = Annotated[Page, ws_page(Permission.BOTS_MANAGE)]
Text = Annotated[str, Query(max_length=2000)]
ALL = PageParams(200, None)

NOTICES.update(
    {
        "intent_added": "Intent added: it is learnt at the next training.",
        "training_queued": "Training queued: the new version appears below when it is ready.",
        "model_activated": "That version now classifies incoming messages.",
        "knowledge_added": "Knowledge entry added.",
        "ai_deleted": "Deleted.",
    }
)


def _lines(value: Any) -> list[str]:
    return [line.strip() for line in str(value or "").splitlines() if line.strip()]


async def _context(page: Page, **overrides: Any) -> dict[str, Any]:
    intents = await ai_api.list_intents(page.granted, page.db, ALL)
    models = await ai_api.list_models(page.granted, page.db, ALL)
    knowledge = await ai_api.list_knowledge(page.granted, page.db, ALL)
    context: dict[str, Any] = {
        "intents": intents.data.items,
        "models": list(reversed(models.data.items)),  # newest first
        "knowledge": knowledge.data.items,
        "may_manage": page.can(Permission.BOTS_MANAGE),
        "intent_values": {},
        "entry_values": {},
        "intent_errors": {},
        "entry_errors": {},
    }
    return {**context, **overrides}


@router.get("/ai")
async def ai_page(page: ReadPage, predict: Text = "") -> Response:
    context = await _context(page)
    status = 200
    if predict.strip():
        try:
            answer = await ai_api.predict_intent(
                page.granted, predict.strip(), page.db, page.runtime
            )
            context["prediction"] = answer.data
        except AppError as exc:
            context["predict_error"] = exc.message
            status = exc.status_code
    return page.render("app/ai.html", status, predict=predict, **context)


@router.post("/ai/intents")
async def add_intent(request: Request, page: ManagePage) -> Response:
    form = await page.form()
    values = {
        "name": str(form.get("name") or ""),
        "description": str(form.get("description") or ""),
        "examples": str(form.get("examples") or ""),
    }
    fields = {
        "name": values["name"],
        "description": values["description"] or None,
        "examples": _lines(values["examples"]),
    }
    body, errors = parse_form(IntentCreate, fields)
    try:
        if body is None:
            context = await _context(page, intent_values=values, intent_errors=errors)
            return page.render("app/ai.html", 422, **context)
        await attempt(
            page.db,
            lambda: ai_api.create_intent(page.granted, body, page.db, Auditor(request, page.db)),
        )
    except AppError as exc:
        context = await _context(page, intent_values=values, error=exc.message)
        return page.render("app/ai.html", exc.status_code, **context)
    return page.redirect(page.url("ai"), "intent_added")


@router.post("/ai/intents/{intent_id}/delete")
async def delete_intent(request: Request, page: ManagePage, intent_id: uuid.UUID) -> Response:
    await page.form()
    await ai_api.delete_intent(page.granted, intent_id, page.db, Auditor(request, page.db))
    return page.redirect(page.url("ai"), "ai_deleted")


@router.post("/ai/train")
async def train(request: Request, page: ManagePage) -> Response:
    await page.form()
    try:
        await attempt(
            page.db,
            lambda: ai_api.train_intents(page.granted, page.db, Auditor(request, page.db)),
        )
    except AppError as exc:
        return page.render(
            "app/ai.html", exc.status_code, error=exc.message, **await _context(page)
        )
    return page.redirect(page.url("ai"), "training_queued")


@router.post("/ai/models/{model_id}/activate")
async def activate(request: Request, page: ManagePage, model_id: uuid.UUID) -> Response:
    await page.form()
    try:
        await attempt(
            page.db,
            lambda: ai_api.activate_model(
                page.granted, model_id, page.db, Auditor(request, page.db)
            ),
        )
    except AppError as exc:
        return page.render(
            "app/ai.html", exc.status_code, error=exc.message, **await _context(page)
        )
    return page.redirect(page.url("ai"), "model_activated")


@router.post("/ai/knowledge")
async def add_knowledge(request: Request, page: ManagePage) -> Response:
    form = await page.form()
    values = {k: str(form.get(k) or "") for k in ("question", "answer", "content")}
    fields = {**values, "content": values["content"] or None}
    body, errors = parse_form(KnowledgeCreate, fields)
    try:
        if body is None:
            context = await _context(page, entry_values=values, entry_errors=errors)
            return page.render("app/ai.html", 422, **context)
        await attempt(
            page.db,
            lambda: ai_api.create_knowledge(page.granted, body, page.db, Auditor(request, page.db)),
        )
    except AppError as exc:
        context = await _context(page, entry_values=values, error=exc.message)
        return page.render("app/ai.html", exc.status_code, **context)
    return page.redirect(page.url("ai"), "knowledge_added")


@router.post("/ai/knowledge/{entry_id}/delete")
async def delete_knowledge(request: Request, page: ManagePage, entry_id: uuid.UUID) -> Response:
    await page.form()
    await ai_api.delete_knowledge(page.granted, entry_id, page.db, Auditor(request, page.db))
    return page.redirect(page.url("ai"), "ai_deleted")
