"""A fake OpenAI-compatible server on loopback: `POST /v1/chat/completions` as the real API
speaks it — bearer key checked, request body validated (400 with OpenAI's error shape),
an answer with realistic `usage` counts. Tests can make it slow (`delay`), fail (`fail_status`)
or say something fixed (`reply`); it keeps every accepted request body in `requests`.

Its "model" answers from the grounding it was given: it quotes the first knowledge entry's
answer (`A: …` in the system message), or says it does not know.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

API_KEY = "sk-test-fake-openai-0123456789abcdef"
ROLES = {"system", "developer", "user", "assistant", "tool"}
_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """About what a BPE tokenizer gives for English: one per word or punctuation mark."""
    return len(_TOKEN.findall(text))


@dataclass
class FakeOpenAI:
    api_key: str = API_KEY
    delay: float = 0.0
    fail_status: int | None = None
    reply: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        self.delay, self.fail_status, self.reply = 0.0, None, None
        self.requests.clear()

    def answer_for(self, messages: list[dict[str, Any]]) -> str:
        if self.reply is not None:
            return self.reply
        system = "\n".join(m["content"] for m in messages if m["role"] == "system")
        grounded = re.search(r"^\[1\] Q: .*\nA: (.+)$", system, re.MULTILINE)
        if grounded:
            return f"Here is what I found: {grounded.group(1)}"
        return "I don't know that, but I can connect you with a person from the team."


def _error(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status)


def _invalid(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array"
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return f"Invalid value for 'messages[{index}].role'."
        if not isinstance(message.get("content"), str):
            return f"Invalid type for 'messages[{index}].content': expected a string."
    max_tokens = body.get("max_tokens", 1)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "Invalid 'max_tokens': integer below minimum value."
    temperature = body.get("temperature", 1)
    if not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
        return "Invalid 'temperature': must be a number between 0 and 2."
    return None


async def chat_completions(request: Request) -> JSONResponse:
    fake: FakeOpenAI = request.app.state.fake
    if request.headers.get("authorization") != f"Bearer {fake.api_key}":
        given = request.headers.get("authorization", "").removeprefix("Bearer ")
        return _error(
            401,
            f"Incorrect API key provided: {given[:3]}***{given[-4:]}.",
            "invalid_request_error",
            "invalid_api_key",
        )
    try:
        body = await request.json()
    except ValueError:
        message = "We could not parse the JSON body of your request."
        return _error(400, message, "invalid_request_error")
    problem = _invalid(body)
    if problem:
        return _error(400, problem, "invalid_request_error")
    fake.requests.append(body)
    if fake.delay:
        await asyncio.sleep(fake.delay)
    if fake.fail_status is not None:
        message = "The server had an error while processing your request."
        return _error(fake.fail_status, message, "server_error")
    text = fake.answer_for(body["messages"])
    completion_tokens = min(count_tokens(text), body.get("max_tokens", 4096))
    # Each message costs its content plus a few tokens of framing, and 3 prime the reply.
    prompt_tokens = 3 + sum(4 + count_tokens(m["content"]) for m in body["messages"])
    return JSONResponse(
        {
            "id": f"chatcmpl-{secrets.token_hex(12)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": f"{body['model']}-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
            },
            "system_fingerprint": "fp_fake0001",
        }
    )


def create_app(fake: FakeOpenAI) -> Starlette:
    app = Starlette(routes=[Route("/v1/chat/completions", chat_completions, methods=["POST"])])
    app.state.fake = fake
    return app
