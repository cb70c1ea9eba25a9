"""Which Graph API errors are worth retrying. Meta's codes:
https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes"""

from __future__ import annotations

from typing import Any

from botplatform.channels.base import ProviderSendError

#: Throttling and transient failures: try again with backoff.
RETRYABLE_CODES = frozenset(
    {
        1,  # API unknown
        2,  # API service (temporary)
        4,  # application request limit
        80007,  # WABA rate limit
        130429,  # cloud API throughput reached
        131000,  # something went wrong
        131016,  # service unavailable
        131048,  # spam rate limit hit
        131056,  # pair rate limit (same recipient too often)
        133004,  # server temporarily unavailable
    }
)
#: Known to be final: the message fails with this code, and is not sent again.
PERMANENT_CODES = frozenset(
    {
        100,  # invalid parameter
        131026,  # message undeliverable
        131047,  # re-engagement required (24-hour window closed)
        131051,  # unsupported message type
        131052,  # media download error
        131053,  # media upload error
        132000,  # template parameter count mismatch
        132001,  # template does not exist
        132005,  # template hydrated text too long
        132007,  # template format policy violation
        133010,  # phone number not registered
        190,  # access token expired or invalid
    }
)


def classify(http_status: int, body: Any) -> ProviderSendError:
    error = body.get("error", {}) if isinstance(body, dict) else {}
    code = error.get("code") if isinstance(error, dict) else None
    title = ""
    if isinstance(error, dict):
        details = error.get("error_data", {})
        title = str(error.get("title") or error.get("message") or "")
        if isinstance(details, dict) and details.get("details"):
            title = f"{title} — {details['details']}" if title else str(details["details"])
    if code in PERMANENT_CODES:
        retryable = False
    else:
        retryable = code in RETRYABLE_CODES or http_status == 429 or http_status >= 500
    return ProviderSendError(
        retryable=retryable,
        code=str(code if code is not None else http_status),
        title=title or f"HTTP {http_status}",
        http_status=http_status,
    )
