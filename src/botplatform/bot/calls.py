"""The outside calls a flow makes: an HTTP request to the customer's API (through the
SSRF-safe client, with a timeout, JSON fields mapped to variables, an error port) and an AI
answer or intent (the AI domain). On the channel path neither runs inside the inbound
message's transaction: a job makes the call, then the run goes on."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.ai import service as ai
from botplatform.bot.engine import Outcome
from botplatform.bot.interpolate import dig, render, render_json
from botplatform.kit.logging import get_logger
from botplatform.kit.safe_http import BlockedDestination, safe_request

if TYPE_CHECKING:
    from botplatform.runtime import Runtime

log = get_logger("botplatform.bot")


async def detect_intent(
    runtime: Runtime, db: AsyncSession, workspace_id: uuid.UUID, text: str
) -> ai.IntentMatch | None:
    """The AI domain's best intent for `text` (`.name`, `.confidence`), or None."""
    return await ai.detect_intent(runtime, db, workspace_id, text)


async def ai_answer(
    runtime: Runtime,
    db: AsyncSession,
    workspace_id: uuid.UUID,
    node: dict[str, Any],
    scope: dict[str, Any],
) -> Outcome:
    """An answer grounded on the workspace's knowledge; the AI domain's fallback message
    (timeout, provider error, quota) leaves by the `fallback` port."""
    question = render(node.get("question") or "{{input.text}}", scope).strip()
    if not question:
        return Outcome("fallback", error="ai_no_question")
    instructions = render(node["instructions"], scope) if node.get("instructions") else None
    answer = await ai.generate_answer(
        runtime, db, workspace_id, question[:4000], instructions=instructions
    )
    variables = {node["save_as"]: answer.text} if node.get("save_as") else {}
    if answer.fallback_used:
        return Outcome("fallback", variables, reply=answer.text, error=f"ai_{answer.outcome}")
    return Outcome("next", variables, reply=answer.text)


async def http_request(runtime: Runtime, node: dict[str, Any], scope: dict[str, Any]) -> Outcome:
    """One request; `save` maps variables to JSON paths of the answer (`data.items.0.id`).
    Refused destinations, timeouts and 4xx/5xx answers leave by the `error` port, with
    `vars.http_status` and `vars.http_error` saying what happened."""
    url = render(node["url"], scope)
    headers = {k: render(v, scope) for k, v in node.get("headers", {}).items()}
    body = render_json(node["body"], scope) if "body" in node else None
    try:
        response = await safe_request(
            runtime.http,
            node.get("method", "GET"),
            url,
            allowlist=runtime.settings.outbound_allowlist,
            headers=headers,
            json=body,
            content=None,
            timeout=float(node.get("timeout_seconds", 10)),
        )
    except BlockedDestination as exc:
        return _failed(f"blocked: {exc.message}")
    except httpx.TimeoutException:
        return _failed("timeout")
    except httpx.HTTPError as exc:
        return _failed(f"network: {type(exc).__name__}")
    data = _decode(response)
    variables: dict[str, Any] = {"http_status": response.status_code}
    for name, path in node.get("save", {}).items():
        parts = [p for p in path.split(".") if p]
        variables[name] = dig(data, parts) if parts else data
    if response.status_code >= 400:
        variables["http_error"] = f"status {response.status_code}"
        return Outcome("error", variables, error=variables["http_error"])
    return Outcome("next", variables)


def _decode(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return None


def _failed(reason: str) -> Outcome:
    log.info("bot_http_failed", reason=reason)
    return Outcome("error", {"http_status": 0, "http_error": reason}, error=reason)
