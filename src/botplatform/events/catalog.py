"""Every event type the platform emits, with the version of its payload schema: the one list
of event names. Outgoing webhooks subscribe to these names, the live socket streams them,
automation rules trigger on a subset of them (`AUTOMATION_TRIGGERS`), and docs/events.md
publishes them (a test keeps it equal).

A payload's shape changes only with a new version; the JSON schema of each version ships in
`events/json_schemas/<type>.v<version>.json` and is published in docs/events.md.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

EVENT_TYPES: dict[str, int] = {
    "message.received": 1,
    "message.sent": 1,
    "message.status_updated": 1,
    "message.failed": 1,
    "conversation.created": 1,
    "conversation.assigned": 1,
    "conversation.resolved": 1,
    "contact.created": 1,
    "contact.updated": 1,
    "bot.handoff": 1,
    "automation.triggered": 2,
    "broadcast.started": 1,
    "broadcast.paused": 1,
    "broadcast.completed": 1,
    "broadcast.failed": 1,
    "template.status_changed": 1,
}

MESSAGE_RECEIVED = "message.received"
MESSAGE_SENT = "message.sent"
CONVERSATION_CREATED = "conversation.created"
CONVERSATION_RESOLVED = "conversation.resolved"
CONTACT_CREATED = "contact.created"

#: The events an automation rule can run on (at the same moment the webhook event is emitted).
AUTOMATION_TRIGGERS: tuple[str, ...] = (
    MESSAGE_RECEIVED,
    MESSAGE_SENT,
    CONVERSATION_CREATED,
    CONVERSATION_RESOLVED,
    CONTACT_CREATED,
)
MESSAGE_TRIGGERS = frozenset({MESSAGE_RECEIVED, MESSAGE_SENT})

#: Names that were used once and are refused now, with what to use instead. Stored rules were
#: migrated (20261203_event_names); see docs/decisions.md ("One name per event").
RENAMED = {
    "message.created": f"{MESSAGE_RECEIVED} (inbound) or {MESSAGE_SENT} (outbound)",
}

#: What an event is about decides who may see it live (and which permission reads it).
CONTACT_EVENTS = frozenset({"contact.created", "contact.updated"})
BROADCAST_EVENTS = frozenset(
    {"broadcast.started", "broadcast.paused", "broadcast.completed", "broadcast.failed"}
)
TEMPLATE_EVENTS = frozenset({"template.status_changed"})

ALL = "*"


def unknown_name_message(name: str, valid: tuple[str, ...] | list[str]) -> str:
    """A sentence that says what is wrong with `name` and lists the valid names."""
    listed = ", ".join(valid)
    if name in RENAMED:
        return f"Event type {name!r} was renamed: use {RENAMED[name]}. Valid types: {listed}."
    return f"Unknown event type {name!r}. Valid types: {listed}."


def check_names(names: list[str], valid: tuple[str, ...] | list[str]) -> list[str]:
    """Raises ValueError (a 422 from a pydantic validator) naming the first unknown name."""
    for name in names:
        if name not in valid:
            raise ValueError(unknown_name_message(name, valid))
    return names


def schema_name(event_type: str, version: int | None = None) -> str:
    return f"{event_type}.v{version or EVENT_TYPES[event_type]}.json"


@cache
def json_schema(event_type: str, version: int | None = None) -> dict[str, Any]:
    """The published JSON schema (draft 2020-12) of one event type's payload."""
    text = (
        resources.files("botplatform.events")
        .joinpath("json_schemas", schema_name(event_type, version))
        .read_text(encoding="utf-8")
    )
    schema: dict[str, Any] = json.loads(text)
    return schema
