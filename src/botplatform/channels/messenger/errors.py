"""Which Send API errors are worth retrying. Meta's codes:
https://developers.facebook.com/docs/messenger-platform/error-codes"""

from __future__ import annotations

from typing import Any

from botplatform.channels.base import ProviderSendError

#: Throttling and transient failures: try again with backoff.
RETRYABLE_CODES = frozenset(
    {
        1,  # API unknown
        2,  # API service (temporary)
        4,  # application request limit
        17,  # user request limit
        32,  # page request limit
        613,  # calls to this API exceed the rate limit
        1200,  # temporary send message failure
    }
)
#: Known to be final: the message fails with this code, and is not sent again.
PERMANENT_CODES = frozenset(
    {
        10,  # permission denied (e.g. outside the allowed window, subcode 2018278)
        100,  # invalid parameter / no matching user
        190,  # access token expired or invalid
        200,  # permission error
        551,  # this person isn't available right now
        2018001,  # no matching user found
        2018108,  # cannot message users who are not admins, developers or testers
        2018278,  # outside the allowed window
        2022,  # the user blocked messages from the Page
    }
)
#: Subcodes that settle a send whatever its code says.
PERMANENT_SUBCODES = frozenset({2018278, 2018001, 2018108, 2018109, 1545041})


def classify(http_status: int, body: Any) -> ProviderSendError:
    error = body.get("error", {}) if isinstance(body, dict) else {}
    error = error if isinstance(error, dict) else {}
    code, subcode = error.get("code"), error.get("error_subcode")
    title = str(error.get("message") or error.get("error_user_msg") or "")
    if code in PERMANENT_CODES or subcode in PERMANENT_SUBCODES:
        retryable = False
    else:
        retryable = code in RETRYABLE_CODES or http_status == 429 or http_status >= 500
    shown = subcode if subcode in PERMANENT_SUBCODES else code
    return ProviderSendError(
        retryable=retryable,
        code=str(shown if shown is not None else http_status),
        title=title or f"HTTP {http_status}",
        http_status=http_status,
    )
