"""Normalized outbound message → the Web API's JSON bodies (`chat.postMessage`,
`reactions.add`; `chat.update` shows a choice, see the adapter's `show_choice`).

Our text is escaped for `mrkdwn` (`&`, `<`, `>` only, as Slack asks), so a customer-facing
"<b>" or "a & b" shows as written and cannot ping `<!channel>`. Buttons become a Block Kit
`actions` block of buttons whose `value` is our button's id; lists a `static_select` whose
options carry the row ids. A press comes back as `block_actions` (parse.py) with that id,
as a WhatsApp button reply does. `text` is always set too: Slack shows it in notifications.
"""

from __future__ import annotations

from typing import Any

from botplatform.channels.messages import MessageType, OutboundMessage
from botplatform.channels.slack.parse import EMOJI_NAMES, split_message_id

#: chat.postMessage's text limit (Slack truncates beyond it), a button's and an option's.
TEXT_LIMIT = 40_000
SECTION_LIMIT = 3000
BUTTON_TEXT_LIMIT = 75
OPTION_TEXT_LIMIT = 75
MAX_BUTTONS = 25
MAX_OPTIONS = 100
UNICODE_NAMES = {emoji: name for name, emoji in reversed(EMOJI_NAMES.items())}


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def emoji_name(emoji: str) -> str:
    """Slack reacts with names: "👍" → "+1", ":tada:" → "tada"; ValueError otherwise."""
    if emoji in UNICODE_NAMES:
        return UNICODE_NAMES[emoji]
    stripped = emoji.strip(":")
    if stripped and emoji.startswith(":") and emoji.endswith(":"):
        return stripped
    if emoji.isascii() and emoji.replace("_", "").replace("-", "").replace("+", "").isalnum():
        return emoji
    raise ValueError(f"Slack reacts with emoji names (e.g. :tada:); {emoji!r} has none known")


def _text(message: OutboundMessage) -> str:
    parts = [message.header, message.content.text, message.footer]
    return escape("\n\n".join(p for p in parts if p))[:TEXT_LIMIT]


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:SECTION_LIMIT] or " "}}


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:SECTION_LIMIT]}]}


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:limit] or " ", "emoji": True}


def _buttons(message: OutboundMessage) -> list[dict[str, Any]]:
    elements = [
        {
            "type": "button",
            "action_id": f"button:{index}",  # unique in the block, as Slack requires
            "text": _plain(button.title, BUTTON_TEXT_LIMIT),
            "value": button.id,
        }
        for index, button in enumerate(message.buttons[:MAX_BUTTONS])
    ]
    return [section(_text(message)), {"type": "actions", "elements": elements}]


def _list(message: OutboundMessage) -> list[dict[str, Any]]:
    rows = [row for section in message.sections for row in section.rows][:MAX_OPTIONS]
    options = []
    for row in rows:
        option: dict[str, Any] = {
            "text": _plain(row.title, OPTION_TEXT_LIMIT),
            "value": row.id,
        }
        if row.description:
            option["description"] = _plain(row.description, OPTION_TEXT_LIMIT)
        options.append(option)
    select = {
        "type": "static_select",
        "action_id": "list",
        "placeholder": _plain(message.list_button or "Choose", OPTION_TEXT_LIMIT),
        "options": options,
    }
    return [section(_text(message)), {"type": "actions", "elements": [select]}]


def _location(message: OutboundMessage) -> str:
    where = message.content.location or {}
    link = f"https://maps.google.com/?q={where.get('latitude')},{where.get('longitude')}"
    parts = [where.get("name"), where.get("address")]
    shown = [escape(str(p)) for p in parts if p]
    return "\n".join([*shown, link])


def _media_link(message: OutboundMessage) -> tuple[str, list[dict[str, Any]]]:
    """Media sent by URL: an image block for images (Slack fetches it), a link otherwise.
    Media uploaded first (a file id) is shared by files.completeUploadExternal instead."""
    media = message.content.media
    if media is None or not media.url:
        raise ValueError("a media message needs a link or an uploaded file")
    caption = escape(media.caption or "")
    if message.content.type in (MessageType.IMAGE, MessageType.STICKER):
        alt = (media.caption or media.filename or "image")[:2000]
        block: dict[str, Any] = {"type": "image", "image_url": media.url, "alt_text": alt}
        return caption or media.url, ([section(caption)] if caption else []) + [block]
    text = "\n".join(
        p for p in (caption, f"<{media.url}|{escape(media.filename or media.url)}>") if p
    )
    return text, [section(text)]


def post_body(message: OutboundMessage, channel: str) -> dict[str, Any]:
    """The chat.postMessage body for `message`, posted to `channel` (a Slack channel id or,
    for a DM with the app, the user's id)."""
    content = message.content
    body: dict[str, Any] = {"channel": channel, "unfurl_links": message.preview_url}
    if content.type == MessageType.TEXT:
        body["text"] = _text(message) or " "
    elif content.type == MessageType.INTERACTIVE:
        body["text"] = _text(message) or " "
        body["blocks"] = _list(message) if message.sections else _buttons(message)
    elif content.type == MessageType.LOCATION and content.location:
        body["text"] = _location(message)
    elif content.type in (MessageType.IMAGE, MessageType.VIDEO, MessageType.AUDIO,
                          MessageType.DOCUMENT, MessageType.STICKER):  # fmt: skip
        body["text"], body["blocks"] = _media_link(message)
    else:
        raise ValueError(f"Slack cannot send a {content.type} message")
    if message.reply_to:  # in the replied message's Slack channel, in its thread
        body["channel"], body["thread_ts"] = split_message_id(message.reply_to)
    if message.callback_data:  # our row's id, carried in the message's metadata
        body["metadata"] = {"event_type": "botplatform_message",
                            "event_payload": {"id": message.callback_data}}  # fmt: skip
    return body


def reaction_body(message: OutboundMessage) -> dict[str, Any]:
    reaction = message.content.reaction
    if reaction is None or not reaction.emoji:
        raise ValueError("Slack removes a reaction by its name: send the emoji to remove")
    channel, ts = split_message_id(reaction.message_id)
    return {"channel": channel, "timestamp": ts, "name": emoji_name(reaction.emoji)}
