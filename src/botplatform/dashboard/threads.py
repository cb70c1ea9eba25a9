"""How a conversation reads on screen: message rows turned into bubbles (per type, with
status ticks, the message replied to and the reactions it received). Presentation only."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botplatform.channels.delivery import is_delivery_unknown
from botplatform.media.storage import SignedMediaUrls
from botplatform.models import Conversation, Message

TICKS = {
    "queued": ("🕓", "Queued"),
    "sending": ("🕓", "Sending"),
    "sent": ("✓", "Sent"),
    "delivered": ("✓✓", "Delivered"),
    "read": ("✓✓", "Read"),
    "played": ("✓✓", "Played"),
    "failed": ("⚠", "Failed"),
}
MEDIA_KINDS = {"image", "video", "audio", "document", "sticker"}


@dataclass
class Bubble:
    id: uuid.UUID
    direction: str
    kind: str
    text: str | None
    created_at: datetime
    is_note: bool
    status: str
    tick: str = ""
    tick_label: str = ""
    error: str | None = None
    # Sent at most once but unconfirmed: said plainly, and a person decides whether to resend.
    delivery_unknown: bool = False
    resendable: bool = False  # a failed send (its content can be queued again on request)
    media_url: str | None = None
    media_mime: str | None = None
    media_pending: bool = False
    filename: str | None = None
    details: list[str] = field(default_factory=list)  # location, contacts, buttons, template
    quoted: str | None = None
    reactions: list[str] = field(default_factory=list)
    edited: bool = False
    deleted: bool = False


def _content(message: Message) -> dict[str, Any]:
    content = message.content or {}
    request = content.get("request")
    return request if isinstance(request, dict) else content


def _details(kind: str, content: dict[str, Any]) -> list[str]:
    details: list[str] = []
    location = content.get("location")
    if kind == "location" and isinstance(location, dict):
        place = ", ".join(str(location[k]) for k in ("name", "address") if location.get(k))
        coords = f"{location.get('latitude')}, {location.get('longitude')}"
        details.append(f"📍 {place} ({coords})" if place else f"📍 {coords}")
    for contact in content.get("contacts") or []:
        if isinstance(contact, dict):
            name = contact.get("name")
            label = name.get("formatted_name") if isinstance(name, dict) else name
            phones = [p.get("phone") for p in contact.get("phones") or [] if isinstance(p, dict)]
            details.append(" ".join(str(x) for x in [label, *phones] if x))
    reply = content.get("reply")
    if isinstance(reply, dict) and reply.get("title"):
        details.append(f"↩ {reply['title']}")
    details += [f"[{b.get('title')}]" for b in content.get("buttons") or [] if isinstance(b, dict)]
    template = content.get("template")
    if isinstance(template, dict) and template.get("name"):
        details.append(f"Template: {template['name']} ({template.get('language', '')})")
    return details


def _reaction(message: Message) -> tuple[str, str] | None:
    content = _content(message)
    reaction = content.get("reaction")
    if isinstance(reaction, dict):
        return str(reaction.get("message_id") or ""), str(reaction.get("emoji") or "")
    if content.get("reaction_to"):
        return str(content["reaction_to"]), str(content.get("emoji") or "")
    return None


def bubbles(messages: list[Message], urls: SignedMediaUrls) -> list[Bubble]:
    """Oldest first. Reactions attach to the message they react to (the latest reaction of
    each side wins; an empty emoji removes it) instead of showing as bubbles of their own."""
    by_provider_id = {m.provider_message_id: m for m in messages if m.provider_message_id}
    reactions: dict[str, dict[str, str]] = {}
    shown: list[Bubble] = []
    for message in messages:
        if message.type == "reaction":
            found = _reaction(message)
            if found and found[0]:
                reactions.setdefault(found[0], {})[message.direction] = found[1]
            continue
        shown.append(_bubble(message, urls, by_provider_id))
    for bubble, message in zip(shown, [m for m in messages if m.type != "reaction"], strict=True):
        emoji = reactions.get(message.provider_message_id or "", {})
        bubble.reactions = [e for e in emoji.values() if e]
    return shown


def _bubble(message: Message, urls: SignedMediaUrls, by_id: dict[str, Message]) -> Bubble:
    content = _content(message)
    tick, label = TICKS.get(message.status, ("", ""))
    if is_delivery_unknown(message):
        label = "Delivery unknown"
    media = content.get("media") if isinstance(content.get("media"), dict) else {}
    quoted_message = (
        by_id.get(message.reply_to_provider_id) if message.reply_to_provider_id else None
    )
    quoted = None
    if message.reply_to_provider_id:
        quoted = (quoted_message.text or f"[{quoted_message.type}]") if quoted_message else "…"
    bubble = Bubble(
        id=message.id,
        direction=message.direction,
        kind=message.type,
        text=message.text,
        created_at=message.created_at,
        is_note=message.is_note,
        status=message.status,
        tick="" if message.direction == "inbound" or message.is_note else tick,
        tick_label=label,
        error=(message.error_title or message.error_code) if message.status == "failed" else None,
        delivery_unknown=is_delivery_unknown(message),
        resendable=_resendable(message),
        filename=(media or {}).get("filename"),
        details=_details(message.type, content),
        quoted=quoted,
        edited=message.edited,
        deleted=message.deleted,
    )
    if message.type in MEDIA_KINDS:
        if message.media_key:
            bubble.media_url = urls.url_for(message.media_key)  # short-lived, signed
            bubble.media_mime = message.media_mime
        else:
            bubble.media_pending = message.media_status in (None, "pending")
    return bubble


def _resendable(message: Message) -> bool:
    return message.direction == "outbound" and not message.is_note and message.status == "failed"


def thread_version(conversation: Conversation, messages: list[Message]) -> str:
    """Changes whenever anything shown changes; pollers skip the swap when it did not."""
    digest = hashlib.sha256(
        f"{conversation.status}|{conversation.assignee_id}|{conversation.unread_count}".encode()
    )
    for m in messages:
        digest.update(
            f"{m.id}|{m.status}|{m.media_status}|{m.edited}|{m.deleted}|{m.text}".encode()
        )
    return digest.hexdigest()[:16]


def list_version(rows: list[Any]) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update(
            f"{row.id}|{row.status}|{row.unread_count}|{row.last_message_at}|"
            f"{row.assignee_id}|{row.contact_name}|{','.join(getattr(row, 'labels', []))}".encode()
        )
    return digest.hexdigest()[:16]
