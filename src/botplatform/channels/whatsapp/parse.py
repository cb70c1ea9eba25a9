"""WhatsApp Cloud API webhook payload → normalized `InboundEvent`s.

Pure: no I/O, no clock. The envelope (`object`, `entry`, `changes`, `value`, a message's `id`,
`from` and `timestamp`, a status's `id`, `status` and `timestamp`) must be usable, or the whole
payload is rejected with `MalformedPayload`: without it nothing can be stored or deduplicated.
Below the envelope the parser is tolerant: a message whose type is unknown or whose body is
broken becomes an `UNSUPPORTED` message, so it is still recorded and answered.

Ignored on purpose (kept in `raw`/`data` where they were part of an event):
- `value.metadata` and `messaging_product`: the channel is already known from the webhook URL.
- contact `user_id` / `parent_user_id` / `username`: the contact is identified by its wa_id.
- a message's `errors` (only on `unsupported` messages) and `identity`: nothing acts on them.
- a status's `conversation`, `pricing`, `biz_opaque_callback_data` and group participant ids.
- `value.errors` on a `messages` change: account-level failures, not about a message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
    MessageEdited,
    MessageType,
    ProviderError,
    Reaction,
    Reply,
    StatusUpdate,
    SystemEvent,
)

OBJECT = "whatsapp_business_account"
LOCATION_KEYS = ("latitude", "longitude", "name", "address", "url")
DELIVERY_STATUSES = {
    status.value: status
    for status in (
        DeliveryStatus.SENT,
        DeliveryStatus.DELIVERED,
        DeliveryStatus.READ,
        DeliveryStatus.PLAYED,
        DeliveryStatus.FAILED,
    )
}


@dataclass(frozen=True)
class _Envelope:
    """What every message item carries, whatever its type."""

    message_id: str
    sender_id: str
    sender_name: str | None
    timestamp: datetime
    raw: dict[str, Any]


# --- small readers -------------------------------------------------------------------------


def _str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) else None


def _dict(obj: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = obj.get(key)
    return value if isinstance(value, dict) else None


def _require_str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedPayload(f"{where}: `{key}` missing or not a string")
    return value


def _dict_list(obj: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    """A list of objects; absent means empty, anything else is a broken envelope."""
    value = obj.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise MalformedPayload(f"{where}: `{key}` is not a list of objects")
    return value


def _timestamp(value: object) -> datetime | None:
    """Unix seconds, as Meta sends them (a string in messages, an int elsewhere)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _require_timestamp(obj: dict[str, Any], where: str) -> datetime:
    # Required: events are ordered by it, and inventing "now" would make parsing impure.
    timestamp = _timestamp(obj.get("timestamp"))
    if timestamp is None:
        raise MalformedPayload(f"{where}: `timestamp` missing or not Unix seconds")
    return timestamp


# --- content: one handler per message type; None means "broken", i.e. UNSUPPORTED ----------

ContentHandler = Callable[[dict[str, Any]], Content | None]


def _text(obj: dict[str, Any]) -> Content | None:
    body = _str(_dict(obj, "text") or {}, "body")
    return None if body is None else Content(type=MessageType.TEXT, text=body)


def _media_handler(kind: MessageType) -> ContentHandler:
    def handle(obj: dict[str, Any]) -> Content | None:
        body = _dict(obj, kind.value)
        if body is None or (_str(body, "id") is None and _str(body, "url") is None):
            return None  # nothing to download: the message is unusable as media
        media = Media(
            provider_media_id=_str(body, "id"),
            url=_str(body, "url"),
            mime_type=_str(body, "mime_type"),
            sha256=_str(body, "sha256"),
            caption=_str(body, "caption"),
            filename=_str(body, "filename"),
            voice=body.get("voice") is True,
            animated=body.get("animated") is True,
        )
        return Content(type=kind, media=media)

    return handle


def _location(obj: dict[str, Any]) -> Content | None:
    body = _dict(obj, "location")
    if body is None or "latitude" not in body or "longitude" not in body:
        return None
    location = {key: body[key] for key in LOCATION_KEYS if key in body}
    return Content(type=MessageType.LOCATION, location=location)


def _contacts(obj: dict[str, Any]) -> Content | None:
    cards = obj.get("contacts")
    if not isinstance(cards, list):
        return None
    return Content(type=MessageType.CONTACTS, contacts=[c for c in cards if isinstance(c, dict)])


def _interactive(obj: dict[str, Any]) -> Content | None:
    body = _dict(obj, "interactive") or {}
    kind = _str(body, "type")
    # Only button and list replies are understood; flow replies (`nfm_reply`) are not yet.
    if kind not in ("button_reply", "list_reply"):
        return None
    answer = _dict(body, kind) or {}
    reply_id = _str(answer, "id")
    if reply_id is None:
        return None
    title = _str(answer, "title") or ""
    reply = Reply(kind=kind, id=reply_id, title=title, description=_str(answer, "description"))
    return Content(type=MessageType.INTERACTIVE, reply=reply)


def _quick_reply(obj: dict[str, Any]) -> Content | None:
    # A tap on a template's quick-reply button: a reply like any other, for the bot.
    body = _dict(obj, "button") or {}
    payload = _str(body, "payload")
    if payload is None:
        return None
    reply = Reply(kind="quick_reply", id=payload, title=_str(body, "text") or "")
    return Content(type=MessageType.INTERACTIVE, reply=reply)


def _reaction(obj: dict[str, Any]) -> Content | None:
    body = _dict(obj, "reaction") or {}
    target = _str(body, "message_id")
    if target is None:
        return None
    # Meta removes a reaction with an empty or absent emoji; both mean "unreact".
    reaction = Reaction(message_id=target, emoji=_str(body, "emoji") or "")
    return Content(type=MessageType.REACTION, reaction=reaction)


CONTENT_HANDLERS: dict[str, ContentHandler] = {
    "text": _text,
    "image": _media_handler(MessageType.IMAGE),
    "video": _media_handler(MessageType.VIDEO),
    "audio": _media_handler(MessageType.AUDIO),
    "document": _media_handler(MessageType.DOCUMENT),
    "sticker": _media_handler(MessageType.STICKER),
    "location": _location,
    "contacts": _contacts,
    "interactive": _interactive,
    "button": _quick_reply,
    "reaction": _reaction,
}  # `order`, `unsupported` and anything new fall through to UNSUPPORTED


def _content(obj: dict[str, Any]) -> Content:
    kind = obj.get("type")
    handler = CONTENT_HANDLERS.get(kind) if isinstance(kind, str) else None
    content = handler(obj) if handler is not None else None
    return content if content is not None else Content(type=MessageType.UNSUPPORTED)


# --- messages: edits, deletions and system notices are events of their own --------------

EventHandler = Callable[[_Envelope], InboundEvent | None]


def _edited(env: _Envelope) -> InboundEvent | None:
    edit = _dict(env.raw, "edit") or {}
    original = _str(edit, "original_message_id")
    if original is None:
        return None  # an edit of nothing known: recorded as an unsupported message
    content = _content(_dict(edit, "message") or {})
    return MessageEdited(
        provider_message_id=original,
        sender_id=env.sender_id,
        timestamp=env.timestamp,
        content=content,
        raw=env.raw,
    )


def _deleted(env: _Envelope) -> InboundEvent | None:
    original = _str(_dict(env.raw, "revoke") or {}, "original_message_id")
    if original is None:
        return None
    return MessageDeleted(
        provider_message_id=original,
        sender_id=env.sender_id,
        timestamp=env.timestamp,
        raw=env.raw,
    )


def _system(env: _Envelope) -> InboundEvent | None:
    kind = _str(_dict(env.raw, "system") or {}, "type") or "system"
    return SystemEvent(kind=kind, timestamp=env.timestamp, sender_id=env.sender_id, data=env.raw)


EVENT_HANDLERS: dict[str, EventHandler] = {
    "edit": _edited,
    "revoke": _deleted,
    "system": _system,
}


def _inbound(env: _Envelope) -> InboundMessage:
    context = _dict(env.raw, "context") or {}
    return InboundMessage(
        provider_message_id=env.message_id,
        sender_id=env.sender_id,
        sender_name=env.sender_name,
        timestamp=env.timestamp,
        content=_content(env.raw),
        reply_to=_str(context, "id"),
        forwarded=context.get("forwarded") is True,
        frequently_forwarded=context.get("frequently_forwarded") is True,
        referral=_dict(env.raw, "referral"),
        raw=env.raw,
    )


def _message(message: dict[str, Any], names: dict[str, str], where: str) -> InboundEvent:
    sender = _require_str(message, "from", where)
    env = _Envelope(
        message_id=_require_str(message, "id", where),
        sender_id=sender,
        sender_name=names.get(sender),
        timestamp=_require_timestamp(message, where),
        raw=message,
    )
    kind = message.get("type")
    handler = EVENT_HANDLERS.get(kind) if isinstance(kind, str) else None
    event = handler(env) if handler is not None else None
    return event if event is not None else _inbound(env)


# --- statuses ------------------------------------------------------------------------------


def _error(error: dict[str, Any]) -> ProviderError:
    code = error.get("code")
    details = _str(_dict(error, "error_data") or {}, "details")
    return ProviderError(
        code=code if isinstance(code, int | str) and not isinstance(code, bool) else "unknown",
        title=_str(error, "title") or "",
        message=_str(error, "message"),
        details=details,
    )


def _errors(item: dict[str, Any]) -> tuple[ProviderError, ...]:
    # Errors explain a failure but never make the status unusable: broken ones are skipped.
    errors = item.get("errors")
    if not isinstance(errors, list):
        return ()
    return tuple(_error(error) for error in errors if isinstance(error, dict))


def _status(item: dict[str, Any], where: str) -> InboundEvent:
    message_id = _require_str(item, "id", where)
    status = _require_str(item, "status", where)
    timestamp = _require_timestamp(item, where)
    recipient = _str(item, "recipient_id")
    delivery = DELIVERY_STATUSES.get(status)
    if delivery is None:  # e.g. "deleted", or a state Meta adds later
        return SystemEvent(
            kind=f"status_{status}", timestamp=timestamp, sender_id=recipient, data=item
        )
    return StatusUpdate(
        provider_message_id=message_id,
        status=delivery,
        timestamp=timestamp,
        recipient_id=recipient,
        errors=_errors(item),
        raw=item,
    )


# --- changes: one handler per webhook field ------------------------------------------------

FieldHandler = Callable[[dict[str, Any], datetime | None, str], list[InboundEvent]]


def _contact_names(value: dict[str, Any]) -> dict[str, str]:
    # Names are a nicety: a broken contacts list loses them, never the messages.
    contacts = value.get("contacts")
    names: dict[str, str] = {}
    for contact in contacts if isinstance(contacts, list) else []:
        if not isinstance(contact, dict):
            continue
        wa_id, name = _str(contact, "wa_id"), _str(_dict(contact, "profile") or {}, "name")
        if wa_id is not None and name is not None:
            names[wa_id] = name
    return names


def _messages_field(
    value: dict[str, Any], _time: datetime | None, where: str
) -> list[InboundEvent]:
    names = _contact_names(value)
    events: list[InboundEvent] = [
        _message(message, names, f"{where}.messages[{i}]")
        for i, message in enumerate(_dict_list(value, "messages", where))
    ]
    events.extend(
        _status(item, f"{where}.statuses[{i}]")
        for i, item in enumerate(_dict_list(value, "statuses", where))
    )
    return events


def _template_status(
    value: dict[str, Any], time: datetime | None, _where: str
) -> list[InboundEvent]:
    return [SystemEvent(kind="template_status", timestamp=time, data=value)]


def _template_quality(
    value: dict[str, Any], time: datetime | None, _where: str
) -> list[InboundEvent]:
    return [SystemEvent(kind="template_quality", timestamp=time, data=value)]


def _template_category(
    value: dict[str, Any], time: datetime | None, _where: str
) -> list[InboundEvent]:
    return [SystemEvent(kind="template_category", timestamp=time, data=value)]


def _user_preferences(
    value: dict[str, Any], time: datetime | None, where: str
) -> list[InboundEvent]:
    return [
        SystemEvent(
            kind="marketing_preferences",
            timestamp=_timestamp(item.get("timestamp")) or time,
            sender_id=_str(item, "wa_id"),
            data=item,
        )
        for item in _dict_list(value, "user_preferences", where)
    ]


FIELD_HANDLERS: dict[str, FieldHandler] = {
    "messages": _messages_field,
    "message_template_status_update": _template_status,
    "message_template_quality_update": _template_quality,
    "template_category_update": _template_category,
    "user_preferences": _user_preferences,
}


def _change(change: object, time: datetime | None, where: str) -> list[InboundEvent]:
    if not isinstance(change, dict):
        raise MalformedPayload(f"{where}: not an object")
    value = change.get("value")
    if not isinstance(value, dict):
        raise MalformedPayload(f"{where}: `value` missing or not an object")
    field = _require_str(change, "field", where)
    handler = FIELD_HANDLERS.get(field)
    if handler is None:  # account updates, quality changes...: passed on as they are
        return [SystemEvent(kind=field, timestamp=time, data=value)]
    return handler(value, time, f"{where}.value")


def _entry(entry: object, where: str) -> list[InboundEvent]:
    if not isinstance(entry, dict):
        raise MalformedPayload(f"{where}: not an object")
    changes = entry.get("changes")
    if not isinstance(changes, list):
        raise MalformedPayload(f"{where}: `changes` missing or not a list")
    # Only non-message changes (templates...) lack their own timestamp; the entry's stands in.
    time = _timestamp(entry.get("time"))
    events: list[InboundEvent] = []
    for i, change in enumerate(changes):
        events.extend(_change(change, time, f"{where}.changes[{i}]"))
    return events


def parse(payload: object) -> list[InboundEvent]:
    """Every event in a webhook payload, in the order Meta listed them."""
    if not isinstance(payload, dict):
        raise MalformedPayload("payload: not an object")
    if payload.get("object") != OBJECT:
        raise MalformedPayload(f"payload: `object` is not {OBJECT!r}")
    entries = payload.get("entry")
    if not isinstance(entries, list):
        raise MalformedPayload("payload: `entry` missing or not a list")
    events: list[InboundEvent] = []
    for i, entry in enumerate(entries):
        events.extend(_entry(entry, f"entry[{i}]"))
    return events
