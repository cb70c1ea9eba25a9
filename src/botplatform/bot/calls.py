"""The outside calls a flow makes: an HTTP request to the customer's API (through the
SSRF-safe client, with a timeout, JSON fields mapped to variables, an error port) and an AI
answer or intent (the AI domain). Neither runs inside a database transaction on the channel
path: a job makes the call, then the run goes on."""

from __future__ import annotations

import importlib
import json
import uuid
from types import ModuleType
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.bot.engine import Outcome
from botplatform.bot.interpolate import dig, render, render_json
from botplatform.kit.errors import NotAvailable
from botplatform.kit.logging import get_logger

if TYPE_CHECKING:
    from botplatform.runtime import Runtime

log = get_logger("botplatform.bot")
MAX_RESPONSE_BYTES = 1_048_576


def _module(name: str, what: str) -> ModuleType:
    """A module another part of the platform provides, imported only when a flow needs it:
    while it is missing, the feature says so plainly."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and not name.startswith(exc.name):
            raise
        raise NotAvailable(f"{what} is not available yet.", code="not_available") from exc


async def detect_intent(
    runtime: Runtime, db: AsyncSession, workspace_id: uuid.UUID, text: str
) -> Any:
    """The AI domain's best intent for `text` (`.name`, `.confidence`), or None."""
    service = _module("botplatform.ai.service", "Intent recognition")
    return await service.detect_intent(runtime, db, workspace_id, text)


async def ai_answer(
    runtime: Runtime,
    db: AsyncSession,
    workspace_id: uuid.UUID,
    node: dict[str, Any],
    scope: dict[str, Any],
) -> Outcome:
    question = render(node.get("question") or "{{input.text}}", scope).strip()
    if not question:
        return Outcome("fallback", error="ai_no_question")
    instructions = render(node["instructions"], scope) if node.get("instructions") else None
    try:
        service = _module("botplatform.ai.service", "AI answers")
    except NotAvailable as exc:
        return Outcome("fallback", error=f"{exc.code}: {exc.message}")
    answer = await service.generate_answer(
        runtime, db, workspace_id, question, instructions=instructions
    )
    variables = {node["save_as"]: answer.text} if node.get("save_as") else {}
    port = "fallback" if answer.fallback_used else "next"
    return Outcome(port, variables, reply=answer.text)


def _decode(response: httpx.Response) -> Any:
    if len(response.content) > MAX_RESPONSE_BYTES:
        return None
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return None


async def http_request(runtime: Runtime, node: dict[str, Any], scope: dict[str, Any]) -> Outcome:
    """One request; `save` maps variables to JSON paths of the answer (`data.items.0.id`).
    Refused destinations, timeouts and 4xx/5xx answers leave by the `error` port, with
    `vars.http_status` and `vars.http_error` saying what happened."""
    try:
        safe = _module("botplatform.kit.safe_http", "The SSRF-safe HTTP client")
    except NotAvailable as exc:
        return Outcome("error", {"http_error": exc.message}, error=f"{exc.code}: {exc.message}")
    url = render(node["url"], scope)
    headers = {k: render(v, scope) for k, v in node.get("headers", {}).items()}
    body = render_json(node["body"], scope) if "body" in node else None
    settings = runtime.settings
    try:
        response = await safe.safe_request(
            runtime.http,
            node.get("method", "GET"),
            url,
            allowlist=getattr(settings, "outbound_allowlist", []),
            headers=headers,
            json=body,
            content=None,
            timeout=float(node.get("timeout_seconds", 10)),
        )
    except safe.BlockedDestination as exc:
        return _failed(0, f"blocked: {exc}")
    except httpx.TimeoutException:
        return _failed(0, "timeout")
    except httpx.HTTPError as exc:
        return _failed(0, f"network: {type(exc).__name__}")
    data = _decode(response)
    variables: dict[str, Any] = {"http_status": response.status_code}
    for name, path in node.get("save", {}).items():
        parts = [p for p in path.split(".") if p]
        variables[name] = dig(data, parts) if parts else data
    if response.status_code >= 400:
        variables["http_error"] = f"status {response.status_code}"
        return Outcome("error", variables, error=variables["http_error"])
    return Outcome("next", variables)


def _failed(status: int, reason: str) -> Outcome:
    log.info("bot_http_failed", reason=reason)
    return Outcome("error", {"http_status": status, "http_error": reason}, error=reason)


def preview(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)[:200]
