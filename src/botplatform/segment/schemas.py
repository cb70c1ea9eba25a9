"""The audience filter language, and the segment's request and response bodies.

A definition is a group: `{"match": "all" | "any", "conditions": [...]}`. Each condition is
one of (the `type` says which):

- `tags`: `{"type": "tags", "operator": "has_any" | "has_all" | "has_none", "values": [...]}`
  (exact tags).
- `attribute`: `{"type": "attribute", "key": "city", "operator": ..., "value": ...}` with
  `eq`, `neq`, `in` (text, or numbers when the value is a number, or true/false);
  `contains`, `starts_with` (text, case-insensitive); `gt`, `gte`, `lt`, `lte` (a number, or an
  ISO date `YYYY-MM-DD` compared with the attribute's date); `exists`, `not_exists` (no value).
- `channel`: `{"type": "channel", "provider": "whatsapp"}` (the contact has an identity on
  that provider) or `{"type": "channel", "channel_id": "..."}` (a conversation on that channel).
- `last_inbound`: `{"type": "last_inbound", "operator": "after" | "before", "at": ISO time}`
  or `"days_ago": N` instead of `at` (relative to when the audience is resolved);
  `"operator": "never"` for contacts who never wrote. `before` means their latest inbound
  message is older (contacts who never wrote are not "before").
- `group`: a nested `{"type": "group", "match": ..., "conditions": [...]}` (up to 3 levels).

Opted-out contacts are never in an audience, whatever the definition says (`segment.filters`).
An empty `conditions` list is every opted-in contact.
"""

from __future__ import annotations

import math
import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    model_validator,
)

from botplatform.automation.schemas import AttributeKey  # the one rule for attribute keys
from botplatform.kit.schemas import InputModel

MAX_DEPTH = 3
MAX_CONDITIONS = 50

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
TagValue = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Scalar = Annotated[str, StringConstraints(max_length=200)] | int | float | bool
Provider = Literal["whatsapp", "messenger", "instagram", "telegram", "slack", "webchat"]

COMPARISONS = ("gt", "gte", "lt", "lte")
TEXT_ONLY = ("contains", "starts_with")


class TagsCondition(InputModel):
    type: Literal["tags"]
    operator: Literal["has_any", "has_all", "has_none"]
    values: list[TagValue] = Field(min_length=1, max_length=50)


class AttributeCondition(InputModel):
    type: Literal["attribute"]
    key: AttributeKey
    operator: Literal[
        "eq", "neq", "contains", "starts_with", "gt", "gte", "lt", "lte", "exists",
        "not_exists", "in",
    ]  # fmt: skip
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _value_fits(self) -> AttributeCondition:
        op, value = self.operator, self.value
        if op in ("exists", "not_exists"):
            if value is not None:
                raise ValueError(f"operator {op!r} takes no `value`")
            return self
        if value is None:
            raise ValueError(f"`value` is required with operator {op!r}")
        if op == "in":
            if not isinstance(value, list) or not 1 <= len(value) <= 100:
                raise ValueError("operator 'in' takes a list of 1 to 100 values")
            return self
        if isinstance(value, list):
            raise ValueError(f"operator {op!r} takes one value, not a list")
        if op in TEXT_ONLY and not isinstance(value, str):
            raise ValueError(f"operator {op!r} compares text: `value` must be a string")
        if op in COMPARISONS:
            self.value = comparable(op, value)
        return self


def comparable(op: str, value: Any) -> float | int | str:
    """A comparison's value: a number, or an ISO date (kept as `YYYY-MM-DD`)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            pass
        try:  # a number typed in a form arrives as text
            number = float(text)
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                return int(number) if number.is_integer() and "." not in text else number
    raise ValueError(f"operator {op!r} compares numbers or ISO dates (YYYY-MM-DD)")


class ChannelCondition(InputModel):
    type: Literal["channel"]
    provider: Provider | None = None
    channel_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ChannelCondition:
        if (self.provider is None) == (self.channel_id is None):
            raise ValueError("give exactly one of `provider` or `channel_id`")
        return self


class LastInboundCondition(InputModel):
    type: Literal["last_inbound"]
    operator: Literal["before", "after", "never"]
    at: AwareDatetime | None = Field(None, description="An ISO time with its offset")
    days_ago: int | None = Field(None, ge=0, le=3650)

    @model_validator(mode="after")
    def _when(self) -> LastInboundCondition:
        given = (self.at is not None) + (self.days_ago is not None)
        if self.operator == "never" and given:
            raise ValueError("operator 'never' takes neither `at` nor `days_ago`")
        if self.operator != "never" and given != 1:
            raise ValueError(f"operator {self.operator!r} needs exactly one of `at` or `days_ago`")
        return self


def _kind(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if isinstance(kind, str) else None


Condition = Annotated[
    Annotated[TagsCondition, Tag("tags")]
    | Annotated[AttributeCondition, Tag("attribute")]
    | Annotated[ChannelCondition, Tag("channel")]
    | Annotated[LastInboundCondition, Tag("last_inbound")]
    | Annotated["GroupCondition", Tag("group")],
    Discriminator(_kind),
]


class GroupCondition(InputModel):
    type: Literal["group"]
    match: Literal["all", "any"] = "all"
    conditions: list[Condition] = Field(min_length=1, max_length=MAX_CONDITIONS)


class SegmentDefinition(InputModel):
    """Which contacts: conditions combined with `all` (and) or `any` (or); opted-in only."""

    match: Literal["all", "any"] = "all"
    conditions: list[Condition] = Field(default_factory=list, max_length=MAX_CONDITIONS)

    @model_validator(mode="after")
    def _bounded(self) -> SegmentDefinition:
        count, depth = _measure(self.conditions, 1)
        if depth > MAX_DEPTH:
            raise ValueError(f"groups nest at most {MAX_DEPTH} levels deep")
        if count > MAX_CONDITIONS:
            raise ValueError(f"a definition holds at most {MAX_CONDITIONS} conditions")
        return self


def _measure(conditions: list[Any], depth: int) -> tuple[int, int]:
    count, deepest = 0, depth
    for condition in conditions:
        count += 1
        if isinstance(condition, GroupCondition):
            inner, inner_depth = _measure(condition.conditions, depth + 1)
            count, deepest = count + inner, max(deepest, inner_depth)
    return count, deepest


GroupCondition.model_rebuild()
SegmentDefinition.model_rebuild()


class SegmentCreate(InputModel):
    name: Name
    description: Description = ""
    definition: SegmentDefinition


class SegmentUpdate(InputModel):
    name: Name | None = None
    description: Description | None = None
    definition: SegmentDefinition | None = None


class SegmentOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class CountOut(BaseModel):
    count: int = Field(description="Opted-in contacts the definition matches now")


class SegmentContactOut(BaseModel):
    id: uuid.UUID
    name: str
    handle: str | None = None
    tags: list[str]
    attributes: dict[str, Any]
