"""Which Bot API errors are worth retrying. The Bot API answers every failure as
`{"ok": false, "error_code": <HTTP status>, "description": "...", "parameters": {...}}`;
a 429 names in `parameters.retry_after` exactly how many seconds to wait."""

from __future__ import annotations

from typing import Any

from botplatform.channels.base import RECIPIENT_BLOCKED, UNCHANGED, ProviderSendError

#: 403 descriptions meaning the person (or group) will not take the bot's messages any more:
#: final, and the contact is opted out.
GONE = ("bot was blocked by the user", "user is deactivated", "bot was kicked",
        "bot is not a member", "bot can't initiate conversation")  # fmt: skip


def classify(http_status: int, body: Any) -> ProviderSendError:
    body = body if isinstance(body, dict) else {}
    status = body.get("error_code") if isinstance(body.get("error_code"), int) else http_status
    title = str(body.get("description") or f"HTTP {http_status}")
    parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
    retry_after = parameters.get("retry_after")
    if status == 429:
        wait = float(retry_after) if isinstance(retry_after, int | float) else None
        return ProviderSendError(
            retryable=True, code="429", title=title, http_status=429, retry_after=wait
        )
    if status == 403 and any(phrase in title.casefold() for phrase in GONE):
        return ProviderSendError(
            retryable=False, code=RECIPIENT_BLOCKED, title=title, http_status=403
        )
    if status == 400 and "message is not modified" in title.casefold():
        return ProviderSendError(retryable=False, code=UNCHANGED, title=title, http_status=400)
    if "migrate_to_chat_id" in parameters:  # a group became a supergroup: a new chat id
        title = f"{title} (the group moved to chat {parameters['migrate_to_chat_id']})"
    return ProviderSendError(
        retryable=status >= 500, code=str(status), title=title, http_status=http_status
    )
