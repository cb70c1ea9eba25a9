"""Median and p90 of the cycles' stored durations, grouped by period, agent or team.

On PostgreSQL the database computes them (`percentile_cont`, grouped in the workspace's
time zone), so a 90-day range moves a few rows, not every cycle; on SQLite the same
linear-interpolation percentile is computed in Python over the rows. Both answer the same
numbers (the analytics tests run on both)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Float, Uuid, bindparam, func, null, select, union_all
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.analytics.repository import fresh_facts
from botplatform.analytics.timing import local_day, percentile
from botplatform.models import Conversation, ConversationCycle
from botplatform.models.base import UTCDateTime

MEASURES = (
    "first_response_seconds",
    "first_response_business_seconds",
    "resolution_seconds",
    "resolution_business_seconds",
)
Stats = dict[str, Any]  # {"<measure>_median": …, "<measure>_p90": …, "answered": n}
By = Literal["period", "agent", "team"]


@dataclass(frozen=True)
class Scope:
    workspace_id: uuid.UUID
    start: datetime
    end: datetime
    channel_id: uuid.UUID | None
    zone: str
    granularity: str  # day | week | month


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


#: A cycle's figures, the same shape stored or derived live: opened_at, first responder,
#: team, then the MEASURES.
Facts = tuple[Any, ...]
_NAMES = ("opened_at", "first_responder_id", "team_id", *MEASURES)


def _stored(scope: Scope, by: By) -> Any:
    c = ConversationCycle
    # Only the teams need the conversation (its current team): the others skip the join.
    team: Any = Conversation.team_id if by == "team" else null().cast(Uuid)
    columns = [c.opened_at, c.first_responder_id, team]
    columns += [getattr(c, name) for name in MEASURES]
    labelled = (column.label(name) for column, name in zip(columns, _NAMES, strict=True))
    statement = fresh_facts(scope.workspace_id, scope.start, scope.end).with_only_columns(*labelled)
    if by == "team":
        statement = statement.join(Conversation, Conversation.id == c.conversation_id)
    if scope.channel_id is not None:
        statement = statement.where(c.channel_id == scope.channel_id)
    return statement


def _with_live(scope: Scope, by: By, live: list[Facts]) -> Any:
    """The stored facts and, as one more set of rows, those derived live (PostgreSQL arrays
    unnested), so the database ranks them all together."""
    if not live:
        return _stored(scope, by).subquery()
    types: list[Any] = [UTCDateTime(), Uuid(), Uuid(), *([Float()] * len(MEASURES))]
    arrays: list[Any] = [
        bindparam(f"live_{name}", [row[i] for row in live], type_=postgresql.ARRAY(kind))
        for i, (name, kind) in enumerate(zip(_NAMES, types, strict=True))
    ]
    rows = func.unnest(*arrays).table_valued(*_NAMES).render_derived(name="live")
    return union_all(_stored(scope, by), select(*(rows.c[name] for name in _NAMES))).subquery()


def _key_column(by: By, scope: Scope, facts: Any) -> ColumnElement[Any]:
    if by == "agent":
        return facts.c.first_responder_id  # type: ignore[no-any-return]
    if by == "team":
        return facts.c.team_id  # type: ignore[no-any-return]
    local = func.timezone(scope.zone, facts.c.opened_at)
    return func.date_trunc(scope.granularity, local)


async def _postgres(db: AsyncSession, scope: Scope, by: By, live: list[Facts]) -> dict[Any, Stats]:
    facts = _with_live(scope, by, live)
    key = _key_column(by, scope, facts)
    columns: list[Any] = [key, func.count(facts.c.first_response_seconds)]
    # Both percentiles of a measure from one sort: an array of fractions gives an array.
    fractions = postgresql.array([0.5, 0.9])
    columns += [func.percentile_cont(fractions).within_group(facts.c[name]) for name in MEASURES]
    statement = select(*columns).group_by(key)
    if by != "period":
        statement = statement.where(facts.c.first_responder_id.is_not(None), key.is_not(None))
    out: dict[Any, Stats] = {}
    for row in (await db.execute(statement)).all():
        stats: Stats = {"answered": int(row[1])}
        for index, name in enumerate(MEASURES):
            median, p90 = row[2 + index] or (None, None)
            stats[f"{name}_median"] = _round(median)
            stats[f"{name}_p90"] = _round(p90)
        group = row[0].date() if by == "period" else str(row[0])
        out[group] = stats
    return out


async def _python(
    db: AsyncSession, scope: Scope, by: By, bucket: Callable[[date], date], live: list[Facts]
) -> dict[Any, Stats]:
    values: dict[Any, list[tuple[Any, ...]]] = defaultdict(list)
    stored = [tuple(row) for row in (await db.execute(_stored(scope, by))).all()]
    for row in stored + live:
        if by == "period":
            values[bucket(local_day(scope.zone, row[0]))].append(row[3:])
        elif row[1] is not None:
            who = row[1] if by == "agent" else row[2]
            if who is not None:
                values[str(who)].append(row[3:])
    out: dict[Any, Stats] = {}
    for group, rows in values.items():
        stats: Stats = {"answered": sum(1 for r in rows if r[0] is not None)}
        for index, name in enumerate(MEASURES):
            present = [r[index] for r in rows if r[index] is not None]
            stats[f"{name}_median"] = _round(percentile(present, 0.5))
            stats[f"{name}_p90"] = _round(percentile(present, 0.9))
        out[group] = stats
    return out


async def duration_stats(
    db: AsyncSession, scope: Scope, by: By, bucket: Callable[[date], date], live: list[Facts]
) -> dict[Any, Stats]:
    """{group: stats} of the cycles opened in the scope (a period's first day, or an
    agent's / team's id as text): the stored facts and `live` (derived by the caller for
    the cycles the job has not seen yet)."""
    if db.get_bind().dialect.name == "postgresql":
        return await _postgres(db, scope, by, live)
    return await _python(db, scope, by, bucket, live)
