"""Sending a chunk: its messages inserted with the send marker and committed, each request
after its own send slot, the outcomes written as channels/delivery.py writes them, and the
broadcast's pace adapted to the provider's throttling."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, delete, update

from botplatform.broadcast import events, repository
from botplatform.broadcast.claim import Ready, ended, write_decisions
from botplatform.broadcast.driver import Driver
from botplatform.channels import delivery, policy
from botplatform.channels.base import RECIPIENT_BLOCKED, ChannelInfo, ProviderSendError
from botplatform.channels.registry import adapter_for
from botplatform.conversation.service import opt_out_blocked
from botplatform.events import payloads
from botplatform.events.service import emit_many
from botplatform.kit import core
from botplatform.kit.clock import utcnow
from botplatform.kit.logging import get_logger
from botplatform.kit.scoping import enter_workspace
from botplatform.message.schemas import MessageBody
from botplatform.message.service import to_outbound
from botplatform.models import Broadcast, BroadcastRecipient, Message
from botplatform.models.base import table_of
from botplatform.usage import service as usage

log = get_logger("botplatform.broadcast")

CHUNK = 8  # messages marked per commit: at most this many end `delivery_unknown` on a crash
CONCURRENT_REQUESTS = 4
SLOT_WAIT_SECONDS = 5.0
MAX_ATTEMPTS = 8  # refusals worth retrying, per recipient, before it fails
THROTTLE_CODES = frozenset({"130429", "131056", "80007", "429"})


_SET_MESSAGE = (
    update(table_of(BroadcastRecipient))
    .where(table_of(BroadcastRecipient).c.id == bindparam("rid"))
    .values(message_id=bindparam("mid"))
)


async def _mark(
    driver: Driver, chunk: list[Ready], claim_lease: datetime
) -> list[tuple[Ready, Message]] | None:
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
        messages = [_message_row(driver, channel, item, now) for item in mine]
        db.add_all(messages)
        await db.flush()
        await core.run(
            db,
            _SET_MESSAGE,
            [{"rid": i.recipient_id, "mid": m.id} for i, m in zip(mine, messages, strict=True)],
        )
    return list(zip(mine, messages, strict=True))


def _message_row(driver: Driver, channel: ChannelInfo, item: Ready, now: datetime) -> Message:
    request = item.body.model_dump(
        mode="json", exclude_none=True, include=set(MessageBody.model_fields)
    )
    return Message(
        id=uuid.uuid4(),
        workspace_id=driver.ws,
        conversation_id=item.conversation_id,
        channel_id=channel.id,
        direction="outbound",
        type=item.body.type,
        text=item.body.text,
        content={"request": request, "broadcast_id": str(driver.broadcast_id)},
        status="sending",
        lease_until=driver.lease_until,
        send_attempted_at=now,  # the marker, committed with the row
        attempts=1,
        idempotency_key=f"broadcast:{driver.broadcast_id}:{item.contact_id}",
        is_note=False,
        edited=False,
        deleted=False,
    )


@dataclass(frozen=True)
class Outcome:
    item: Ready
    message: Message
    status: str  # sent | failed | retry | unknown
    provider_message_id: str | None = None
    code: str | None = None
    title: str | None = None
    retry_after: float | None = None  # seconds the provider asked us to wait (Telegram's 429)


async def send_chunk(driver: Driver, chunk: list[Ready], claim_lease: datetime) -> bool:
    """Marks, sends and records one chunk; False when the driver must stop."""
    assert driver.channel is not None
    await _pace(driver, len(chunk))
    marked = await _mark(driver, chunk, claim_lease)
    if marked is None:
        return False
    if not marked:
        return True
    channel = driver.channel
    adapter = adapter_for(channel, driver.runtime.settings, driver.runtime.http)
    gate = asyncio.Semaphore(CONCURRENT_REQUESTS)

    async def one(item: Ready, message: Message) -> Outcome:
        async with gate:
            # The slot right before the request: the provider sees the channel's rate at most.
            # Each call waits up to SLOT_WAIT_SECONDS; the marker is committed, so this send
            # goes out, only later, however long the window stays full.
            while not await policy.take_send_slot(
                driver.runtime.ratelimiter, channel, SLOT_WAIT_SECONDS
            ):
                continue
            while not await policy.take_recipient_slot(
                driver.runtime.ratelimiter, channel, item.address, SLOT_WAIT_SECONDS
            ):
                continue
            key = message.idempotency_key or str(message.id)
            outbound = to_outbound(item.body, item.address, key, None, str(message.id))
            try:
                result = await adapter.send(outbound)
            except ProviderSendError as exc:
                if exc.ambiguous:
                    return Outcome(item, message, "unknown")
                kind = "retry" if exc.retryable else "failed"
                return Outcome(
                    item, message, kind, None, exc.code, exc.title[:500], exc.retry_after
                )
            return Outcome(item, message, "sent", result.provider_message_id)

    outcomes = await asyncio.gather(*(one(item, message) for item, message in marked))
    _adapt(driver, outcomes)
    await _write_outcomes(driver, outcomes)
    return True


async def _pace(driver: Driver, count: int) -> None:
    """The broadcast's own pace, below the channel's rate after throttling: waits out the
    back-off, and spaces chunks at `pace` sends per second."""
    if driver.backoff:
        await asyncio.sleep(driver.backoff)
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


_MESSAGES = table_of(Message)
_RECIPIENTS = table_of(BroadcastRecipient)


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
_RCP = _RECIPIENTS.c
_RCP_SENT = (
    update(_RECIPIENTS)
    .where(_RCP.workspace_id == bindparam("ws"), _RCP.id == bindparam("rid"))
    .values(
        # A status webhook may have moved it on already: never back.
        status=case((_RCP.status == "sending", "sent"), else_=_RCP.status),
        sent_at=bindparam("now"),
        lease_until=None,
        updated_at=bindparam("now"),
    )
)
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


async def _write_outcomes(driver: Driver, outcomes: list[Outcome]) -> None:
    now = utcnow()
    later = now + timedelta(seconds=max(driver.backoff, 1.0))
    rows: dict[str, list[dict[str, Any]]] = {"sent": [], "failed": [], "retry": []}
    for o in outcomes:
        if o.status in rows:
            rows[o.status].append(
                {
                    "ws": driver.ws,
                    "mid": o.message.id,
                    "rid": o.item.recipient_id,
                    "pid": o.provider_message_id,
                    "code": (o.code or "")[:50] or None,
                    "title": o.title,
                    "now": now,
                    "not_before": later,
                }
            )
    throttled = sum(1 for o in outcomes if o.status == "retry" and o.code in THROTTLE_CODES)
    async with driver.runtime.db.unit_of_work() as db:
        await enter_workspace(db, driver.ws)
        for statements, kind in (
            ((_MSG_SENT, _RCP_SENT), "sent"),
            ((_MSG_FAILED, _RCP_FAILED), "failed"),
            ((_MSG_DROP, _RCP_RETRY), "retry"),
        ):
            if rows[kind]:
                for statement in statements:
                    await core.run(db, statement, rows[kind])
        if throttled:
            await db.execute(
                update(Broadcast)
                .where(Broadcast.workspace_id == driver.ws, Broadcast.id == driver.broadcast_id)
                .values(throttled=Broadcast.throttled + throttled)
            )
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
        message = o.message
        message.status = o.status
        message.provider_message_id = o.provider_message_id
        message.sent_at = now if o.status == "sent" else None
        message.error_code, message.error_title = o.code, o.title
        message.send_attempted_at = message.lease_until = None
        message.created_at = message.created_at or now
        message.updated_at = now
        name = "message.sent" if o.status == "sent" else "message.failed"
        events.append((name, payloads.message_event(message, o.item.contact_id)))
    return events
