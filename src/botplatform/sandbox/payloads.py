"""What the fake Graph API says: ids that look like Meta's, its error JSON, and webhook
payloads serialized and signed the way Meta does it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

#: Titles Meta gives its common error codes; ``fail_next`` uses them when no title is given.
ERROR_TITLES: dict[int, str] = {
    1: "API Unknown",
    2: "API Service",
    4: "Application request limit reached",
    100: "Invalid parameter",
    190: "Invalid OAuth access token",
    80007: "Rate limit issues",
    130429: "Rate limit hit",
    131000: "Something went wrong",
    131005: "Access denied",
    131008: "Required parameter is missing",
    131009: "Parameter value is not valid",
    131016: "Service unavailable",
    131021: "Recipient cannot be sender",
    131026: "Message undeliverable",
    131047: "Re-engagement message",
    131048: "Spam rate limit hit",
    131051: "Unsupported message type",
    131052: "Media download error",
    131053: "Media upload error",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
    132000: "Number of parameters does not match the expected number of params",
    132001: "Template name does not exist in the translation",
    132005: "Translated text too long",
    132007: "Template Format Character Policy Violated",
    133004: "Server temporarily unavailable",
    133010: "Phone number not registered",
}

ERROR_DOCS = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"


def now() -> str:
    """Meta's webhook timestamps are Unix seconds, as a string."""
    return str(int(time.time()))


def fbtrace_id() -> str:
    return "A" + secrets.token_urlsafe(16)[:22]


def _wamid(wa_id: str, marker: bytes, hex_chars: int) -> str:
    # A real wamid is base64 of a small protobuf-like record: the chat's wa_id, then a random
    # upper-case hex id. Building it the same way keeps length and alphabet realistic.
    digits = wa_id.encode()[:127]
    random_id = secrets.token_hex(hex_chars // 2).upper().encode()
    raw = b"\x1c\x18" + bytes([len(digits)]) + digits + marker + random_id + b"\x00"
    return "wamid." + base64.b64encode(raw).decode()


def outbound_wamid(wa_id: str) -> str:
    return _wamid(wa_id, b"\x15\x02\x00\x11\x18\x12", 18)


def inbound_wamid(wa_id: str) -> str:
    return _wamid(wa_id, b"\x15\x02\x00\x12\x18\x14", 20)


def media_id() -> str:
    """Media ids are 15-16 digit numbers, sent as strings."""
    return str(10**15 + secrets.randbelow(9 * 10**15))


def graph_error(
    code: int,
    message: str,
    *,
    details: str | None = None,
    subcode: int | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    error["fbtrace_id"] = fbtrace_id()
    return {"error": error}


def envelope(
    waba_id: str, display_phone_number: str, phone_number_id: str, value: dict[str, Any]
) -> dict[str, Any]:
    """Wrap a change ``value`` (statuses, or contacts + messages) the way every webhook is."""
    metadata = {"display_phone_number": display_phone_number, "phone_number_id": phone_number_id}
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": waba_id,
                "changes": [
                    {
                        "value": {"messaging_product": "whatsapp", "metadata": metadata, **value},
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def account_envelope(waba_id: str, field: str, value: dict[str, Any]) -> dict[str, Any]:
    """A business-account change (template status, quality, category): no phone metadata,
    and the entry's `time` stands in for the missing per-item timestamp."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": waba_id, "time": int(time.time()), "changes": [{"value": value, "field": field}]}
        ],
    }


def status_value(
    wamid: str,
    status: str,
    recipient: str,
    *,
    conversation: dict[str, Any] | None,
    category: str,
    errors: list[Any] | None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": now(),
        "recipient_id": recipient,
    }
    # Meta bills (and so reports a conversation and pricing) when a message is sent and
    # delivered; read and failed statuses carry neither.
    if conversation is not None and status in {"sent", "delivered"}:
        entry["conversation"] = conversation
        entry["pricing"] = {"billable": True, "pricing_model": "CBP", "category": category}
    if errors:
        entry["errors"] = errors
    return {"statuses": [entry]}


def conversation(conversation_id: str, category: str, *, with_expiry: bool) -> dict[str, Any]:
    record: dict[str, Any] = {"id": conversation_id, "origin": {"type": category}}
    if with_expiry:
        # Only the "sent" status says when the conversation's 24-hour window closes.
        record["expiration_timestamp"] = str(int(time.time()) + 24 * 3600)
    return record


def inbound_text_value(wa_id: str, wamid: str, text: str, name: str) -> dict[str, Any]:
    return {
        "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
        "messages": [
            {
                "from": wa_id,
                "id": wamid,
                "timestamp": now(),
                "text": {"body": text},
                "type": "text",
            }
        ],
    }


def failure_error(code: int, title: str, details: str | None = None) -> dict[str, Any]:
    """One entry of a failed status's ``errors`` list."""
    return {
        "code": code,
        "title": title,
        "message": title,
        "error_data": {"details": details or title},
        "href": ERROR_DOCS,
    }


def serialize(payload: dict[str, Any]) -> bytes:
    # Meta sends compact JSON with non-ASCII escaped as \\uXXXX and "/" escaped as "\\/", and
    # signs those bytes. Reproducing that catches receivers that verify a re-serialization.
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=True)
    return text.replace("/", "\\/").encode("ascii")


def sign(body: bytes, app_secret: str) -> dict[str, str]:
    key = app_secret.encode()
    sha256 = hmac.new(key, body, hashlib.sha256).hexdigest()
    # Meta still sends the legacy SHA-1 header next to the SHA-256 one.
    sha1 = hmac.new(key, body, hashlib.sha1).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={sha256}", "X-Hub-Signature": f"sha1={sha1}"}
