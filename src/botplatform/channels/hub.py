"""Meta's webhook checks, shared by WhatsApp, Messenger and Instagram: the GET handshake
(hub.mode, hub.verify_token, hub.challenge) and the `X-Hub-Signature-256` HMAC-SHA256 of the
raw body with the app secret, both compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from botplatform.channels.base import WebhookRejected

SIGNATURE_HEADER = "x-hub-signature-256"


def handshake(params: Mapping[str, str], verify_token: str | None) -> str | None:
    """The challenge to answer, or None when the verify token does not match."""
    expected = verify_token or ""
    given = params.get("hub.verify_token", "")
    if params.get("hub.mode") != "subscribe" or not expected:
        return None
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return None
    return params.get("hub.challenge", "")


def verify(headers: Mapping[str, str], body: bytes, app_secret: str | None) -> None:
    """Raises WebhookRejected unless the body is signed with `app_secret`."""
    signature = headers.get(SIGNATURE_HEADER, "")
    if not app_secret or not signature.startswith("sha256="):
        raise WebhookRejected()
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature[len("sha256=") :].lower(), expected):
        raise WebhookRejected()
