"""Telegram Bot API update → normalized `InboundEvent`s.

One webhook carries one `Update`: `{"update_id": n, <kind>: {...}}`. No I/O; the clock only
for a callback query, which carries no time of its own.

Who the contact is: the chat the bot talks in. In a private chat that is the user (chat id ==
user id); in a group the group itself is the conversation partner (its id is negative), so
the bot's answers go back to the group where it was asked. Message ids are unique per chat
only, so a message's provider id is `"{chat_id}:{message_id}"`.

Group messages are kept only when they address the bot: a mention of its @username, a
command sent to it (`/start@bot`), or a reply to one of its messages; the rest of a group's
chatter is none of the platform's business and is dropped here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botplatform.channels.base import MalformedPayload
from botplatform.channels.messages import (
    Content,
    InboundEvent,
    InboundMessage,
    Media,
    MessageEdited,
    MessageType,
    Reaction,
    Reply,
    SystemEvent,
)
from botplatform.kit.clock import utcnow

PRIVATE = "private"
#: What a blocked bot (or one removed from a group) sees of itself in `my_chat_member`.
GONE_STATUSES = frozenset({"kicked", "left"})
#: The system event kinds the consent ledger takes (`messages.CONSENT_EVENTS`).
OPTED_OUT, OPTED_IN = "opted_out", "opted_in"
#: The kinds of update the platform asks for (`setWebhook`'s `allowed_updates`).
ALLOWED_UPDATES = (
    "message",
    "edited_message",
    "callback_query",
    "my_chat_member",
    "message_reaction",
)


@dataclass(frozen=True)
class BotIdentity:
    """The bot itself, as `getMe` described it: how a group message addresses it."""

    id: int | None = None
    username: str | None = None


def _dict(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def _int(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) else None


def _time(value: object, where: str) -> datetime:
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedPayload(f"{where}: `date` missing or not Unix time")
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise MalformedPayload(f"{where}: `date` out of range") from exc


def full_name(person: dict[str, Any]) -> str | None:
    """A user's or chat's name as Telegram shows it: first and last name, or a group's
    title, or the @username when that is all there is."""
    name = " ".join(p for p in (_str(person, "first_name"), _str(person, "last_name")) if p)
    title = _str(person, "title")
    username = _str(person, "username")
    return name or title or (f"@{username}" if username else None)


def message_key(chat_id: int | str, message_id: int | str) -> str:
    return f"{chat_id}:{message_id}"


# --- message content ------------------------------------------------------------------------


def _file(obj: dict[str, Any], caption: str | None, **extra: Any) -> Media:
    fields: dict[str, Any] = {"mime_type": _str(obj, "mime_type"), **extra}
    return Media(
        provider_media_id=_str(obj, "file_id"),
        caption=caption,
        filename=_str(obj, "file_name"),
        **fields,
    )


def _largest(sizes: list[Any]) -> dict[str, Any]:
    """A photo comes in several sizes: the largest (by pixels, then bytes) is the one kept."""
    usable = [s for s in sizes if isinstance(s, dict) and _str(s, "file_id")]
    if not usable:
        return {}
    return max(usable, key=lambda s: ((_int(s, "width") or 0) * (_int(s, "height") or 0),
                                      _int(s, "file_size") or 0))  # fmt: skip


def _media(message: dict[str, Any], caption: str | None) -> Content | None:
    photo = message.get("photo")
    if isinstance(photo, list) and photo:
        largest = _largest(photo)
        if largest:
            return Content(MessageType.IMAGE, media=_file(largest, caption, mime_type="image/jpeg"))
    kinds: tuple[tuple[str, MessageType, dict[str, Any]], ...] = (
        ("video", MessageType.VIDEO, {}),
        ("video_note", MessageType.VIDEO, {}),
        ("animation", MessageType.VIDEO, {"animated": True}),
        ("voice", MessageType.AUDIO, {"voice": True}),
        ("audio", MessageType.AUDIO, {}),
        ("document", MessageType.DOCUMENT, {}),
    )
    for key, kind, extra in kinds:
        obj = _dict(message, key)
        if _str(obj, "file_id"):
            return Content(kind, media=_file(obj, caption, **extra))
    sticker = _dict(message, "sticker")
    if _str(sticker, "file_id"):
        animated = bool(sticker.get("is_animated") or sticker.get("is_video"))
        mime = "video/webm" if sticker.get("is_video") else "image/webp"
        media = Media(
            provider_media_id=_str(sticker, "file_id"),
            mime_type=None if sticker.get("is_animated") else mime,
            caption=_str(sticker, "emoji"),
            animated=animated,
        )
        return Content(MessageType.STICKER, text=_str(sticker, "emoji"), media=media)
    return None


def _place(message: dict[str, Any]) -> Content | None:
    venue = _dict(message, "venue")
    location = _dict(venue, "location") or _dict(message, "location")
    if "latitude" not in location or "longitude" not in location:
        return None
    where: dict[str, Any] = {
        "latitude": location["latitude"],
        "longitude": location["longitude"],
    }
    if venue:
        where.update(name=_str(venue, "title"), address=_str(venue, "address"))
    return Content(MessageType.LOCATION, location=where)


def _contact_card(message: dict[str, Any]) -> Content | None:
    """A shared contact, in the card shape every channel stores (WhatsApp's)."""
    card = _dict(message, "contact")
    phone = _str(card, "phone_number")
    if not phone:
        return None
    first, last = _str(card, "first_name") or "", _str(card, "last_name")
    name = {"formatted_name": " ".join(p for p in (first, last) if p), "first_name": first}
    if last:
        name["last_name"] = last
    entry: dict[str, Any] = {"name": name, "phones": [{"phone": phone, "type": "CELL"}]}
    if _int(card, "user_id") is not None:
        entry["phones"][0]["wa_id"] = None
        entry["telegram_user_id"] = card["user_id"]
    return Content(MessageType.CONTACTS, contacts=[entry])


def content_of(message: dict[str, Any]) -> Content:
    text = _str(message, "text")
    caption = _str(message, "caption")
    for found in (_media(message, caption), _place(message), _contact_card(message)):
        if found is not None:
            return found
    if text is not None:
        return Content(MessageType.TEXT, text=text)
    return Content(MessageType.UNSUPPORTED, text=caption)


def _forwarded(message: dict[str, Any]) -> bool:
    return any(
        key in message
        for key in ("forward_origin", "forward_from", "forward_from_chat", "forward_date",
                    "forward_sender_name")
    )  # fmt: skip


# --- groups: only what addresses the bot ----------------------------------------------------


def _mentions(message: dict[str, Any], bot: BotIdentity) -> bool:
    text = _str(message, "text") or _str(message, "caption") or ""
    entities = message.get("entities") or message.get("caption_entities") or []
    handle = f"@{bot.username}".casefold() if bot.username else None
    for entity in entities if isinstance(entities, list) else []:
        if not isinstance(entity, dict):
            continue
        kind = entity.get("type")
        start, length = _int(entity, "offset") or 0, _int(entity, "length") or 0
        # Offsets count UTF-16 code units; for the ASCII handles this compares, the same.
        piece = text.encode("utf-16-le")[2 * start : 2 * (start + length)].decode(
            "utf-16-le", errors="ignore"
        )
        if kind == "mention" and handle and piece.casefold() == handle:
            return True
        if kind == "bot_command" and handle and piece.casefold().endswith(handle):
            return True
        mentioned = _dict(entity, "user")
        if kind == "text_mention" and bot.id is not None and _int(mentioned, "id") == bot.id:
            return True
    return False


def addresses_bot(message: dict[str, Any], bot: BotIdentity) -> bool:
    if _str(_dict(message, "chat"), "type") in (None, PRIVATE):
        return True
    replied = _dict(_dict(message, "reply_to_message"), "from")
    if bot.id is not None and _int(replied, "id") == bot.id:
        return True
    return _mentions(message, bot)


# --- one handler per update kind ------------------------------------------------------------


def _chat_id(message: dict[str, Any], where: str) -> int:
    chat_id = _int(_dict(message, "chat"), "id")
    if chat_id is None:
        raise MalformedPayload(f"{where}: `chat.id` missing")
    return chat_id


def _message_id(message: dict[str, Any], where: str) -> int:
    message_id = _int(message, "message_id")
    if message_id is None:
        raise MalformedPayload(f"{where}: `message_id` missing")
    return message_id


def _sender_name(message: dict[str, Any]) -> str | None:
    """The contact's name: the group's title in a group, the user's name in private."""
    chat = _dict(message, "chat")
    if _str(chat, "type") not in (None, PRIVATE):
        return full_name(chat)
    return full_name(_dict(message, "from")) or full_name(chat)


def _message(update: dict[str, Any], bot: BotIdentity) -> list[InboundEvent]:
    message = _dict(update, "message")
    chat_id, message_id = _chat_id(message, "message"), _message_id(message, "message")
    when = _time(message.get("date"), "message")
    if not addresses_bot(message, bot):
        return []  # a group's chatter, not for the bot
    reply = _dict(message, "reply_to_message")
    reply_id = _int(reply, "message_id")
    return [
        InboundMessage(
            provider_message_id=message_key(chat_id, message_id),
            sender_id=str(chat_id),
            sender_name=_sender_name(message),
            timestamp=when,
            content=content_of(message),
            reply_to=message_key(chat_id, reply_id) if reply_id is not None else None,
            forwarded=_forwarded(message),
            raw=update,
        )
    ]


def _edited(update: dict[str, Any], bot: BotIdentity) -> list[InboundEvent]:
    message = _dict(update, "edited_message")
    chat_id, message_id = (
        _chat_id(message, "edited_message"),
        _message_id(message, "edited_message"),
    )
    if not addresses_bot(message, bot):
        return []
    stamp = message.get("edit_date", message.get("date"))
    return [
        MessageEdited(
            provider_message_id=message_key(chat_id, message_id),
            sender_id=str(chat_id),
            timestamp=_time(stamp, "edited_message"),
            content=content_of(message),
            raw=update,
        )
    ]


def button_title(message: dict[str, Any], data: str) -> str:
    """The title of the inline button whose callback data is `data`, from the keyboard the
    callback's message still carries."""
    keyboard = _dict(message, "reply_markup").get("inline_keyboard")
    for row in keyboard if isinstance(keyboard, list) else []:
        for button in row if isinstance(row, list) else []:
            if isinstance(button, dict) and button.get("callback_data") == data:
                return _str(button, "text") or data
    return data


def _callback(update: dict[str, Any], bot: BotIdentity) -> list[InboundEvent]:
    """A tap on one of our inline buttons: a button reply, as WhatsApp's. The adapter answers
    it (`answerCallbackQuery`) so the client's spinner stops."""
    query = _dict(update, "callback_query")
    query_id = _str(query, "id")
    person = _dict(query, "from")
    if not query_id or _int(person, "id") is None:
        raise MalformedPayload("callback_query: `id` or `from.id` missing")
    message = _dict(query, "message")
    chat_id = _int(_dict(message, "chat"), "id")
    data = _str(query, "data") or _str(query, "game_short_name") or ""
    title = button_title(message, data)
    return [
        InboundMessage(
            provider_message_id=f"callback:{query_id}",
            sender_id=str(chat_id if chat_id is not None else person["id"]),
            sender_name=_sender_name(message) if message else full_name(person),
            # A callback carries no time of its own (its message's date is when *we* wrote):
            # the tap is now, to the second the webhook arrived.
            timestamp=utcnow(),
            content=Content(
                MessageType.INTERACTIVE,
                text=title,
                reply=Reply(kind="button_reply", id=data, title=title),
            ),
            reply_to=message_key(chat_id, message["message_id"])
            if chat_id is not None and _int(message, "message_id") is not None
            else None,
            raw=update,
        )
    ]


def _member(update: dict[str, Any], bot: BotIdentity) -> list[InboundEvent]:
    """The bot's own membership changed: in a private chat, `kicked` means the user blocked
    the bot (they opted out), `member` that they started it again (opted back in)."""
    del bot
    change = _dict(update, "my_chat_member")
    chat = _dict(change, "chat")
    chat_id = _int(chat, "id")
    status = _str(_dict(change, "new_chat_member"), "status") or ""
    date = _int(change, "date")
    when = datetime.fromtimestamp(date, tz=UTC) if date else None
    kind = "my_chat_member"
    if _str(chat, "type") == PRIVATE:
        kind = OPTED_OUT if status in GONE_STATUSES else OPTED_IN if status == "member" else kind
    return [
        SystemEvent(
            kind=kind,
            timestamp=when,
            sender_id=str(chat_id) if chat_id is not None else None,
            data=update,
        )
    ]


def _reaction(update: dict[str, Any], bot: BotIdentity) -> list[InboundEvent]:
    del bot
    change = _dict(update, "message_reaction")
    chat_id = _chat_id(change, "message_reaction")
    target = _int(change, "message_id")
    if target is None:
        raise MalformedPayload("message_reaction: `message_id` missing")
    new = change.get("new_reaction")
    emojis = [_str(r, "emoji") for r in new if isinstance(r, dict)] if isinstance(new, list) else []
    emoji = next((e for e in emojis if e), "")  # none left: the reaction was removed
    return [
        InboundMessage(
            provider_message_id=f"reaction:{update.get('update_id')}",
            sender_id=str(chat_id),
            sender_name=None,
            timestamp=_time(change.get("date"), "message_reaction"),
            content=Content(
                MessageType.REACTION, reaction=Reaction(message_key(chat_id, target), emoji)
            ),
            raw=update,
        )
    ]


HANDLERS: dict[str, Callable[[dict[str, Any], BotIdentity], list[InboundEvent]]] = {
    "message": _message,
    "edited_message": _edited,
    "callback_query": _callback,
    "my_chat_member": _member,
    "message_reaction": _reaction,
}


def parse(payload: object, bot: BotIdentity | None = None) -> list[InboundEvent]:
    """The events of one update. Kinds the platform does not handle (inline queries, channel
    posts, polls…) are passed on as system events, kept with the raw update."""
    if not isinstance(payload, dict):
        raise MalformedPayload("update: not an object")
    if _int(payload, "update_id") is None:
        raise MalformedPayload("update: `update_id` missing")
    me = bot or BotIdentity()
    for key, handler in HANDLERS.items():
        if key in payload:
            return handler(payload, me)
    kind = next((k for k in payload if k != "update_id"), "unknown")
    body = _dict(payload, kind)
    person = _dict(body, "from")
    sender = _int(person, "id")
    return [
        SystemEvent(
            kind=kind,
            timestamp=None,
            sender_id=str(sender) if sender is not None else None,
            data=payload,
        )
    ]


def update_id(payload: object) -> int | None:
    return _int(payload, "update_id") if isinstance(payload, dict) else None
