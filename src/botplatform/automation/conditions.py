"""Evaluating a rule's condition tree against what an event is about."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import regex

from botplatform.automation.schemas import (
    AllOf,
    AnyOf,
    BusinessHoursCondition,
    ChannelIs,
    Condition,
    ContactAttribute,
    ContactTag,
    ConversationLabel,
    MessageContent,
    MessageDirection,
)
from botplatform.business_hours.schemas import BusinessHours
from botplatform.business_hours.service import is_open
from botplatform.models import Contact, Conversation, Message

# A pattern is the customer's to write and the text the sender's: a pathological pair must
# not stall a worker.
REGEX_TIMEOUT_SECONDS = 0.1


@dataclass
class Subject:
    """What one event is about, loaded once for all the rules it is evaluated against."""

    event: str
    at: datetime
    hours: BusinessHours
    channel_id: uuid.UUID | None
    message: Message | None
    conversation: Conversation | None
    contact: Contact | None
    notes: list[str] = field(default_factory=list)


def _fold(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).casefold()


def _message_content(condition: MessageContent, subject: Subject) -> bool:
    text = (subject.message.text if subject.message else None) or ""
    value = condition.value
    if condition.operator == "regex":
        try:
            return (
                regex.search(value, text, regex.IGNORECASE, timeout=REGEX_TIMEOUT_SECONDS)
                is not None
            )
        except TimeoutError:
            subject.notes.append(f"regex {value!r} timed out: treated as no match")
            return False
    folded, wanted = text.casefold(), value.casefold()
    return {
        "contains": wanted in folded,
        "not_contains": wanted not in folded,
        "equals": folded.strip() == wanted.strip(),
        "not_equals": folded.strip() != wanted.strip(),
        "starts_with": folded.lstrip().startswith(wanted),
    }[condition.operator]


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _contact_attribute(condition: ContactAttribute, subject: Subject) -> bool:
    attributes = subject.contact.attributes if subject.contact else {}
    present = condition.key in (attributes or {})
    actual = (attributes or {}).get(condition.key)
    operator = condition.operator
    if operator == "exists":
        return present and actual not in (None, "")
    if operator == "not_exists":
        return not present or actual in (None, "")
    if operator in ("greater_than", "less_than"):
        number, limit = _number(actual), _number(condition.value)
        if number is None or limit is None:
            return False
        return number > limit if operator == "greater_than" else number < limit
    if not present:
        return operator in ("not_equals", "not_contains")
    folded, wanted = _fold(actual), _fold(condition.value)
    return {
        "equals": folded == wanted,
        "not_equals": folded != wanted,
        "contains": wanted in folded,
        "not_contains": wanted not in folded,
    }[operator]


def _has(values: list[str] | None, wanted: str, operator: str) -> bool:
    found = wanted.casefold() in {v.casefold() for v in values or []}
    return found if operator == "has" else not found


def evaluate(condition: Condition | None, subject: Subject) -> bool:
    if condition is None:
        return True
    if isinstance(condition, AllOf):
        return all(evaluate(child, subject) for child in condition.all)
    if isinstance(condition, AnyOf):
        return any(evaluate(child, subject) for child in condition.any)
    if isinstance(condition, MessageContent):
        return _message_content(condition, subject)
    if isinstance(condition, MessageDirection):
        return subject.message is not None and subject.message.direction == condition.value
    if isinstance(condition, ChannelIs):
        inside = subject.channel_id in condition.value
        return inside if condition.operator == "in" else not inside
    if isinstance(condition, ContactAttribute):
        return _contact_attribute(condition, subject)
    if isinstance(condition, ContactTag):
        tags = subject.contact.tags if subject.contact else []
        return _has(tags, condition.value, condition.operator)
    if isinstance(condition, ConversationLabel):
        labels = subject.conversation.labels if subject.conversation else []
        return _has(labels, condition.value, condition.operator)
    if isinstance(condition, BusinessHoursCondition):
        open_ = is_open(subject.hours, subject.at)
        return open_ if condition.operator == "within" else not open_
    raise TypeError(f"unknown condition {type(condition).__name__}")
