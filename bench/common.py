"""What every benchmark process shares: the fake Meta identifiers, the webhook bodies and the
percentile arithmetic, so each server under test receives byte-for-byte the same shape."""

from __future__ import annotations

import math
import socket
from collections.abc import Sequence

from botplatform.sandbox import payloads

HOST = "127.0.0.1"
# One set of Meta identifiers for every target, so bodies are identical in shape and size.
PHONE_NUMBER_ID = "1122334455667"
DISPLAY_PHONE_NUMBER = "15550001111"
WABA_ID = "102290129340398"
ACCESS_TOKEN = "bench-access-token"  # noqa: S105 - a fake's value, never a real credential
APP_SECRET = "bench-app-secret-0123456789abcdef"  # noqa: S105 - likewise
VERIFY_TOKEN = "bench-verify-token"  # noqa: S105 - likewise
CUSTOMER_NAME = "Bench Customer"
# Fixed-width digits keep every body the same length whatever its sequence number.
SEQ_DIGITS = 7


def free_port() -> int:
    """A port the kernel says is free on loopback (bound and released at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wa_id_for(prefix: str, seq: int) -> str:
    """The customer's WhatsApp id of request `seq`: unique per request, so every body is new
    to the platform's dedup and every reply can be matched to its request."""
    return f"{prefix}{seq:0{SEQ_DIGITS}d}"


def text_for(seq: int) -> str:
    return f"benchmark message {seq:0{SEQ_DIGITS}d}"


def bsuid_for(wa_id: str) -> str:
    """A business-scoped user id (Meta's `US.<digits>` form) tied to the wa_id."""
    return f"US.{int(wa_id):020d}"


def inbound_text_body(wa_id: str, text: str) -> bytes:
    """A customer's text as Meta posts it: the same envelope, serialization and escaping the
    platform's sandbox uses (compact JSON, '/' escaped), so parsers see real-looking input.

    Meta's 2026 payloads also carry the business-scoped user id (`user_id` on the contact,
    `from_user_id` on the message); pywa 4.5 requires the former, the platform ignores both.
    """
    wamid = payloads.inbound_wamid(wa_id)
    value = payloads.inbound_text_value(wa_id, wamid, text, CUSTOMER_NAME)
    value["contacts"][0]["user_id"] = bsuid_for(wa_id)
    value["messages"][0]["from_user_id"] = bsuid_for(wa_id)
    envelope = payloads.envelope(WABA_ID, DISPLAY_PHONE_NUMBER, PHONE_NUMBER_ID, value)
    return payloads.serialize(envelope)


def inbound_button_body(wa_id: str, button_id: str, title: str) -> bytes:
    """A customer tapping a reply button, as Meta posts it (an `interactive` message)."""
    wamid = payloads.inbound_wamid(wa_id)
    value = payloads.inbound_text_value(wa_id, wamid, "", CUSTOMER_NAME)
    message = value["messages"][0]
    del message["text"]
    message["type"] = "interactive"
    message["interactive"] = {
        "type": "button_reply",
        "button_reply": {"id": button_id, "title": title},
    }
    value["contacts"][0]["user_id"] = bsuid_for(wa_id)
    message["from_user_id"] = bsuid_for(wa_id)
    envelope = payloads.envelope(WABA_ID, DISPLAY_PHONE_NUMBER, PHONE_NUMBER_ID, value)
    return payloads.serialize(envelope)


def sign_body(body: bytes, app_secret: str = APP_SECRET) -> tuple[bytes, dict[str, str]]:
    """Headers of one webhook delivery, signed like Meta (SHA-256 and legacy SHA-1)."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "facebookexternalua",
        **payloads.sign(body, app_secret),
    }
    return body, headers


def signed_request(
    wa_id: str, text: str, app_secret: str = APP_SECRET
) -> tuple[bytes, dict[str, str]]:
    """A customer's text webhook, signed like Meta."""
    body = inbound_text_body(wa_id, text)
    return sign_body(body, app_secret)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence (inf when empty: no evidence)."""
    if not sorted_values:
        return math.inf
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return float(sorted_values[rank - 1])
