"""Sending a chunk: its messages inserted with the send marker and committed in one
transaction, the requests sent concurrently under the channel's send window (slots taken a
group at a time, right before the group leaves), the outcomes written back with one statement
per kind for the whole chunk, and the broadcast's pace adapted to the provider's throttling.

What a send costs is mostly what is done per message; so as little as possible is: no ORM
object per message (rows as dicts, `core` statements), one Redis round trip per group of
sends rather than per send, one `UPDATE … FROM unnest(…)` per chunk on PostgreSQL for the
accepted sends (an executemany on SQLite), and event payloads built only when someone
receives them."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, Uuid, and_, any_, bindparam, case, delete, or_, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.broadcast import events, repository
from botplatform.broadcast.claim import Ready, ended, write_decisions
from botplatform.broadcast.driver import Driver, give_way
from botplatform.channels import delivery, policy
from botplatform.channels.base import RECIPIENT_BLOCKED, ChannelInfo, ProviderSendError
from botplatform.channels.registry import adapter_for
from botplatform.conversation.service import opt_out_blocked
from botplatform.events import payloads
from botplatform.events.service import anyone_receives, emit_many
from botplatform.kit import core
from botplatform.kit.clock import utcnow
from botplatform.kit.logging import get_logger
from botplatform.kit.scoping import enter_workspace
from botplatform.message.service import to_outbound
from botplatform.models import Broadcast, BroadcastRecipient, Message
from botplatform.models.base import UTCDateTime, table_of
from botplatform.usage import service as usage

log = get_logger("botplatform.broadcast")

#: Messages marked per commit (a quarter second of the channel's rate, at most this many,
#: engine.chunk_size): at most this many end `delivery_unknown` when a worker dies mid-chunk.
CHUNK = 250
#: Provider requests in flight at once; send slots are taken SLOT_GROUP at a time, only when
#: that many requests may leave at once (so a slot is never taken long before its request).
CONCURRENT_REQUESTS = 32
SLOT_GROUP = 16
SLOT_WAIT_SECONDS = 5.0
MAX_ATTEMPTS = 8  # refusals worth retrying, per recipient, before it fails
NOT_SENT = "Not sent: no send slot could be taken."
THROTTLE_CODES = frozenset({"130429", "131056", "80007", "429"})
#: The longest a chunk waits for a late message path (worker/pressure.py): well inside the
#: driver's lease, which the chunk's mark renews.
STEP_BACK_SECONDS = 1.0

_MESSAGES = table_of(Message)
_RECIPIENTS = table_of(BroadcastRecipient)
_RCP = _RECIPIENTS.c


# -- mark -----------------------------------------------------------------------------------

_SET_MESSAGE = (
    update(_RECIPIENTS).where(_RCP.id == bindparam("rid")).values(message_id=bindparam("mid"))
)
_MARKED = core.unnested("marked", ("rids", Uuid), ("mids", Uuid))
_SET_MESSAGES = (
    update(_RECIPIENTS)
    .where(_RCP.workspace_id == bindparam("ws"), _RCP.id == _MARKED.c.rids)
    .values(message_id=_MARKED.c.mids)
)


@dataclass(frozen=True)
class Marked:
    """A claimed recipient with its message row, committed with its send marker."""

    item: Ready
    row: dict[str, Any]


async def _mark(driver: Driver, chunk: list[Ready], claim_lease: datetime) -> list[Marked] | None:
    """Inserts the chunk's messages with their send marker, fenced by the claim's lease,
    and counts them against the month's message quota. Committed on return. None: the
    driver must stop (paused, cancelled, or its lease was taken over)."""
    assert driver.channel is not None
    channel = driver.channel
    now = utcnow()
    async with driver.runtime.db.unit_of_work() as db:
        await enter_workspace(db, driver.ws)
        if await driver.renew(db) != "running":
            return None
        attempts = await repository.hold_for_send(
            db, driver.ws, [item.recipient_id for item in chunk], claim_lease
        )
        mine = [item for item in chunk if item.recipient_id in attempts]
        first = sum(1 for item in mine if attempts[item.recipient_id] == 1)
        refused = await usage.count_batch(db, driver.ws, inbound=0, outbound=first)
        if refused is not None:  # the month's messages are used up: the broadcast stops
            values = ended("failed", refused.code, refused.message)
            await write_decisions(db, driver, [{"rid": i.recipient_id, **values} for i in mine])
            row = await repository.lock(db, driver.ws, driver.broadcast_id)
            row.status, row.error = "failed", refused.message[:500]
            await events.emit_broadcast(db, row, "broadcast.failed")
            return None
        if not mine:
            return []
        marked = [Marked(item, _message_row(driver, channel, item, now)) for item in mine]
        # One round trip on PostgreSQL: the rows and the recipients pointing at them.
        inserting = core.inserting(db, Message, [m.row for m in marked])
        await core.together(db, [inserting, _setting_messages(db, driver.ws, marked)])
    return marked


def _setting_messages(db: AsyncSession, ws: uuid.UUID, marked: list[Marked]) -> core.Write:
    """Each recipient's `message_id`: one statement of arrays on PostgreSQL."""
    if db.get_bind().dialect.name == "postgresql":
        rids = [m.item.recipient_id for m in marked]
        return (_SET_MESSAGES, {"ws": ws, "rids": rids, "mids": [m.row["id"] for m in marked]})
    return (_SET_MESSAGE, [{"rid": m.item.recipient_id, "mid": m.row["id"]} for m in marked])


def _message_row(
    driver: Driver, channel: ChannelInfo, item: Ready, now: datetime
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "workspace_id": driver.ws,
        "conversation_id": item.conversation_id,
        "channel_id": channel.id,
        "direction": "outbound",
        "type": item.body.type,
        "text": item.body.text,
        "content": {"request": item.request, "broadcast_id": str(driver.broadcast_id)},
        "is_note": False,
        "status": "sending",
        "lease_until": driver.lease_until,
        "send_attempted_at": now,  # the marker, committed with the row
        "attempts": 1,
        "idempotency_key": f"broadcast:{driver.broadcast_id}:{item.contact_id}",
        "reply_to_provider_id": None,
        "sender_user_id": None,
        "edited": False,
        "deleted": False,
        "created_at": now,
        "updated_at": now,
    }


# -- send -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    item: Ready
    row: dict[str, Any]  # the message row as marked
    status: str  # sent | failed | retry | unknown
    provider_message_id: str | None = None
    code: str | None = None
    title: str | None = None
    retry_after: float | None = None  # seconds the provider asked us to wait (Telegram's 429)


async def send_chunk(driver: Driver, chunk: list[Ready], claim_lease: datetime) -> bool:
    """Marks, sends and records one chunk; False when the driver must stop. The outcomes
    are written while the next chunk is marked and sent (`Driver.writing`, awaited before
    the next write and by the engine before it claims again)."""
    assert driver.channel is not None
    await _pace(driver, len(chunk))
    marked = await _mark(driver, chunk, claim_lease)
    if marked is None:
        return False
    if not marked:
        return True
    outcomes = await _send_marked(driver, driver.channel, marked)
    _adapt(driver, outcomes)
    await settle_writes(driver)
    driver.writing = asyncio.ensure_future(_write_outcomes(driver, outcomes))
    return True


async def settle_writes(driver: Driver) -> None:
    """Waits for the outcomes still being written (an error in them is raised here)."""
    writing, driver.writing = driver.writing, None
    if writing is not None:
        await writing


async def _send_marked(driver: Driver, channel: ChannelInfo, marked: list[Marked]) -> list[Outcome]:
    """Every marked message goes out (its marker is committed: only later, never not), at
    most CONCURRENT_REQUESTS at once, each group's slots of the send window taken at once
    right before the group leaves."""
    runtime = driver.runtime
    adapter = adapter_for(channel, runtime.settings, runtime.http)
    room = asyncio.Semaphore(CONCURRENT_REQUESTS)

    async def one(entry: Marked) -> Outcome:
        item, row = entry.item, entry.row
        try:
            try:
                while not await policy.take_recipient_slot(
                    runtime.ratelimiter, channel, item.address, SLOT_WAIT_SECONDS
                ):
                    continue
            except Exception:  # Redis is gone: this one provably did not leave
                return Outcome(item, row, "retry", None, "not_sent", NOT_SENT)
            key = row["idempotency_key"]
            outbound = to_outbound(item.body, item.address, key, None, str(row["id"]))
            try:
                result = await adapter.send(outbound)
            except ProviderSendError as exc:
                if exc.ambiguous:
                    return Outcome(item, row, "unknown")
                kind = "retry" if exc.retryable else "failed"
                return Outcome(item, row, kind, None, exc.code, exc.title[:500], exc.retry_after)
            return Outcome(item, row, "sent", result.provider_message_id)
        finally:
            room.release()

    tasks: list[asyncio.Future[Outcome]] = []
    failure: Exception | None = None
    try:
        for start in range(0, len(marked), SLOT_GROUP):
            group = marked[start : start + SLOT_GROUP]
            await give_way()
            for _ in group:
                await room.acquire()
            taken = 0
            while taken < len(group):
                taken += await policy.take_send_slots_upto(
                    runtime.ratelimiter, channel, len(group) - taken, SLOT_WAIT_SECONDS
                )
            tasks += [asyncio.ensure_future(one(entry)) for entry in group]
    except Exception as exc:  # no slot could be taken (Redis is gone): see below
        failure = exc
    answers = await asyncio.gather(*tasks, return_exceptions=True)
    outcomes = [
        # Anything else than the provider's answer: it may have left, never sent again.
        answer if isinstance(answer, Outcome) else Outcome(entry.item, entry.row, "unknown")
        for answer, entry in zip(answers, marked, strict=False)
    ]
    if failure is None:
        return outcomes
    # The requests that left are recorded; those that never left provably did not: their
    # rows go and their recipients are queued again (as after a throttling refusal).
    title = "Not sent: no send slot could be taken."
    outcomes += [
        Outcome(e.item, e.row, "retry", None, "not_sent", title) for e in marked[len(tasks) :]
    ]
    await settle_writes(driver)
    await _write_outcomes(driver, outcomes)
    raise failure


async def _pace(driver: Driver, count: int) -> None:
    """The broadcast's own pace, below the channel's rate after throttling: waits out the
    back-off, steps back while the message path runs late (worker/pressure.py; before the
    chunk is marked, so no send marker ages meanwhile), and spaces chunks at `pace` sends
    per second."""
    if driver.backoff:
        await asyncio.sleep(driver.backoff)
    await driver.runtime.jobs.pressure.step_back(STEP_BACK_SECONDS)
    assert driver.channel is not None
    if driver.pace < driver.channel.send_rate_per_second:
        gap = count / driver.pace - (time.monotonic() - driver.last_chunk)
        if gap > 0:
            await asyncio.sleep(gap)
    driver.last_chunk = time.monotonic()


def _adapt(driver: Driver, outcomes: list[Outcome]) -> None:
    """Adaptive back-off: a throttling answer halves the pace and doubles the pause before
    the next chunk (up to 30 s); a chunk without one speeds up again step by step."""
    assert driver.channel is not None
    cap = float(driver.channel.send_rate_per_second)
    if any(o.status == "retry" and o.code in THROTTLE_CODES for o in outcomes):
        driver.pace = max(driver.pace / 2, 1.0)
        driver.backoff = min(max(driver.backoff * 2, 1.0), 30.0)
        asked = [o.retry_after for o in outcomes if o.retry_after is not None]
        if asked:  # the provider named the wait: at least that, whatever our own doubling says
            driver.backoff = max(driver.backoff, *asked)
        log.info("broadcast_throttled", broadcast_id=str(driver.broadcast_id), pace=driver.pace)
    else:
        driver.backoff = driver.backoff / 2 if driver.backoff >= 0.5 else 0.0
        driver.pace = min(cap, driver.pace * 1.25 + 1)


# -- outcomes -------------------------------------------------------------------------------


def _message_update(values: dict[str, Any]) -> Any:
    return (
        update(_MESSAGES)
        .where(_MESSAGES.c.workspace_id == bindparam("ws"), _MESSAGES.c.id == bindparam("mid"))
        .values(**values)
    )


_MSG_SENT = _message_update(delivery.sent_values(bindparam("pid"), bindparam("now")))
_MSG_FAILED = _message_update(delivery.failed_values(bindparam("code"), bindparam("title")))
# A refusal worth retrying: the request provably did not leave, so its row goes (only while
# nothing else moved it) and the recipient is queued again.
_MSG_DROP = delete(_MESSAGES).where(
    _MESSAGES.c.workspace_id == bindparam("ws"),
    _MESSAGES.c.id == bindparam("mid"),
    _MESSAGES.c.status == "sending",
)


def _recipients_sent(*where: Any) -> Any:
    # A status webhook may have moved it on already: never back. But a recipient the sweeper
    # ended `delivery_unknown` meanwhile (its message's marker outlived the grace while the
    # chunk waited, e.g. on a lost Redis) is sent: the provider's answer proves it left, as
    # its message row moves on too (`delivery.sent_values`).
    settles = or_(
        _RCP.status == "sending",
        and_(_RCP.status == "failed", _RCP.error_code == delivery.DELIVERY_UNKNOWN),
    )
    return (
        update(_RECIPIENTS)
        .where(_RCP.workspace_id == bindparam("ws"), *where)
        .values(
            status=case((settles, "sent"), else_=_RCP.status),
            error_code=case((settles, None), else_=_RCP.error_code),
            error_title=case((settles, None), else_=_RCP.error_title),
            sent_at=bindparam("now", type_=UTCDateTime),
            lease_until=None,
            updated_at=bindparam("now", type_=UTCDateTime),
        )
    )


_RCP_SENT = _recipients_sent(_RCP.id == bindparam("rid"))
_RCP_FAILED = (
    update(_RECIPIENTS)
    .where(_RCP.workspace_id == bindparam("ws"), _RCP.id == bindparam("rid"))
    .values(
        status="failed",
        error_code=bindparam("code"),
        error_title=bindparam("title"),
        lease_until=None,
        updated_at=bindparam("now"),
    )
)
_RCP_RETRY = (
    update(_RECIPIENTS)
    .where(_RCP.workspace_id == bindparam("ws"), _RCP.id == bindparam("rid"))
    .values(
        status=case((_RCP.attempts >= MAX_ATTEMPTS, "failed"), else_="queued"),
        message_id=None,
        error_code=bindparam("code"),
        error_title=bindparam("title"),
        lease_until=None,
        not_before=bindparam("not_before"),
        updated_at=bindparam("now"),
    )
)
# The accepted sends of a chunk, the common case, in two statements of arrays (PostgreSQL).
_ACCEPTED = core.unnested("accepted", ("mids", Uuid), ("pids", String))
_MSG_SENT_MANY = (
    update(_MESSAGES)
    .where(_MESSAGES.c.workspace_id == bindparam("ws"), _MESSAGES.c.id == _ACCEPTED.c.mids)
    .values(**delivery.sent_values(_ACCEPTED.c.pids, bindparam("now", type_=UTCDateTime)))
)
_RCP_SENT_MANY = _recipients_sent(_RCP.id == any_(bindparam("rids", type_=postgresql.ARRAY(Uuid))))
# The chunk's messages locked first, in id order, as a status batch locks the ones it names
# (channels/batch.py): the status webhooks of a chunk often come before its outcomes are
# written, and two writers taking the same rows in different orders deadlock — PostgreSQL
# would then cancel one, and a cancelled outcome write left the whole chunk to its statuses.
_LOCK_MESSAGES = (
    select(_MESSAGES.c.id)
    .where(
        _MESSAGES.c.workspace_id == bindparam("ws"),
        _MESSAGES.c.id == any_(bindparam("mids", type_=postgresql.ARRAY(Uuid))),
    )
    .order_by(_MESSAGES.c.id)
    .with_for_update()
)


def _sent_writes(db: AsyncSession, rows: list[dict[str, Any]]) -> list[core.Write]:
    """The accepted sends' writes: two statements for the chunk on PostgreSQL (one round
    trip with `core.together`), two executemany on SQLite."""
    if db.get_bind().dialect.name != "postgresql":
        return [(_MSG_SENT, rows), (_RCP_SENT, rows)]
    first = rows[0]
    arrays = {
        "ws": first["ws"],
        "now": first["now"],
        "mids": [row["mid"] for row in rows],
        "pids": [row["pid"] for row in rows],
    }
    rids = {"ws": first["ws"], "now": first["now"], "rids": [row["rid"] for row in rows]}
    return [(_MSG_SENT_MANY, arrays), (_RCP_SENT_MANY, rids)]


async def _write_outcomes(driver: Driver, outcomes: list[Outcome]) -> None:
    """The chunk's outcomes in one transaction: one statement per kind of outcome (the
    accepted ones in one round trip on PostgreSQL). A send without an answer writes nothing:
    its marker stays, and its status webhook or the sweeper's `delivery_unknown` settles it
    (and the recipient follows its message, `conversation.statuses`)."""
    now = utcnow()
    later = now + timedelta(seconds=max(driver.backoff, 1.0))
    rows: dict[str, list[dict[str, Any]]] = {"sent": [], "failed": [], "retry": []}
    for o in outcomes:
        if o.status in rows:
            rows[o.status].append(
                {
                    "ws": driver.ws,
                    "mid": o.row["id"],
                    "rid": o.item.recipient_id,
                    "pid": o.provider_message_id,
                    "code": (o.code or "")[:50] or None,
                    "title": o.title,
                    "now": now,
                    "not_before": later,
                }
            )
    if not any(rows.values()):
        return
    throttled = sum(1 for o in outcomes if o.status == "retry" and o.code in THROTTLE_CODES)
    async with driver.runtime.db.unit_of_work() as db:
        await enter_workspace(db, driver.ws)
        if db.get_bind().dialect.name == "postgresql":
            mids = [row["mid"] for kind in rows.values() for row in kind]
            await db.execute(_LOCK_MESSAGES, {"ws": driver.ws, "mids": mids})
        writes: list[core.Write] = _sent_writes(db, rows["sent"]) if rows["sent"] else []
        for statements, kind in (
            ((_MSG_FAILED, _RCP_FAILED), "failed"),
            ((_MSG_DROP, _RCP_RETRY), "retry"),
        ):
            if rows[kind]:
                writes += [(statement, rows[kind]) for statement in statements]
        await core.together(db, writes)
        if throttled:
            await db.execute(
                update(Broadcast)
                .where(Broadcast.workspace_id == driver.ws, Broadcast.id == driver.broadcast_id)
                .values(throttled=Broadcast.throttled + throttled)
            )
        if await anyone_receives(db, driver.ws):
            await emit_many(db, driver.ws, _message_events(outcomes, now))
        blocked = [o for o in outcomes if o.status == "failed" and o.code == RECIPIENT_BLOCKED]
        if blocked and driver.channel is not None:  # opted out, as the send job does
            await opt_out_blocked(
                db,
                driver.ws,
                [o.item.contact_id for o in blocked],
                driver.channel.id,
                blocked[0].title or "",
            )


def _message_events(outcomes: list[Outcome], now: datetime) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    for o in outcomes:
        if o.status not in ("sent", "failed"):
            continue
        message = core.instance(Message, o.row)
        message.status = o.status
        message.provider_message_id = o.provider_message_id
        message.sent_at = now if o.status == "sent" else None
        message.error_code, message.error_title = o.code, o.title
        message.send_attempted_at = message.lease_until = None
        message.updated_at = now
        name = "message.sent" if o.status == "sent" else "message.failed"
        events.append((name, payloads.message_event(message, o.item.contact_id)))
    return events
