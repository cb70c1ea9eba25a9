"""The Messenger and Instagram half of the fake Graph API: the Send API
(`POST /{version}/me/messages`), the Attachment Upload API, the profile of a Page-scoped or
Instagram-scoped id (`GET /{version}/{psid}?fields=…`), and signed webhooks back (customer
messages, echoes of the Page's sends, delivery and read watermarks). One fake serves the
three channels: `FakeGraph` keeps the Pages here next to its WhatsApp numbers."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botplatform.sandbox.whatsapp import FakeGraph

MESSAGING_TYPES = frozenset({"RESPONSE", "UPDATE", "MESSAGE_TAG"})
TAGS = frozenset(
    {"HUMAN_AGENT", "ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE"}
)
ATTACHMENT_TYPES = frozenset({"image", "video", "audio", "file", "template"})
TEMPLATE_TYPES = frozenset({"button", "generic", "media"})
SENDER_ACTIONS = frozenset({"mark_seen", "typing_on", "typing_off", "react", "unreact"})
APP_ID = "1517776481860111"


class Invalid(ValueError):
    """A Send API body Meta would refuse with (#100)."""


@dataclass
class Page:
    """A Facebook Page (Messenger) or Instagram account the fake answers for."""

    page_id: str
    provider: str  # "messenger" | "instagram"
    webhook_url: str | None
    #: Customers who wrote to it: PSID/IGSID → name.
    customers: dict[str, str] = field(default_factory=dict)

    @property
    def object(self) -> str:
        return "instagram" if self.provider == "instagram" else "page"


def now_ms() -> int:
    return int(time.time() * 1000)


def new_mid() -> str:
    return "m_" + secrets.token_urlsafe(32)


def new_psid() -> str:
    return str(secrets.randbelow(9 * 10**15) + 10**15)


# -- checking a Send API body ------------------------------------------------------------


def _check_quick_replies(replies: object) -> None:
    if not isinstance(replies, list) or not 1 <= len(replies) <= 13:
        raise Invalid("param message[quick_replies] must have between 1 and 13 elements")
    for reply in replies:
        if not isinstance(reply, dict) or reply.get("content_type") != "text":
            raise Invalid("param message[quick_replies][content_type] must be text")
        title, payload = reply.get("title"), reply.get("payload")
        if not isinstance(title, str) or not 0 < len(title) <= 20:
            raise Invalid("param message[quick_replies][title] must be 1 to 20 characters")
        if not isinstance(payload, str) or not 0 < len(payload) <= 1000:
            raise Invalid("param message[quick_replies][payload] must be 1 to 1000 characters")


def _check_buttons(buttons: object) -> None:
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise Invalid("param buttons must have between 1 and 3 elements")
    for button in buttons:
        if not isinstance(button, dict) or button.get("type") not in ("postback", "web_url"):
            raise Invalid("param buttons[type] must be postback or web_url")
        title = button.get("title")
        if not isinstance(title, str) or not 0 < len(title) <= 20:
            raise Invalid("param buttons[title] must be 1 to 20 characters")


def _check_attachment(attachment: object) -> None:
    if not isinstance(attachment, dict) or attachment.get("type") not in ATTACHMENT_TYPES:
        raise Invalid(
            "param message[attachment][type] must be one of " + ", ".join(sorted(ATTACHMENT_TYPES))
        )
    payload = attachment.get("payload")
    if not isinstance(payload, dict):
        raise Invalid("param message[attachment][payload] must be an object")
    if attachment["type"] != "template":
        if not (payload.get("url") or payload.get("attachment_id")):
            raise Invalid("param message[attachment][payload] needs url or attachment_id")
        return
    kind = payload.get("template_type")
    if kind not in TEMPLATE_TYPES:
        raise Invalid("param template_type must be button, generic or media")
    if kind == "button":
        if not isinstance(payload.get("text"), str) or not 0 < len(payload["text"]) <= 640:
            raise Invalid("param payload[text] must be 1 to 640 characters")
        _check_buttons(payload.get("buttons"))
    if kind == "generic":
        elements = payload.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
            raise Invalid("param payload[elements] must have between 1 and 10 elements")
        for element in elements:
            if not isinstance(element, dict) or not isinstance(element.get("title"), str):
                raise Invalid("param payload[elements][title] is required")
            if "buttons" in element:
                _check_buttons(element["buttons"])


def check_send(body: object) -> tuple[str, str]:
    """(recipient id, "message" | the sender action), or `Invalid`."""
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object")
    recipient = body.get("recipient")
    if not isinstance(recipient, dict) or not isinstance(recipient.get("id"), str):
        raise Invalid("param recipient[id] is required")
    action = body.get("sender_action")
    if action is not None:
        if action not in SENDER_ACTIONS:
            raise Invalid("param sender_action must be one of " + ", ".join(sorted(SENDER_ACTIONS)))
        return recipient["id"], str(action)
    messaging_type = body.get("messaging_type")
    if messaging_type not in MESSAGING_TYPES:
        raise Invalid("param messaging_type must be RESPONSE, UPDATE or MESSAGE_TAG")
    if messaging_type == "MESSAGE_TAG" and body.get("tag") not in TAGS:
        raise Invalid("param tag must be a valid message tag with messaging_type MESSAGE_TAG")
    message = body.get("message")
    if not isinstance(message, dict):
        raise Invalid("param message is required")
    text, attachment = message.get("text"), message.get("attachment")
    if (text is None) == (attachment is None):
        raise Invalid("param message must have exactly one of text or attachment")
    if text is not None and (not isinstance(text, str) or not 0 < len(text) <= 2000):
        raise Invalid("param message[text] must be 1 to 2000 characters")
    if attachment is not None:
        _check_attachment(attachment)
    if "quick_replies" in message:
        _check_quick_replies(message["quick_replies"])
    return recipient["id"], "message"


# -- webhooks --------------------------------------------------------------------------------


def envelope(page: Page, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": page.object,
        "entry": [{"id": page.page_id, "time": now_ms(), "messaging": [item]}],
    }


def customer_text(page: Page, psid: str, mid: str, text: str) -> dict[str, Any]:
    return {
        "sender": {"id": psid},
        "recipient": {"id": page.page_id},
        "timestamp": now_ms(),
        "message": {"mid": mid, "text": text},
    }


def echo(page: Page, psid: str, mid: str, message: dict[str, Any]) -> dict[str, Any]:
    body = {"is_echo": True, "app_id": int(APP_ID), "mid": mid}
    body.update({k: v for k, v in message.items() if k in ("text", "attachment", "metadata")})
    if "attachment" in body:
        body["attachments"] = [body.pop("attachment")]
    return {
        "sender": {"id": page.page_id},
        "recipient": {"id": psid},
        "timestamp": now_ms(),
        "message": body,
    }


def receipt(page: Page, psid: str, kind: str, mids: list[str]) -> dict[str, Any]:
    mark: dict[str, Any] = {"watermark": now_ms()}
    if kind == "delivery":
        mark["mids"] = mids
    return {
        "sender": {"id": psid},
        "recipient": {"id": page.page_id},
        "timestamp": now_ms(),
        kind: mark,
    }


async def after_send(
    graph: FakeGraph, page: Page, psid: str, mid: str, message: dict[str, Any]
) -> None:
    """What Meta posts after a send: the echo, then delivery and read watermarks."""
    await graph.deliver_page(page, echo(page, psid, mid, message))
    for kind in ("delivery", "read"):
        await asyncio.sleep(graph.status_delay)
        await graph.deliver_page(page, receipt(page, psid, kind, [mid]))
