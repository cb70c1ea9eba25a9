"""Every event type the platform emits, with the version of its payload schema.

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
    "automation.triggered": 1,
}

#: What an event is about decides who may see it live (and which permission reads it).
CONTACT_EVENTS = frozenset({"contact.created", "contact.updated"})

ALL = "*"


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
