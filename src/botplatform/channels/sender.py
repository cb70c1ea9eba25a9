"""The batched sender: outbound rows already leased to the calling job go to the provider
together, and their outcomes are written back in one statement per batch.

A row reaches it `sending` with a lease (inserted so by the inbound batch that decided the
reply). Before any request leaves, the batch commits its send marker; the requests go out
concurrently within the channel's send rate; then one UPDATE writes every outcome and one
multi-row INSERT the `message.sent` / `message.failed` events — or, for the accepted sends of an
inbound batch whose successor is already waiting, that successor's last statement does
(`riding_writes`). A send that failed for a
reason worth retrying, or found no send slot in time, goes back to `queued` and on to the
per-message `send_message` job, which retries it with backoff.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, Uuid, bindparam, func, inspect, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.automation import events as automation_events
from botplatform.automation.events import has_rules
from botplatform.channels import delivery, policy
from botplatform.channels.base import (
    RECIPIENT_BLOCKED,
    ChannelInfo,
    ProviderSendError,
    send_measured,
)
from botplatform.channels.messages import OutboundMessage, SendResult
from botplatform.channels.registry import adapter_for
from botplatform.conversation.service import opt_out_blocked
from botplatform.events import payloads
from botplatform.events.catalog import MESSAGE_SENT
from botplatform.events.service import anyone_receives, emit_many
from botplatform.kit import core
from botplatform.kit.clock import utcnow
from botplatform.kit.logging import get_logger
from botplatform.kit.scoping import enter_workspace
from botplatform.message.schemas import MessageBody
from botplatform.message.service import SEND_JOB, to_outbound
from botplatform.models import Message
from botplatform.models.base import UTCDateTime, table_of
from botplatform.worker.jobs import enqueue

if TYPE_CHECKING:
    from botplatform.runtime import Runtime

log = get_logger("botplatform.sender")
#: Provider requests in flight at once per batch. Few: every request makes the HTTP client
#: check each pooled connection, so CPU per send grows with the connections a batch opens
#: (measured per message on loopback: 4 in flight 10.6 ms, 8 → 13.2 ms, 32 → 15.7 ms).
CONCURRENT_REQUESTS = 4
#: How long a batch waits for send slots before handing the rest to the send job.
SLOT_WAIT_SECONDS = 5.0
#: When the send job takes over a send refused for now (or left without a slot).
RETRY_DELAY_MS = 2_000


@dataclass(frozen=True)
class LeasedSend:
    """An outbound row leased to the caller, with what sending it takes (nothing is read
    again: the caller had it all when it inserted the row)."""

    message_id: uuid.UUID
    workspace_id: uuid.UUID
    channel: ChannelInfo
    conversation_id: uuid.UUID
    contact_id: uuid.UUID | None
    recipient_id: str
    outbound: OutboundMessage
    row: dict[str, Any]  # the row as inserted: the events' payloads are built from it
    lease_until: datetime  # the batch's claim: it fences giving the row back


def outbound_of(row: dict[str, Any], recipient_id: str) -> OutboundMessage:
    body = MessageBody.model_validate(row["content"]["request"])
    key = row["idempotency_key"] or str(row["id"])
    return to_outbound(body, recipient_id, key, row["reply_to_provider_id"], str(row["id"]))


_MESSAGE_ATTRIBUTES = [attribute.key for attribute in inspect(Message).column_attrs]


def row_of(message: Message) -> dict[str, Any]:
    """A loaded row's columns, as a leased send carries them (for its events' payloads)."""
    return {key: getattr(message, key) for key in _MESSAGE_ATTRIBUTES}


def leased_send(
    message: Message,
    channel: ChannelInfo,
    contact_id: uuid.UUID,
    recipient_id: str,
    lease_until: datetime,
) -> LeasedSend:
    """A loaded row already leased (and marked) for its sender: what sending it takes.
    `lease_until` is the claim's own value (not the row's as read back, which SQLite may
    return in another form), since it fences giving the row back."""
    row = row_of(message)
    return LeasedSend(
        message_id=message.id,
        workspace_id=message.workspace_id,
        channel=channel,
        conversation_id=message.conversation_id,
        contact_id=contact_id,
        recipient_id=recipient_id,
        outbound=outbound_of(row, recipient_id),
        row=row,
        lease_until=lease_until,
    )


def leased_reply(reply: delivery.LeasedReply) -> LeasedSend:
    """A reply leased in an inbound batch's unit of work (`delivery.Leases`), read from the
    flushed row before the batch commits, as the batch sends it."""
    message = reply.message
    assert message.lease_until is not None  # leased by `Leases.take`, in this process
    return leased_send(
        message, reply.channel, reply.contact_id, reply.recipient_id, message.lease_until
    )


@dataclass(frozen=True)
class _Result:
    send: LeasedSend
    # sent | failed | retry (refused for now: the send job tries again) | later (no send
    # slot: it never left) | unknown (no answer: it may have arrived, never sent again)
    status: str
    provider_message_id: str | None = None
    error_code: str | None = None
    error_title: str | None = None
    retry_after: float | None = None  # seconds the provider asked to wait (Retry-After)


#: An accepted send whose outcome is still to be written (`send_leased`, `riding_writes`).
Accepted = _Result


async def send_leased(
    runtime: Runtime, sends: list[LeasedSend], *, may_ride: bool = False
) -> list[Accepted]:
    """Sends leased rows of one workspace, whose send marker is committed (`channels.
    delivery`), and writes their outcomes — except, when `may_ride`, the accepted ones,
    which are returned for the caller to write with its next batch (`riding_writes`)."""
    if not sends:
        return []
    workspace_id = sends[0].workspace_id
    by_channel: dict[uuid.UUID, list[LeasedSend]] = defaultdict(list)
    for send in sends:
        by_channel[send.channel.id].append(send)
    results: list[_Result] = []
    for channel_sends in by_channel.values():
        results += await _send_channel(runtime, channel_sends)
    accepted = [result for result in results if result.status == "sent"] if may_ride else []
    await write_outcomes(runtime, workspace_id, [r for r in results if r not in accepted])
    return accepted


async def send_for_job(runtime: Runtime, send: LeasedSend, *, last_attempt: bool) -> _Result:
    """The per-message send job's send (a person's or an API key's message, a retry): the
    same request and outcome as a batch's, for one row whose marker is committed. A refusal
    worth another try (or no send slot) is written `queued` but not queued again: the job
    retries with its own backoff — and on its last attempt such a refusal is final."""
    [result] = await _send_channel(runtime, [send])
    if result.status == "retry" and last_attempt:
        result = replace(result, status="failed")
    await write_outcomes(runtime, send.workspace_id, [result], requeue=False)
    return result


async def _send_channel(runtime: Runtime, sends: list[LeasedSend]) -> list[_Result]:
    channel = sends[0].channel
    granted = await _take_slots(runtime, channel, len(sends))
    later = [_Result(send, "later") for send in sends[granted:]]
    adapter = adapter_for(channel, runtime.settings, runtime.http)
    gate = asyncio.Semaphore(CONCURRENT_REQUESTS)

    async def one(send: LeasedSend) -> _Result:
        async with gate:
            limiter, recipient = runtime.ratelimiter, send.outbound.recipient_id
            if not await policy.take_recipient_slot(limiter, channel, recipient, 0):
                return _Result(send, "later")  # the send job waits for this conversation
            try:
                result: SendResult = await send_measured(adapter, channel, send.outbound)
            except ProviderSendError as exc:
                if exc.ambiguous:
                    return _Result(send, "unknown")
                status = "retry" if exc.retryable else "failed"
                return _Result(send, status, None, exc.code, exc.title[:500], exc.retry_after)
            return _Result(send, "sent", result.provider_message_id)

    sent = await asyncio.gather(*(one(send) for send in sends[:granted]))
    return [*sent, *later]


async def _take_slots(runtime: Runtime, channel: ChannelInfo, wanted: int) -> int:
    """How many of `wanted` sends may go now within the channel's send rate: all at once
    when the window has room (one Redis round trip), else one by one as slots free up."""
    if await policy.take_send_slots(runtime.ratelimiter, channel, wanted):
        return wanted
    taken = 0
    while taken < wanted:
        if not await policy.take_send_slot(runtime.ratelimiter, channel, SLOT_WAIT_SECONDS):
            break
        taken += 1
    return taken


def _outcome(values: dict[str, Any]) -> Any:
    messages = table_of(Message)
    return (
        update(messages)
        .where(messages.c.workspace_id == bindparam("ws"), messages.c.id == bindparam("row_id"))
        .values(**values)
    )


# One statement per kind of outcome, each run once for the batch (executemany), built once
# from the protocol's own values (`channels.delivery`), which also clear the send marker.
_SENT = _outcome(delivery.sent_values(bindparam("pid"), bindparam("sent_at")))
_FAILED = _outcome(delivery.failed_values(bindparam("code"), bindparam("title")))
_RETRY = _outcome(delivery.retry_values(bindparam("code"), bindparam("title")))
# No send slot came: the request never left, so the row goes back to `queued` (only if this
# batch's lease still holds it) and on to the send job.
_GIVE_BACK = _outcome({"status": "queued", "lease_until": None, "send_attempted_at": None}).where(
    table_of(Message).c.status == "sending",
    table_of(Message).c.lease_until == bindparam("lease"),
)
_STATEMENTS = {"sent": _SENT, "failed": _FAILED, "retry": _RETRY, "later": _GIVE_BACK}


async def write_outcomes(
    runtime: Runtime, workspace_id: uuid.UUID, results: list[_Result], *, requeue: bool = True
) -> None:
    """Every outcome of the batch (one statement per kind), their events in one INSERT, in
    a transaction of their own. A send with no answer writes nothing: its marker stays, and
    its status webhook or the sweeper settles it."""
    now = utcnow()
    written = [result for result in results if result.status != "unknown"]
    if not written:
        return
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, workspace_id)
        by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
        sent: list[_Result] = []
        for result in written:
            if result.status == "sent":
                sent.append(result)
            else:
                by_kind[result.status].append(_outcome_row(result, workspace_id, now))
        # The accepted ones (the common case) as the batch writes them: on PostgreSQL one
        # execution from arrays, not one per row.
        writes = riding_writes(db, workspace_id, sent, now)
        writes += [(_STATEMENTS[kind], rows) for kind, rows in by_kind.items()]
        await core.together(db, writes)
        await _after_outcomes(db, workspace_id, written, now, requeue=requeue)


# -- accepted sends written with the workspace's next inbound batch ----------------------------
#
# The next batch of the same workspace is often waiting already when a batch's sends come back,
# or comes a moment later (`tasks._Batches.leave_outcomes` waits that moment). Their outcomes
# (all accepted: the common case) then go into that batch's last statement (`core.together`)
# instead of a transaction of their own: three round trips fewer per batch
# (BEGIN with the tenant, UPDATE, COMMIT). Nothing is at stake meanwhile: each row keeps its
# committed send marker, so were the process to die first, the row would wait for its status
# webhook (which moves it on, `_moves_to_sent`) exactly as if it had died during the request.

_ACCEPTED = (
    func.unnest(
        bindparam("row_ids", type_=postgresql.ARRAY(Uuid)),
        bindparam("pids", type_=postgresql.ARRAY(String)),
    )
    .table_valued("id", "pid")
    .render_derived(name="accepted")
)
# One row of arrays on PostgreSQL: one shape whatever the batch's size, so it can run with the
# batch's other last writes (`core.together`); SQLite runs `_SENT` per row.
_SENT_MANY = (
    update(table_of(Message))
    .where(table_of(Message).c.workspace_id == bindparam("ws"))
    .where(table_of(Message).c.id == _ACCEPTED.c.id)
    .values(**delivery.sent_values(_ACCEPTED.c.pid, bindparam("sent_at", type_=UTCDateTime)))
)


def riding_writes(
    db: AsyncSession,
    workspace_id: uuid.UUID,
    accepted: list[Accepted],
    now: datetime | None = None,
) -> list[core.Write]:
    """The statement writing `accepted` outcomes, for a batch's last writes (or with the
    other outcomes of `write_outcomes`, at its `now`)."""
    if not accepted:
        return []
    now = now or utcnow()
    rows = [_outcome_row(result, workspace_id, now) for result in accepted]
    if db.get_bind().dialect.name != "postgresql":
        return [(_SENT, rows)]
    arrays = {
        "ws": workspace_id,
        "row_ids": [row["row_id"] for row in rows],
        "pids": [row["pid"] for row in rows],
        "sent_at": now,
    }
    return [(_SENT_MANY, arrays)]


async def after_riding(db: AsyncSession, workspace_id: uuid.UUID, accepted: list[Accepted]) -> None:
    """The events and rules of `accepted` outcomes, in the batch's transaction."""
    if accepted:
        await _after_outcomes(db, workspace_id, accepted, utcnow())


async def _after_outcomes(
    db: AsyncSession,
    workspace_id: uuid.UUID,
    written: list[_Result],
    now: datetime,
    *,
    requeue: bool = True,
) -> None:
    events = []
    wanted = await anyone_receives(db, workspace_id)
    for result in written:
        if result.status in ("retry", "later"):
            if not requeue:  # the caller is the send job: it retries itself
                continue
            message_id = str(result.send.message_id)
            delay = RETRY_DELAY_MS
            if result.retry_after is not None:  # exactly what the provider asked for
                delay = int(result.retry_after * 1000)
            enqueue(db, SEND_JOB, str(workspace_id), message_id, delay_ms=delay)
            continue
        if wanted:
            message = _as_written(result, now)
            event = "message.sent" if result.status == "sent" else "message.failed"
            events.append((event, payloads.message_event(message, result.send.contact_id)))
    await emit_many(db, workspace_id, events)
    await _rules_on_sent(db, written, now)
    await _opt_out_blocked(db, workspace_id, written)


async def _opt_out_blocked(
    db: AsyncSession, workspace_id: uuid.UUID, results: list[_Result]
) -> None:
    """Recipients the provider says blocked the channel are opted out (as the send job does)."""
    for result in results:
        if result.error_code == RECIPIENT_BLOCKED and result.send.contact_id is not None:
            await opt_out_blocked(
                db,
                workspace_id,
                [result.send.contact_id],
                result.send.channel.id,
                result.error_title or "",
            )


async def _rules_on_sent(db: AsyncSession, results: list[_Result], now: datetime) -> None:
    """Rules on `message.sent` run at the moment it is emitted, as on the per-message path."""
    if not results or not await has_rules(db, results[0].send.workspace_id, MESSAGE_SENT):
        return  # (asked once: the rows are not rebuilt for nothing)
    for result in results:
        if result.status == "sent":
            await automation_events.message_sent(
                db, _as_written(result, now), result.send.contact_id
            )


def _outcome_row(result: _Result, workspace_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    return {
        "ws": workspace_id,
        "row_id": result.send.message_id,
        "pid": result.provider_message_id,
        "sent_at": now,
        "code": result.error_code,
        "title": result.error_title,
        "lease": result.send.lease_until,
    }


def _as_written(result: _Result, now: datetime) -> Message:
    """The row as the outcome left it, for the event payloads (not read back)."""
    row = dict(result.send.row)
    row.update(
        status=result.status,
        provider_message_id=result.provider_message_id,
        sent_at=now if result.status == "sent" else None,
        error_code=result.error_code,
        error_title=result.error_title,
        lease_until=None,
        send_attempted_at=None,
        updated_at=now,
    )
    return core.instance(Message, row)
