"""The audience filter, compiled to one SQL condition on `contacts` (SQLAlchemy Core), the
same on SQLite and PostgreSQL where SQL allows and per dialect where it does not (JSON).

Every sub-query starts from `kit.scoping.scoped`, so the condition never looks outside the
workspace, and `where` always adds "not opted out": no definition can reach an opted-out
contact.

How attributes compare (contact attributes are a JSON object; the CSV import stores text):
- the attribute's *text* is the JSON value as text (`true`/`false` for booleans, `42` for a
  number); a missing key or JSON null has none;
- its *number* is a JSON number, or text that reads as a number; anything else has none,
  so `gt 10` never matches "abc" (and never fails on it either);
- its *date* is the first ten characters of text that starts `YYYY-MM-DD`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB, array

from botplatform.kit.scoping import scoped
from botplatform.models import Contact, ContactIdentity, Conversation
from botplatform.segment.schemas import (
    COMPARISONS,
    AttributeCondition,
    ChannelCondition,
    GroupCondition,
    LastInboundCondition,
    SegmentDefinition,
    TagsCondition,
)

Condition = ColumnElement[bool]
_PG_NUMBER = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$"
_PG_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
_SQLITE_DATE = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*"


class Compiler:
    """One definition's condition for one workspace, dialect and moment (`days_ago`)."""

    def __init__(self, workspace_id: uuid.UUID, dialect: str, now: datetime) -> None:
        self.ws, self.postgres, self.now = workspace_id, dialect == "postgresql", now

    def group(self, match: str, conditions: Sequence[Any]) -> Condition:
        parts = [self.condition(c) for c in conditions]
        if not parts:
            return true()
        return and_(*parts) if match == "all" else or_(*parts)

    def condition(self, item: Any) -> Condition:
        if isinstance(item, GroupCondition):
            return self.group(item.match, item.conditions)
        if isinstance(item, TagsCondition):
            return self.tags(item)
        if isinstance(item, AttributeCondition):
            return self.attribute(item)
        if isinstance(item, ChannelCondition):
            return self.channel(item)
        if isinstance(item, LastInboundCondition):
            return self.last_inbound(item)
        raise TypeError(f"unknown condition {item!r}")

    # --- tags ---------------------------------------------------------------------------

    def tags(self, item: TagsCondition) -> Condition:
        values = sorted(set(item.values))
        if self.postgres:
            tags = Contact.tags.cast(JSONB)
            wanted = array(values, type_=String)
            has: Condition = (
                tags.has_all(wanted) if item.operator == "has_all" else tags.has_any(wanted)
            )
        else:
            elements = func.json_each(Contact.tags).table_valued("value")
            matching = select(elements.c.value).select_from(elements)
            matching = matching.where(elements.c.value.in_(values))
            if item.operator == "has_all":
                distinct = matching.with_only_columns(func.count(func.distinct(elements.c.value)))
                has = distinct.scalar_subquery() == len(values)
            else:
                has = matching.exists()
        return not_(has) if item.operator == "has_none" else has

    # --- attributes ---------------------------------------------------------------------

    def _text(self, key: str) -> ColumnElement[Any]:
        if self.postgres:
            text: ColumnElement[Any] = Contact.attributes[key].as_string()
            return text
        path = f'$."{key}"'
        kind = func.json_type(Contact.attributes, path)
        return case(
            (kind == "true", literal("true")),
            (kind == "false", literal("false")),
            else_=cast(func.json_extract(Contact.attributes, path), String),
        )

    def _number(self, key: str) -> ColumnElement[Any]:
        text = self._text(key)
        if self.postgres:
            return case((text.regexp_match(_PG_NUMBER), cast(text, Float)), else_=None)
        path = f'$."{key}"'
        kind = func.json_type(Contact.attributes, path)
        trimmed = func.trim(text)
        reads_as_number = and_(
            kind == "text",
            trimmed != "",
            trimmed.op("GLOB")("*[0-9]*"),
            not_(trimmed.op("GLOB")("*[^-0-9.eE+]*")),
        )
        return case(
            (
                kind.in_(["integer", "real"]),
                cast(func.json_extract(Contact.attributes, path), Float),
            ),
            (reads_as_number, cast(trimmed, Float)),
            else_=None,
        )

    def _date(self, key: str) -> ColumnElement[Any]:
        text = self._text(key)
        looks_like_date = (
            text.regexp_match(_PG_DATE) if self.postgres else text.op("GLOB")(_SQLITE_DATE)
        )
        return case((looks_like_date, func.substr(text, 1, 10)), else_=None)

    def attribute(self, item: AttributeCondition) -> Condition:
        op, value, key = item.operator, item.value, item.key
        text = self._text(key)
        if op == "exists":
            return text.is_not(None)
        if op == "not_exists":
            return text.is_(None)
        if op == "contains":
            return func.lower(text).contains(str(value).lower(), autoescape=True)
        if op == "starts_with":
            return func.lower(text).startswith(str(value).lower(), autoescape=True)
        if op in COMPARISONS:
            return self._compare(key, op, value)
        if op == "in":
            return self._in(key, value if isinstance(value, list) else [value])
        equal = self._equal(key, value)
        if op == "eq":
            return equal
        return or_(text.is_(None), not_(equal))  # neq: a contact without it differs too

    def _equal(self, key: str, value: Any) -> Condition:
        if isinstance(value, bool):
            return self._text(key) == ("true" if value else "false")
        if isinstance(value, int | float):
            return self._number(key) == float(value)
        return self._text(key) == str(value)

    def _in(self, key: str, values: list[Any]) -> Condition:
        return or_(*(self._equal(key, value) for value in values))

    def _compare(self, key: str, op: str, value: Any) -> Condition:
        side = self._date(key) if isinstance(value, str) else self._number(key)
        bound = value if isinstance(value, str) else float(value)
        if op == "gt":
            return side > bound
        if op == "gte":
            return side >= bound
        if op == "lt":
            return side < bound
        return side <= bound

    # --- channel and last inbound -------------------------------------------------------

    def channel(self, item: ChannelCondition) -> Condition:
        if item.provider is not None:
            identities = scoped(ContactIdentity, self.ws).with_only_columns(literal(1))
            return identities.where(
                ContactIdentity.contact_id == Contact.id,
                ContactIdentity.provider == item.provider,
            ).exists()
        conversations = scoped(Conversation, self.ws).with_only_columns(literal(1))
        return conversations.where(
            Conversation.contact_id == Contact.id, Conversation.channel_id == item.channel_id
        ).exists()

    def last_inbound(self, item: LastInboundCondition) -> Condition:
        inbound = (
            scoped(Conversation, self.ws)
            .with_only_columns(literal(1))
            .where(Conversation.contact_id == Contact.id, Conversation.last_inbound_at.is_not(None))
        )
        if item.operator == "never":
            return not_(inbound.exists())
        moment = item.at if item.at is not None else self.now - timedelta(days=item.days_ago or 0)
        since = inbound.where(Conversation.last_inbound_at >= moment).exists()
        if item.operator == "after":
            return since
        return and_(inbound.exists(), not_(since))


def where(
    definition: SegmentDefinition, workspace_id: uuid.UUID, dialect: str, now: datetime
) -> Condition:
    """The contacts of `definition` in this workspace: opted in, and matching."""
    opted_in = Contact.opted_out.is_not(True)
    if not definition.conditions:
        return and_(opted_in, true())
    matching = Compiler(workspace_id, dialect, now).group(definition.match, definition.conditions)
    return and_(opted_in, matching)
