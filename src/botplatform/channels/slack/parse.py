"""Slack's Events API and interactivity requests → normalized `InboundEvent`s.

Two bodies reach `/webhooks/slack/{channel_id}`: the Events API's JSON (`url_verification`,
`event_callback`) and interactivity's form body (`payload=<JSON>`, e.g. `block_actions` when
a customer presses one of our buttons). Both name the sender by Slack user id: one contact
per user. A message's provider id is `"{slack channel}:{ts}"` (a `ts` is unique only within
its Slack channel), so an `app_mention` and the `message` event Slack sends for the same
message are one message, and edits, deletes and reactions find the message they are about.

Pure: no I/O, no clock. Messages from bots, from this app's own bot user, and channel chatter
that does not address the app (no mention, not in a thread) give no event: answering them
would loop or intrude.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from botplatform.channels.base import MalformedPayload, load_json
from botplatform.channels.messages import (
    Content,
    InboundEvent,
    InboundMessage,
    Media,
    MessageDeleted,
    MessageEdited,
    MessageType,
    Reaction,
    Reply,
    SystemEvent,
)

#: Message subtypes a person writes; every other subtype (joins, topics, bots...) is ignored.
PERSON_SUBTYPES = frozenset({None, "file_share", "thread_broadcast", "me_message"})
#: Slack's names of the emoji our reactions use most, both ways (others travel as ":name:").
EMOJI_NAMES = {
    "+1": "👍", "thumbsup": "👍", "-1": "👎", "thumbsdown": "👎", "heart": "❤️",
    "joy": "😂", "open_mouth": "😮", "cry": "😢", "rage": "😡", "tada": "🎉",
    "white_check_mark": "✅", "eyes": "👀", "pray": "🙏", "fire": "🔥", "smile": "😄",
}  # fmt: skip
DM_TYPES = frozenset({"im"})


@dataclass(frozen=True)
class App:
    """What the channel knows of its own Slack app (from `auth.test` at connection): its bot
    user, to tell a mention and to drop the app's own messages. Unknown: nothing is dropped
    for being unaddressed."""

    bot_user_id: str | None = None
    bot_id: str | None = None
    team_id: str | None = None


def _str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) and value else None


def _dict(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def slack_time(ts: object) -> datetime | None:
    """A Slack `ts` ("1355517523.000005", seconds with a sequence) as a time."""
    if isinstance(ts, bool) or not isinstance(ts, str | int | float):
        return None
    try:
        return datetime.fromtimestamp(float(ts), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def message_id(channel: str, ts: str) -> str:
    return f"{channel}:{ts}"


def split_message_id(provider_id: str) -> tuple[str, str]:
    """`"C123:1355517523.000005"` → (Slack channel, ts); ValueError when not ours."""
    channel, sep, ts = provider_id.partition(":")
    if not sep or not channel or not ts:
        raise ValueError(f"not a Slack message id: {provider_id!r}")
    return channel, ts


def thread_key(channel: str, ts: str, thread_ts: str | None) -> str | None:
    """The conversation a message belongs to (a thread is a conversation): its thread's root;
    a top-level message in a Slack channel starts a thread of its own (we answer there, not
    in front of the whole channel); a top-level message of a DM is the DM's conversation
    (None)."""
    if thread_ts:
        return message_id(channel, thread_ts)
    return None if channel.startswith("D") else message_id(channel, ts)


def emoji_of(name: str) -> str:
    return EMOJI_NAMES.get(name, f":{name}:")


# --- messages -------------------------------------------------------------------------------


def _kind_of(mime: str) -> MessageType:
    head = mime.split("/")[0]
    return {"image": MessageType.IMAGE, "video": MessageType.VIDEO,
            "audio": MessageType.AUDIO}.get(head, MessageType.DOCUMENT)  # fmt: skip


def _content(message: dict[str, Any]) -> Content:
    text = _str(message, "text")
    files = message.get("files")
    if isinstance(files, list) and files and isinstance(files[0], dict):
        file = files[0]  # Slack shares several files as one message: the first is kept
        mime = _str(file, "mimetype") or "application/octet-stream"
        media = Media(
            provider_media_id=_str(file, "id"),
            url=_str(file, "url_private_download") or _str(file, "url_private"),
            mime_type=mime,
            caption=text,
            filename=_str(file, "name"),
            voice=_str(file, "subtype") == "slack_audio",
        )
        return Content(type=_kind_of(mime), media=media, text=text)
    if text is not None:
        return Content(type=MessageType.TEXT, text=text)
    return Content(type=MessageType.UNSUPPORTED)


def _from_a_bot(message: dict[str, Any], app: App) -> bool:
    if message.get("bot_id") or message.get("subtype") == "bot_message":
        return True
    return app.bot_user_id is not None and message.get("user") == app.bot_user_id


def _addressed(event: dict[str, Any], app: App) -> bool:
    """A DM with the app, a mention of it, or a thread (a thread is a conversation)."""
    if event.get("type") == "app_mention" or event.get("channel_type") in DM_TYPES:
        return True
    if app.bot_user_id is None or _str(event, "thread_ts"):
        return True
    return f"<@{app.bot_user_id}>" in (_str(event, "text") or "")


def _message(event: dict[str, Any], app: App, where: str) -> list[InboundEvent]:
    subtype = event.get("subtype")
    if subtype == "message_changed":
        return _edited(event, app, where)
    if subtype == "message_deleted":
        return _deleted(event, where)
    if subtype not in PERSON_SUBTYPES or _from_a_bot(event, app) or not _addressed(event, app):
        return []
    channel, ts, user = _str(event, "channel"), _str(event, "ts"), _str(event, "user")
    when = slack_time(ts)
    if not channel or not ts or not user or when is None:
        raise MalformedPayload(f"{where}: `channel`, `user` or `ts` missing")
    thread = _str(event, "thread_ts")
    return [
        InboundMessage(
            provider_message_id=message_id(channel, ts),
            sender_id=user,
            sender_name=None,  # Slack sends ids only: users.info is read once (profile)
            timestamp=when,
            content=_content(event),
            reply_to=message_id(channel, thread) if thread and thread != ts else None,
            thread=thread_key(channel, ts, thread),
            raw=event,
        )
    ]


def _edited(event: dict[str, Any], app: App, where: str) -> list[InboundEvent]:
    message, channel = _dict(event, "message"), _str(event, "channel")
    ts, user = _str(message, "ts"), _str(message, "user")
    when = slack_time(_str(event, "event_ts") or _str(event, "ts"))
    if _from_a_bot(message, app):
        return []
    if not channel or not ts or not user or when is None:
        raise MalformedPayload(f"{where}.message: `ts`, `user` or the channel missing")
    return [
        MessageEdited(
            provider_message_id=message_id(channel, ts),
            sender_id=user,
            timestamp=when,
            content=_content(message),
            raw=event,
        )
    ]


def _deleted(event: dict[str, Any], where: str) -> list[InboundEvent]:
    channel, deleted = _str(event, "channel"), _str(event, "deleted_ts")
    when = slack_time(_str(event, "event_ts") or _str(event, "ts"))
    if not channel or not deleted or when is None:
        raise MalformedPayload(f"{where}: `deleted_ts` or the channel missing")
    user = _str(_dict(event, "previous_message"), "user") or ""
    return [
        MessageDeleted(
            provider_message_id=message_id(channel, deleted),
            sender_id=user,
            timestamp=when,
            raw=event,
        )
    ]


def _reaction(event: dict[str, Any], app: App, where: str) -> list[InboundEvent]:
    item, user, name = _dict(event, "item"), _str(event, "user"), _str(event, "reaction")
    if item.get("type") != "message" or (app.bot_user_id and user == app.bot_user_id):
        return []  # reactions to files, and our own
    channel, ts = _str(item, "channel"), _str(item, "ts")
    when = slack_time(_str(event, "event_ts"))
    if not user or not name or not channel or not ts or when is None:
        raise MalformedPayload(f"{where}: `user`, `reaction`, `item` or `event_ts` missing")
    added = event.get("type") == "reaction_added"
    target = message_id(channel, ts)
    return [
        InboundMessage(
            provider_message_id=f"reaction:{user}:{target}:{name}:{_str(event, 'event_ts')}",
            sender_id=user,
            sender_name=None,
            timestamp=when,
            content=Content(
                type=MessageType.REACTION,
                reaction=Reaction(message_id=target, emoji=emoji_of(name) if added else ""),
            ),
            raw=event,
        )
    ]


EVENT_HANDLERS: dict[str, Callable[[dict[str, Any], App, str], list[InboundEvent]]] = {
    "message": _message,
    "app_mention": _message,
    "reaction_added": _reaction,
    "reaction_removed": _reaction,
}


def _event_callback(payload: dict[str, Any], app: App) -> list[InboundEvent]:
    event = payload.get("event")
    if not isinstance(event, dict) or not _str(event, "type"):
        raise MalformedPayload("event_callback: `event` missing or without a type")
    team = _str(payload, "team_id")
    if app.team_id and team and team != app.team_id:
        return []  # another workspace where the same app is installed: not this channel's
    kind = str(event["type"])
    handler = EVENT_HANDLERS.get(kind)
    if handler is not None:
        return handler(event, app, "event")
    # app_home_opened, member_joined_channel, tokens_revoked...: passed on as they are.
    when = slack_time(_str(event, "event_ts")) or slack_time(payload.get("event_time"))
    return [SystemEvent(kind=f"slack.{kind}", timestamp=when, sender_id=_str(event, "user"),
                        data=event)]  # fmt: skip


# --- interactivity --------------------------------------------------------------------------


def _choice(action: dict[str, Any]) -> Reply | None:
    """A pressed button (its value is our button's id) or a picked row of a select."""
    kind = _str(action, "type")
    if kind == "button":
        title = _str(_dict(action, "text"), "text") or ""
        return Reply("button_reply", _str(action, "value") or _str(action, "action_id") or "",
                     title)  # fmt: skip
    if kind == "static_select":
        option = _dict(action, "selected_option")
        title = _str(_dict(option, "text"), "text") or ""
        description = _str(_dict(option, "description"), "text")
        return Reply("list_reply", _str(option, "value") or "", title, description)
    return None


def _block_actions(payload: dict[str, Any], app: App) -> list[InboundEvent]:
    user = _str(_dict(payload, "user"), "id")
    container = _dict(payload, "container")
    channel = _str(container, "channel_id") or _str(_dict(payload, "channel"), "id")
    if not user:
        raise MalformedPayload("block_actions: `user.id` missing")
    team = _str(_dict(payload, "team"), "id")
    if app.team_id and team and team != app.team_id:
        return []
    events: list[InboundEvent] = []
    actions = payload.get("actions")
    for i, action in enumerate(actions if isinstance(actions, list) else []):
        reply = _choice(action) if isinstance(action, dict) else None
        when = slack_time(action.get("action_ts")) if isinstance(action, dict) else None
        if reply is None or when is None:
            continue
        message_ts = _str(container, "message_ts")
        # The offer's thread (Slack names it on the container, or on the message itself).
        root = _str(container, "thread_ts") or _str(_dict(payload, "message"), "thread_ts")
        events.append(
            InboundMessage(
                provider_message_id=f"action:{user}:{action.get('action_ts')}:{i}",
                sender_id=user,
                sender_name=_str(_dict(payload, "user"), "name"),
                timestamp=when,
                content=Content(type=MessageType.INTERACTIVE, text=reply.title, reply=reply),
                reply_to=message_id(channel, message_ts) if channel and message_ts else None,
                thread=thread_key(channel, message_ts, root) if channel and message_ts else None,
                raw=payload,
            )
        )
    return events


def _interactive(body: bytes, app: App) -> list[InboundEvent]:
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=True)
        payload = json.loads(fields["payload"][0])
    except (UnicodeDecodeError, ValueError, KeyError) as exc:
        raise MalformedPayload(f"interactivity: no JSON `payload` field ({exc})") from exc
    if not isinstance(payload, dict):
        raise MalformedPayload("interactivity: `payload` is not an object")
    if payload.get("type") == "block_actions":
        return _block_actions(payload, app)
    # view_submission, shortcuts...: not from our messages; kept as system events.
    return [SystemEvent(kind=f"slack.{payload.get('type')}", timestamp=None, data=payload)]


def is_interactive(body: bytes) -> bool:
    return body.startswith(b"payload=")


def parse(body: bytes, app: App | None = None) -> list[InboundEvent]:
    """Every event in one Slack request, in order."""
    app = app or App()
    if is_interactive(body):
        return _interactive(body, app)
    payload = load_json(body)
    if not isinstance(payload, dict):
        raise MalformedPayload("payload: not an object")
    kind = payload.get("type")
    if kind == "event_callback":
        return _event_callback(payload, app)
    if kind == "url_verification":  # answered at the door; nothing to process
        return []
    if kind == "app_rate_limited":
        return [SystemEvent(kind="slack.app_rate_limited", timestamp=None, data=payload)]
    raise MalformedPayload(f"payload: unknown type {kind!r}")


def challenge(body: bytes) -> str | None:
    """The `challenge` of a `url_verification` request, else None."""
    if not body.startswith(b"{") or b"url_verification" not in body:
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if isinstance(payload, dict) and payload.get("type") == "url_verification":
        value = payload.get("challenge")
        return value if isinstance(value, str) else None
    return None


def event_id(body: bytes) -> str | None:
    """`team_id:event_id` of an event_callback (Slack's retries repeat it), else None."""
    if not body.startswith(b"{"):
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    found = _str(payload, "event_id")
    return f"{_str(payload, 'team_id') or ''}:{found}" if found else None


def team_of(body: bytes) -> str | None:
    """The Slack workspace a request is for (events: `team_id`; interactivity: `team.id`)."""
    try:
        if is_interactive(body):
            payload = json.loads(parse_qs(body.decode("utf-8"))["payload"][0])
            team = payload.get("team") if isinstance(payload, dict) else None
            return _str(team, "id") if isinstance(team, dict) else None
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError, KeyError):
        return None
    return _str(payload, "team_id") if isinstance(payload, dict) else None
