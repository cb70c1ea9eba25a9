"""Messenger and Instagram Direct webhook payload → normalized `InboundEvent`s.

Both speak Meta's Messenger Platform shape: `{"object": "page" | "instagram", "entry": [{"id",
"time", "messaging": [item, ...]}]}`, one item per event, sender and recipient by their
Page-/Instagram-scoped ids. Meta's dashboard test button posts one item as
`{"field": "messaging_…", "value": item}`: accepted too.

Pure: no I/O, no clock. An item without a usable sender or timestamp breaks the envelope
(`MalformedPayload`). Items with no id of their own (postbacks, reactions) get one derived
from what they carry, so a redelivery is still recognised.

Ignored on purpose (kept in `raw`/`data`): `entry.id` and `recipient` (the channel is known
from the webhook URL), `seq`, `is_self_reply`, `nlp`, a quick reply's or echo's `metadata`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botplatform.channels.base import MalformedPayload
from botplatform.channels.messages import (
    Content,
    DeliveryStatus,
    InboundEvent,
    InboundMessage,
    Media,
    MessageDeleted,
    MessageEcho,
    MessageEdited,
    MessageType,
    Reaction,
    Reply,
    SystemEvent,
    Watermark,
)

OBJECTS = frozenset({"page", "instagram"})
MEDIA_KINDS = {
    "image": MessageType.IMAGE,
    "video": MessageType.VIDEO,
    "audio": MessageType.AUDIO,
    "file": MessageType.DOCUMENT,
}
#: Instagram attachments that point at a post, reel or story rather than carry media.
SHARE_KINDS = {
    "share": "Shared a post",
    "ig_reel": "Shared a reel",
    "reel": "Shared a reel",
    "story_mention": "Mentioned you in their story",
    "ig_post": "Shared a post",
}


def _str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) else None


def _dict(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def _time(value: object) -> datetime | None:
    """Meta's times are Unix milliseconds (seconds in a few older shapes, as strings)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        number = int(value)
        return datetime.fromtimestamp(number / 1000 if number > 10**11 else number, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


# --- message content ------------------------------------------------------------------------


def _attachment(attachment: dict[str, Any], message: dict[str, Any]) -> Content | None:
    kind = _str(attachment, "type") or ""
    payload = _dict(attachment, "payload")
    url = _str(payload, "url")
    if kind in MEDIA_KINDS and url:
        sticker = kind == "image" and message.get("sticker_id") is not None
        return Content(
            type=MessageType.STICKER if sticker else MEDIA_KINDS[kind],
            media=Media(url=url, provider_media_id=None, caption=_str(message, "text")),
        )
    if kind in SHARE_KINDS:
        parts = [SHARE_KINDS[kind], _str(payload, "title") or "", url or ""]
        return Content(type=MessageType.TEXT, text="\n".join(p for p in parts if p))
    if kind == "location":
        coordinates = _dict(payload, "coordinates")
        if "lat" in coordinates and "long" in coordinates:
            location = {"latitude": coordinates["lat"], "longitude": coordinates["long"]}
            return Content(type=MessageType.LOCATION, location=location)
    return None  # template, fallback, a kind Meta adds later: unsupported


def _content(message: dict[str, Any]) -> Content:
    text = _str(message, "text")
    quick = _dict(message, "quick_reply")
    payload = _str(quick, "payload")
    if payload is not None:
        reply = Reply(kind="quick_reply", id=payload, title=text or "")
        return Content(type=MessageType.INTERACTIVE, text=text, reply=reply)
    attachments = message.get("attachments")
    if isinstance(attachments, list) and attachments and isinstance(attachments[0], dict):
        found = _attachment(attachments[0], message)
        return found if found is not None else Content(type=MessageType.UNSUPPORTED, text=text)
    if text is not None:
        return Content(type=MessageType.TEXT, text=text)
    return Content(type=MessageType.UNSUPPORTED)


def _reply_to(message: dict[str, Any]) -> str | None:
    target = _dict(message, "reply_to")
    story = _dict(target, "story")
    return _str(target, "mid") or (f"story:{_str(story, 'id')}" if story.get("id") else None)


# --- one handler per item kind --------------------------------------------------------------


class _Item:
    """What every messaging item carries."""

    def __init__(self, raw: dict[str, Any], where: str) -> None:
        sender, recipient = _dict(raw, "sender"), _dict(raw, "recipient")
        sender_id = _str(sender, "id") or _str(sender, "user_ref")
        if not sender_id:
            raise MalformedPayload(f"{where}: `sender.id` missing")
        self.sender_id = sender_id
        self.recipient_id = _str(recipient, "id") or ""
        self.raw = raw
        self.timestamp = _time(raw.get("timestamp"))
        self.where = where

    def required_time(self) -> datetime:
        if self.timestamp is None:
            raise MalformedPayload(f"{self.where}: `timestamp` missing or not Unix time")
        return self.timestamp

    def derived_id(self, kind: str, *parts: str | None) -> str:
        stamp = str(self.raw.get("timestamp"))
        return ":".join([kind, self.sender_id, stamp, *(p or "" for p in parts)])


def _message(item: _Item) -> InboundEvent:
    message = _dict(item.raw, "message")
    mid = _str(message, "mid")
    if not mid:
        raise MalformedPayload(f"{item.where}.message: `mid` missing")
    when = item.required_time()
    if message.get("is_echo") is True:
        return MessageEcho(
            provider_message_id=mid,
            recipient_id=item.recipient_id,
            timestamp=when,
            content=_content(message),
            app_id=_str(message, "app_id"),
            raw=item.raw,
        )
    if message.get("is_deleted") is True:
        return MessageDeleted(provider_message_id=mid, sender_id=item.sender_id, timestamp=when)
    return InboundMessage(
        provider_message_id=mid,
        sender_id=item.sender_id,
        sender_name=None,  # Meta sends no name: the profile is fetched (contact/profile.py)
        timestamp=when,
        content=_content(message),
        reply_to=_reply_to(message),
        referral=_dict(message, "referral") or None,
        raw=item.raw,
    )


def _edit(item: _Item) -> InboundEvent:
    edit = _dict(item.raw, "message_edit")
    mid = _str(edit, "mid")
    if not mid:
        raise MalformedPayload(f"{item.where}.message_edit: `mid` missing")
    return MessageEdited(
        provider_message_id=mid,
        sender_id=item.sender_id,
        timestamp=item.required_time(),
        content=Content(type=MessageType.TEXT, text=_str(edit, "text") or ""),
        raw=item.raw,
    )


def _reaction(item: _Item) -> InboundEvent:
    reaction = _dict(item.raw, "reaction")
    target = _str(reaction, "mid") or ""
    action = _str(reaction, "action") or "react"
    emoji = "" if action == "unreact" else (_str(reaction, "emoji") or "")
    return InboundMessage(
        provider_message_id=item.derived_id("reaction", target, action),
        sender_id=item.sender_id,
        sender_name=None,
        timestamp=item.required_time(),
        content=Content(type=MessageType.REACTION, reaction=Reaction(target, emoji)),
        raw=item.raw,
    )


def _postback(item: _Item) -> InboundEvent:
    postback = _dict(item.raw, "postback")
    payload = _str(postback, "payload") or ""
    title = _str(postback, "title") or ""
    return InboundMessage(
        provider_message_id=_str(postback, "mid") or item.derived_id("postback", payload),
        sender_id=item.sender_id,
        sender_name=None,
        timestamp=item.required_time(),
        content=Content(
            type=MessageType.INTERACTIVE,
            text=title,
            reply=Reply(kind="postback", id=payload, title=title),
        ),
        referral=_dict(postback, "referral") or None,
        raw=item.raw,
    )


def _watermark(status: DeliveryStatus, key: str) -> Callable[[_Item], InboundEvent]:
    def handle(item: _Item) -> InboundEvent:
        receipt = _dict(item.raw, key)
        mark = _time(receipt.get("watermark"))
        if mark is None:
            raise MalformedPayload(f"{item.where}.{key}: `watermark` missing")
        mids = receipt.get("mids")
        return Watermark(
            recipient_id=item.sender_id,
            status=status,
            watermark=mark,
            provider_message_ids=tuple(m for m in mids if isinstance(m, str))
            if isinstance(mids, list)
            else (),
            raw=item.raw,
        )

    return handle


def _referral(item: _Item) -> InboundEvent:
    """A referral with no message (an m.me link or an ad opened an existing thread): kept in
    the conversation as an `unsupported` message carrying the referral, so the inbox and
    automations see where the customer came from."""
    referral = _dict(item.raw, "referral")
    if item.timestamp is None:  # nowhere to place it in the conversation
        return SystemEvent(kind="referral", timestamp=None, sender_id=item.sender_id, data=referral)
    return InboundMessage(
        provider_message_id=item.derived_id("referral", _str(referral, "ref")),
        sender_id=item.sender_id,
        sender_name=None,
        timestamp=item.timestamp,
        content=Content(type=MessageType.UNSUPPORTED),
        referral=referral,
        raw=item.raw,
    )


ITEM_HANDLERS: dict[str, Callable[[_Item], InboundEvent]] = {
    "message": _message,
    "message_edit": _edit,
    "reaction": _reaction,
    "postback": _postback,
    "delivery": _watermark(DeliveryStatus.DELIVERED, "delivery"),
    "read": _watermark(DeliveryStatus.READ, "read"),
    "referral": _referral,
}  # optins and kinds Meta adds later: stored as `unsupported` messages (`_unknown`)

#: Items about the thread, not written by the customer: passed on as system events.
SYSTEM_ITEMS = frozenset(
    {"pass_thread_control", "take_thread_control", "request_thread_control", "app_roles",
     "policy_enforcement", "policy-enforcement"}
)  # fmt: skip


def _unknown(item: _Item) -> InboundEvent:
    """An item of a kind not handled here: a customer's (a sender and a time) is kept as an
    `unsupported` inbound message with the raw item, as WhatsApp's unknown types are; the
    rest (handovers, policy notices, no time to place it at) stays a system event."""
    raw = item.raw
    kind = next((k for k in raw if k not in ("sender", "recipient", "timestamp")), "unknown")
    if kind in SYSTEM_ITEMS or item.timestamp is None:
        return SystemEvent(kind=kind, timestamp=item.timestamp, sender_id=item.sender_id, data=raw)
    body = _dict(raw, kind)
    return InboundMessage(
        provider_message_id=_str(body, "mid") or item.derived_id(kind),
        sender_id=item.sender_id,
        sender_name=None,
        timestamp=item.timestamp,
        content=Content(type=MessageType.UNSUPPORTED),
        raw=raw,
    )


def _item(raw: object, where: str) -> InboundEvent:
    if not isinstance(raw, dict):
        raise MalformedPayload(f"{where}: not an object")
    item = _Item(raw, where)
    for key, handler in ITEM_HANDLERS.items():
        if key in raw:
            return handler(item)
    return _unknown(item)


def _entry(entry: object, where: str) -> list[InboundEvent]:
    if not isinstance(entry, dict):
        raise MalformedPayload(f"{where}: not an object")
    events: list[InboundEvent] = []
    messaging = entry.get("messaging", entry.get("standby", []))
    if not isinstance(messaging, list):
        raise MalformedPayload(f"{where}: `messaging` is not a list")
    events += [_item(raw, f"{where}.messaging[{i}]") for i, raw in enumerate(messaging)]
    changes = entry.get("changes", [])
    for change in changes if isinstance(changes, list) else []:
        # Comments, mentions...: not direct messages; passed on as they are.
        if isinstance(change, dict):
            value = change.get("value")
            events.append(
                SystemEvent(
                    kind=str(change.get("field") or "change"),
                    timestamp=_time(entry.get("time")),
                    data=value if isinstance(value, dict) else {},
                )
            )
    return events


def parse(payload: object) -> list[InboundEvent]:
    """Every event in a webhook payload, in the order Meta listed them."""
    if not isinstance(payload, dict):
        raise MalformedPayload("payload: not an object")
    if "field" in payload and isinstance(payload.get("value"), dict):
        return [_item(payload["value"], "value")]  # the dashboard's test shape
    if payload.get("object") not in OBJECTS:
        raise MalformedPayload("payload: `object` is not 'page' or 'instagram'")
    entries = payload.get("entry")
    if not isinstance(entries, list):
        raise MalformedPayload("payload: `entry` missing or not a list")
    events: list[InboundEvent] = []
    for i, entry in enumerate(entries):
        events.extend(_entry(entry, f"entry[{i}]"))
    return events
