"""A thin client for an OpenAI-compatible Chat Completions API (`POST {OPENAI_BASE_URL}/chat/
completions`), on the process's one HTTP client. It raises `LlmError` with an outcome the
caller meters and logs; it never retries (a customer is waiting: the caller falls back)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

from botplatform.config import Settings


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class LlmError(Exception):
    """`outcome` is `timeout` or `provider_error`; `status` the HTTP status when there was
    one."""

    def __init__(self, outcome: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.status = status


def _provider_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code") or error)[:300]
    return str(body)[:300]


def _parse(body: Any, fallback_model: str) -> Completion:
    try:
        message = body["choices"][0]["message"]
        text = message.get("content") or ""
        usage = body.get("usage") or {}
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        total = int(usage.get("total_tokens") or prompt + completion)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise LlmError("provider_error", f"unexpected response shape: {exc!r}") from exc
    if not isinstance(text, str) or not text.strip():
        raise LlmError("provider_error", "the model returned no text")
    model = str(body.get("model") or fallback_model)
    return Completion(text.strip(), model, prompt, completion, total)


async def chat_completion(
    http: httpx.AsyncClient, settings: Settings, messages: list[dict[str, str]]
) -> Completion:
    url = settings.openai_base_url.rstrip("/") + "/chat/completions"
    body = {
        "model": settings.openai_model,
        "messages": messages,
        "max_tokens": settings.openai_max_tokens,
        "temperature": settings.openai_temperature,
    }
    headers = {"Authorization": f"Bearer {settings.openai_api_key}"}
    seconds = settings.openai_timeout_seconds
    try:
        # httpx's timeouts bound each read; the outer deadline bounds the whole call.
        async with asyncio.timeout(seconds):
            response = await http.post(
                url, json=body, headers=headers, timeout=httpx.Timeout(seconds)
            )
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise LlmError("timeout", f"no answer within {seconds:g}s") from exc
    except httpx.HTTPError as exc:
        raise LlmError("provider_error", f"{type(exc).__name__}: {exc}") from exc
    if response.status_code != 200:
        raise LlmError("provider_error", _provider_message(response), status=response.status_code)
    try:
        payload = response.json()
    except ValueError as exc:
        raise LlmError("provider_error", "the response is not JSON", status=200) from exc
    return _parse(payload, settings.openai_model)
