"""Which Web API failures are worth retrying. Slack answers most errors with HTTP 200 and
`{"ok": false, "error": "<code>"}`; throttling is HTTP 429 with a `Retry-After` (seconds),
which the retry then waits exactly."""

from __future__ import annotations

from typing import Any

from botplatform.channels.base import ProviderSendError

#: Transient: try again with backoff.
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable",
     "request_timeout", "team_added_to_org"}
)  # fmt: skip
#: Everything else is final (channel_not_found, not_in_channel, is_archived, invalid_auth,
#: token_revoked, account_inactive, msg_too_long, invalid_blocks, cannot_dm_bot, ...).


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


def classify(http_status: int, body: Any, headers: Any = None) -> ProviderSendError:
    error = str(body.get("error") or "") if isinstance(body, dict) else ""
    retry_after = _retry_after(headers)
    if http_status == 429 or error in ("ratelimited", "rate_limited"):
        return ProviderSendError(
            retryable=True,
            code="ratelimited",
            title=f"Slack asks to wait {retry_after or 1:g}s",
            http_status=http_status,
            retry_after=retry_after if retry_after is not None else 1.0,
        )
    retryable = error in RETRYABLE_ERRORS or http_status >= 500
    detail = body.get("response_metadata", {}).get("messages") if isinstance(body, dict) else None
    title = error or f"HTTP {http_status}"
    if isinstance(detail, list) and detail:
        title = f"{title}: {'; '.join(str(m) for m in detail)[:400]}"
    return ProviderSendError(
        retryable=retryable,
        code=error or str(http_status),
        title=title,
        http_status=http_status,
    )
