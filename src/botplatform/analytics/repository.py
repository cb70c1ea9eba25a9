"""Every query of analytics: the counts of one window of time, read from the rows (for a
rollup or for today, live), the rollups of closed days, and the cycles' durations."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, delete, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.kit.scoping import scoped
from botplatform.models import (
    AiUsage,
    AnalyticsDaily,
    AnalyticsWatermark,
    AutomationRun,
    Bot,
    BotVersion,
    Broadcast,
    BroadcastRecipient,
    ConsentEvent,
    Conversation,
    ConversationCycle,
    Message,
    Team,
)


@dataclass(frozen=True)
class Count:
    metric: str
    channel_id: uuid.UUID | None
    key: str
    value: int


def _between(column: Any, start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(column >= start, column < end)


async def _counts(db: AsyncSession, metric: str, statement: Select[Any]) -> list[Count]:
    """Rows of (channel_id, key, count) as counts of `metric`; a key of None is ''."""
    rows = (await db.execute(statement)).all()
    return [
        Count(metric, row[0], str(row[1] if row[1] is not None else ""), int(row[2]))
        for row in rows
    ]


def _grouped(model: Any, ws: uuid.UUID, channel: Any, key: Any, *where: Any) -> Select[Any]:
    return (
        scoped(model, ws)
        .with_only_columns(channel, key, func.count())
        .where(*where)
        .group_by(channel, key)
    )


async def message_counts(
    db: AsyncSession, ws: uuid.UUID, start: datetime, end: datetime
) -> list[Count]:
    """Messages in and out by channel and type; outbound ones also by their status now
    (a late status webhook changes it: the rollup of that day is made again)."""
    m = Message
    when, real = _between(m.created_at, start, end), m.is_note.is_(False)
    columns = (m.channel_id, m.direction, m.type, m.status, m.sender_user_id)
    statement = (
        scoped(m, ws).with_only_columns(*columns, func.count()).where(when, real).group_by(*columns)
    )
    out: list[Count] = []
    for channel, direction, kind, status, agent, n in (await db.execute(statement)).all():
        if direction == "inbound":
            out.append(Count("messages_in", channel, kind, n))
            continue
        out += [
            Count("messages_out", channel, kind, n),
            Count("outbound_status", channel, status, n),
        ]
        if agent is not None:
            out.append(Count("agent_replies", channel, str(agent), n))
    team = (
        _grouped(
            m, ws, m.channel_id, Conversation.team_id, when, real, m.sender_user_id.is_not(None)
        )
        .join(Conversation, Conversation.id == m.conversation_id)
        .where(m.direction == "outbound", Conversation.team_id.is_not(None))
    )
    return out + await _counts(db, "team_replies", team)


async def cycle_counts(
    db: AsyncSession, ws: uuid.UUID, start: datetime, end: datetime
) -> list[Count]:
    """Conversations opened (new or reopened) and resolved; the bots' runs of the cycles
    opened in the window."""
    c = ConversationCycle
    opened = _between(c.opened_at, start, end)
    kind = func.coalesce(c.reopened, False)
    out = await _counts(db, "conversations_opened", _grouped(c, ws, c.channel_id, kind, opened))
    out = [Count(x.metric, x.channel_id, _opening_kind(x.key), x.value) for x in out]
    resolved = _between(c.resolved_at, start, end)
    out += await _counts(
        db, "conversations_resolved", _grouped(c, ws, c.channel_id, literal(""), resolved)
    )
    bots = (
        scoped(c, ws)
        .with_only_columns(
            c.channel_id,
            c.bot_id,
            c.bot_version_id,
            c.bot_outcome,
            c.bot_node_id,
            c.resolved_at.is_not(None),
            func.count(),
        )
        .where(opened, c.bot_id.is_not(None))
        .group_by(
            c.channel_id,
            c.bot_id,
            c.bot_version_id,
            c.bot_outcome,
            c.bot_node_id,
            c.resolved_at.is_not(None),
        )
    )
    for row in (await db.execute(bots)).all():
        out += _bot_counts(
            row[0], f"{row[1]}:{row[2] or ''}", row[3], row[4], bool(row[5]), int(row[6])
        )
    return out


def _opening_kind(reopened: str) -> str:
    return "reopened" if reopened in ("True", "1", "true") else "new"


def _bot_counts(
    channel: uuid.UUID | None,
    bot: str,
    outcome: str | None,
    node: str | None,
    resolved: bool,
    n: int,
) -> list[Count]:
    """A bot's cycles: started; completed; handed off; contained (resolved or completed
    without a human); the others stopped at a node (where users drop off)."""
    out = [Count("bot_started", channel, bot, n)]
    if outcome == "completed":
        out.append(Count("bot_completed", channel, bot, n))
    if outcome == "handoff":
        out.append(Count("bot_handoff", channel, bot, n))
    elif outcome == "completed" or resolved:
        out.append(Count("bot_contained", channel, bot, n))
    if outcome is None:
        out.append(Count("bot_dropoff", channel, f"{bot}:{node or ''}", n))
    return out


async def ledger_counts(
    db: AsyncSession, ws: uuid.UUID, start: datetime, end: datetime
) -> list[Count]:
    """Automation runs by outcome, opt-outs and opt-ins by source, AI answers by outcome."""
    none = literal(None)
    out = await _counts(
        db,
        "automation_runs",
        _grouped(
            AutomationRun,
            ws,
            none,
            AutomationRun.outcome,
            _between(AutomationRun.created_at, start, end),
        ),
    )
    consent = _between(ConsentEvent.created_at, start, end)
    for action in ("opt_out", "opt_in"):
        statement = _grouped(
            ConsentEvent,
            ws,
            ConsentEvent.channel_id,
            ConsentEvent.source,
            consent,
            ConsentEvent.action == action,
        )
        out += await _counts(db, action, statement)
    ai = _between(AiUsage.created_at, start, end)
    out += await _counts(
        db, "ai_answers", _grouped(AiUsage, ws, none, AiUsage.outcome, ai, AiUsage.kind == "answer")
    )
    return out


#: The counts come in three families, each from its own rows; a report asks for those it shows.
FAMILIES = {"messages": message_counts, "cycles": cycle_counts, "ledger": ledger_counts}
METRICS = {
    "messages": ("messages_in", "messages_out", "outbound_status", "agent_replies", "team_replies"),
    "cycles": (
        "conversations_opened",
        "conversations_resolved",
        "bot_started",
        "bot_completed",
        "bot_handoff",
        "bot_contained",
        "bot_dropoff",
    ),
    "ledger": ("automation_runs", "opt_out", "opt_in", "ai_answers"),
}
ALL_FAMILIES = tuple(FAMILIES)


async def counts_of_window(
    db: AsyncSession,
    ws: uuid.UUID,
    start: datetime,
    end: datetime,
    families: Iterable[str] = ALL_FAMILIES,
) -> list[Count]:
    out: list[Count] = []
    for family in families:
        out += await FAMILIES[family](db, ws, start, end)
    return out


async def replace_day(db: AsyncSession, ws: uuid.UUID, day: str, counts: Iterable[Count]) -> None:
    """A day's rollup, whole: what was there is deleted first (re-running is idempotent)."""
    await db.execute(
        delete(AnalyticsDaily).where(AnalyticsDaily.workspace_id == ws, AnalyticsDaily.day == day)
    )
    rows = [
        {
            "id": uuid.uuid4(),
            "workspace_id": ws,
            "day": day,
            "metric": c.metric,
            "channel_id": c.channel_id,
            "key": c.key,
            "value": c.value,
        }
        for c in counts
        if c.value
    ]
    if rows:
        await db.execute(AnalyticsDaily.__table__.insert(), rows)  # type: ignore[attr-defined]


async def rolled_up(
    db: AsyncSession, ws: uuid.UUID, first: str, last: str, families: Iterable[str]
) -> list[tuple[str, Count]]:
    """The closed days' counts from `first` to `last` (inclusive, YYYY-MM-DD)."""
    a = AnalyticsDaily
    metrics = [metric for family in families for metric in METRICS[family]]
    statement = (
        scoped(a, ws)
        .with_only_columns(a.day, a.metric, a.channel_id, a.key, a.value)
        .where(a.day >= first, a.day <= last)
    )
    if len(metrics) < sum(len(m) for m in METRICS.values()):
        statement = statement.where(a.metric.in_(metrics))
    rows = (await db.execute(statement)).all()
    return [(row[0], Count(row[1], row[2], row[3], int(row[4]))) for row in rows]


async def watermark(db: AsyncSession, ws: uuid.UUID) -> AnalyticsWatermark | None:
    statement = scoped(AnalyticsWatermark, ws)
    return (await db.execute(statement)).scalar_one_or_none()


async def first_change_since(db: AsyncSession, ws: uuid.UUID, since: datetime) -> datetime | None:
    """The earliest moment of anything counted that changed after `since`: a message (a late
    status too), a cycle, an automation run, a consent event, an AI call."""
    candidates = [
        scoped(Message, ws)
        .with_only_columns(func.min(Message.created_at))
        .where(Message.updated_at > since),
        scoped(ConversationCycle, ws)
        .with_only_columns(func.min(ConversationCycle.opened_at))
        .where(ConversationCycle.updated_at > since),
        scoped(ConversationCycle, ws)
        .with_only_columns(func.min(ConversationCycle.resolved_at))
        .where(ConversationCycle.updated_at > since),
    ]
    for model in (AutomationRun, ConsentEvent, AiUsage):
        candidates.append(
            scoped(model, ws)
            .with_only_columns(func.min(model.created_at))
            .where(model.created_at > since)
        )
    found = [await db.scalar(statement) for statement in candidates]
    moments = [_aware(moment) for moment in found if moment is not None]
    return min(moments) if moments else None


def _aware(moment: datetime) -> datetime:
    """`min()` over a column skips the column type: SQLite answers a naive UTC value."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class CycleTimes:
    id: uuid.UUID
    channel_id: uuid.UUID
    opened_at: datetime
    resolved_at: datetime | None
    first_response_at: datetime | None
    first_responder_id: uuid.UUID | None
    team_id: uuid.UUID | None


def _stale(c: type[ConversationCycle], *, awaiting: bool) -> ColumnElement[bool]:
    """Cycles whose stored durations are missing or out of date: never derived, or resolved
    since; with `awaiting`, also those still waiting for a first reply (the job looks again,
    a read trusts the job's last look)."""
    stale = c.facts_at.is_(None) | (c.resolved_at.is_not(None) & c.resolution_seconds.is_(None))
    return stale | c.first_response_at.is_(None) if awaiting else stale


async def cycles_missing_facts(
    db: AsyncSession, ws: uuid.UUID, start: datetime, end: datetime, *, awaiting: bool
) -> list[CycleTimes]:
    """Cycles opened in the window whose durations are stale (see `_stale`), with their
    first reply read from the messages and the conversation's team."""
    c = ConversationCycle
    m = Message
    after_open = and_(
        m.conversation_id == c.conversation_id,
        m.direction == "outbound",
        m.is_note.is_(False),
        m.created_at >= c.opened_at,
    )
    first_at = select(func.min(m.created_at)).where(after_open).correlate(c).scalar_subquery()
    responder = (
        select(m.sender_user_id)
        .where(after_open, m.created_at == first_at)
        .order_by(m.id)
        .limit(1)
        .correlate(c)
        .scalar_subquery()
    )
    columns = (c.id, c.channel_id, c.opened_at, c.resolved_at, first_at, responder)
    statement = (
        scoped(c, ws)
        .with_only_columns(*columns, Conversation.team_id)
        .join(Conversation, Conversation.id == c.conversation_id)
        .where(_between(c.opened_at, start, end), _stale(c, awaiting=awaiting))
    )
    rows = (await db.execute(statement)).all()
    return [
        CycleTimes(r[0], r[1], r[2], r[3], _aware(r[4]) if r[4] else None, r[5], r[6]) for r in rows
    ]


async def store_facts(db: AsyncSession, facts: list[dict[str, Any]]) -> None:
    if facts:
        table = ConversationCycle.__table__
        statement = (
            update(table)  # type: ignore[arg-type]
            .where(table.c.id == bindparam("cycle_id"))
            .values(
                first_response_at=bindparam("first_response_at"),
                first_responder_id=bindparam("first_responder_id"),
                first_response_seconds=bindparam("first_response_seconds"),
                first_response_business_seconds=bindparam("first_response_business_seconds"),
                resolution_seconds=bindparam("resolution_seconds"),
                resolution_business_seconds=bindparam("resolution_business_seconds"),
                facts_at=bindparam("facts_at"),
                # Derived values are no change to aggregate again: the stamp stays.
                updated_at=table.c.updated_at,
            )
        )
        await db.execute(statement, facts)


def fresh_facts(ws: uuid.UUID, start: datetime, end: datetime) -> Select[Any]:
    """The cycles opened in the window whose stored durations are up to date."""
    c = ConversationCycle
    return scoped(c, ws).where(_between(c.opened_at, start, end), ~_stale(c, awaiting=False))


@dataclass(frozen=True)
class BroadcastFigures:
    id: uuid.UUID
    name: str
    status: str
    started_at: datetime | None
    by_status: dict[str, int]
    replied: int


async def broadcast_figures(
    db: AsyncSession, ws: uuid.UUID, start: datetime, end: datetime, channel: uuid.UUID | None
) -> list[BroadcastFigures]:
    """Broadcasts started in the window: recipients by status, and how many replied (an
    inbound message from the recipient on the broadcast's channel after it was sent)."""
    b, r = Broadcast, BroadcastRecipient
    listing = scoped(b, ws).where(_between(b.started_at, start, end)).order_by(b.started_at)
    if channel is not None:
        listing = listing.where(b.channel_id == channel)
    broadcasts = list((await db.execute(listing)).scalars())
    if not broadcasts:
        return []
    ids = [row.id for row in broadcasts]
    statuses = (
        scoped(r, ws)
        .with_only_columns(r.broadcast_id, r.status, func.count())
        .where(r.broadcast_id.in_(ids))
        .group_by(r.broadcast_id, r.status)
    )
    by_status: dict[uuid.UUID, dict[str, int]] = {i: {} for i in ids}
    for row in (await db.execute(statuses)).all():
        by_status[row[0]][row[1]] = int(row[2])
    replied_rows = (await db.execute(_replied(ws, ids))).all()
    replied = {row[0]: int(row[1]) for row in replied_rows}
    return [
        BroadcastFigures(
            x.id, x.name, x.status, x.started_at, by_status[x.id], replied.get(x.id, 0)
        )
        for x in broadcasts
    ]


def _replied(ws: uuid.UUID, ids: list[uuid.UUID]) -> Any:
    r, m, cv = BroadcastRecipient, Message, Conversation
    answer = (
        select(m.id)
        .join(cv, cv.id == m.conversation_id)
        .where(
            cv.contact_id == r.contact_id,
            cv.channel_id == r.channel_id,
            m.direction == "inbound",
            m.created_at > r.sent_at,
        )
        .correlate(r)
        .exists()
    )
    return (
        scoped(r, ws)
        .with_only_columns(r.broadcast_id, func.count())
        .where(r.broadcast_id.in_(ids), r.sent_at.is_not(None), answer)
        .group_by(r.broadcast_id)
    )


async def display_names(db: AsyncSession, ws: uuid.UUID) -> dict[str, str]:
    """{id: name} of the workspace's members and teams, to label the leaderboard."""
    from botplatform.member.repository import members_with_users

    out = {
        str(user.id): user.name or user.email
        for _, user in (await db.execute(members_with_users(ws))).tuples()
    }
    teams = scoped(Team, ws).with_only_columns(Team.id, Team.name)
    out |= {str(row[0]): row[1] for row in (await db.execute(teams)).all()}
    return out


async def bot_labels(db: AsyncSession, ws: uuid.UUID) -> tuple[dict[str, str], dict[str, int]]:
    """The workspace's bot names and version numbers, by id as text."""
    bots = scoped(Bot, ws).with_only_columns(Bot.id, Bot.name)
    versions = scoped(BotVersion, ws).with_only_columns(BotVersion.id, BotVersion.number)
    names = {str(row[0]): row[1] for row in (await db.execute(bots)).all()}
    numbers = {str(row[0]): int(row[1]) for row in (await db.execute(versions)).all()}
    return names, numbers
