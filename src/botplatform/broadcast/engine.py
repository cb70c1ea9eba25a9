"""The broadcast driver: materialises the audience, then sends, exactly once per recipient.

One driver per broadcast at a time holds `broadcasts.driver_until` (a lease renewed as it
goes, its value the fencing token). It runs for a slice, then hands over to a fresh job on
the `broadcasts` queue. The protocol of channels/delivery.py, per recipient:

1. **Claim** (one transaction per batch): queued recipient rows become `sending` with a
   lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL). The policy gate, quiet hours and the
   variables decide here whether each is skipped, held or sendable.
2. **Mark** (one short transaction per chunk of a few): the message row is inserted with
   its send marker (`send_attempted_at`) and a unique idempotency key
   `broadcast:<broadcast>:<contact>`, and the recipient gets its `message_id`, only while the
   claim's lease still holds it. Committed before the first request of the chunk leaves.
   A recipient with a message is never claimed again.
3. **Send**: each request takes a slot of the channel's shared send window right before it
   leaves (so the provider never sees more than the channel's rate in any second).
4. **Outcome**: sent / failed as the per-message path writes them (`delivery.sent_values`,
   `failed_values`). A definite refusal worth retrying (throttling) deletes the message
   row — the provider refused it, nothing left — and queues the recipient again after a
   back-off, and the driver slows down. No answer: nothing is written; the message keeps
   its marker, its status webhook or the sweeper's `delivery_unknown` settles it, and
   the recipient follows its message (`status.mirror`).

A worker killed anywhere loses nothing and repeats nothing: before (2) the claim's lease
runs out and the rows are claimed again; after (2) the message's marker stops any resend.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, case, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.broadcast import audience, events, repository
from botplatform.broadcast.personalise import MissingVariable, quiet_until, recipient_zone, render
from botplatform.channel import cache as channel_cache
from botplatform.channels import delivery, policy
from botplatform.channels.base import ChannelInfo, ProviderSendError
from botplatform.channels.registry import adapter_for
from botplatform.events import payloads
from botplatform.events.service import emit_many
from botplatform.kit import core
from botplatform.kit.clock import utcnow
from botplatform.kit.logging import get_logger
from botplatform.kit.scoping import enter_workspace
from botplatform.message.schemas import MessageBody
from botplatform.message.service import to_outbound
from botplatform.models import Broadcast, BroadcastRecipient, Contact, Conversation, Message
from botplatform.models.base import table_of
from botplatform.usage import service as usage

if TYPE_CHECKING:
    from botplatform.runtime import Runtime

log = get_logger("botplatform.broadcast")

MATERIALISE_BATCH = 1_000  # recipients inserted per transaction
CLAIM_BATCH = 100  # recipients claimed per transaction
CHUNK = 8  # messages marked per commit: at most this many end `delivery_unknown` on a crash
CONCURRENT_REQUESTS = 4
SLICE_SECONDS = 20.0  # a driver hands over to a new job after this long
SLOT_WAIT_SECONDS = 5.0
MAX_ATTEMPTS = 8  # refusals worth retrying, per recipient, before it fails
THROTTLE_CODES = frozenset({"130429", "131056", "80007"})
#: Meta's messaging-limit tiers: unique users a number may start conversations with in a
#: rolling 24 hours (`messaging_limit_tier` in the channel's settings; unset: unlimited).
TIERS: dict[str, int | None] = {
    "TIER_250": 250,
    "TIER_2K": 2_000,
    "TIER_10K": 10_000,
    "TIER_100K": 100_000,
    "TIER_UNLIMITED": None,
}
TIER_RECHECK_SECONDS = 60


def tier_limit(channel: ChannelInfo) -> int | None:
    value = channel.config.get("messaging_limit_tier")
    if isinstance(value, int):  # set directly (tests, operators): a plain number
        return value
    return TIERS.get(str(value or "TIER_UNLIMITED"))


# -- the driver's lease -------------------------------------------------------------------


async def take_driver(runtime: Runtime, ws: uuid.UUID, broadcast_id: uuid.UUID) -> datetime | None:
    """Becomes the broadcast's one driver: its lease value, or None (not running, or held)."""
    now = utcnow()
    lease_until = now + timedelta(seconds=runtime.settings.send_lease_seconds)
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        result = await db.execute(
            update(Broadcast)
            .where(
                Broadcast.workspace_id == ws,
                Broadcast.id == broadcast_id,
                Broadcast.status == "running",
                (Broadcast.driver_until.is_(None)) | (Broadcast.driver_until < now),
            )
            .values(driver_until=lease_until)
            .returning(Broadcast.id)
            .execution_options(synchronize_session=False)
        )
        return lease_until if result.scalar_one_or_none() else None


@dataclass
class Driver:
    runtime: Runtime
    ws: uuid.UUID
    broadcast_id: uuid.UUID
    lease_until: datetime
    channel: ChannelInfo | None = None
    broadcast: dict[str, Any] = field(default_factory=dict)
    pace: float = 0.0  # sends per second this broadcast allows itself (≤ the channel's)
    backoff: float = 0.0  # seconds to wait before the next chunk after throttling
    last_chunk: float = 0.0

    async def renew(self, db: AsyncSession) -> str | None:
        """Extends the lease while it is still ours; the broadcast's status, or None when
        another driver took over (then this one stops)."""
        new = utcnow() + timedelta(seconds=self.runtime.settings.send_lease_seconds)
        result = await db.execute(
            update(Broadcast)
            .where(
                Broadcast.workspace_id == self.ws,
                Broadcast.id == self.broadcast_id,
                Broadcast.driver_until == self.lease_until,
            )
            .values(driver_until=new)
            .returning(Broadcast.status)
            .execution_options(synchronize_session=False)
        )
        status = result.scalar_one_or_none()
        if status is not None:
            self.lease_until = new
        return status

    async def release(self, **values: Any) -> None:
        async with self.runtime.db.unit_of_work() as db:
            await enter_workspace(db, self.ws)
            await db.execute(
                update(Broadcast)
                .where(
                    Broadcast.workspace_id == self.ws,
                    Broadcast.id == self.broadcast_id,
                    Broadcast.driver_until == self.lease_until,
                )
                .values(driver_until=None, **values)
                .execution_options(synchronize_session=False)
            )


#: A driver that stops to wait (a back-off, the tier, quiet hours) queues its successor
#: when the wait is at most this long; a longer one is left to the scheduler's tick.
SELF_WAKE_SECONDS = 300


async def drive(runtime: Runtime, ws: uuid.UUID, broadcast_id: uuid.UUID) -> float | None:
    """Runs the broadcast for one slice. Returns after how many seconds a new job should
    go on (0: at once), or None (finished, paused, or another driver holds it)."""
    lease_until = await take_driver(runtime, ws, broadcast_id)
    if lease_until is None:
        return None
    driver = Driver(runtime, ws, broadcast_id, lease_until)
    release: dict[str, Any] = {}
    go_on = False
    try:
        go_on, release = await _run(driver)
    finally:
        await driver.release(**release)
    if go_on:
        return 0.0
    wake: datetime | None = release.get("next_run_at")
    if wake is None:
        return None
    wait = max((wake - utcnow()).total_seconds(), 0.0)
    return wait if wait <= SELF_WAKE_SECONDS else None


def chunk_size(channel: ChannelInfo) -> int:
    """Messages marked per commit: a quarter second of the channel's rate, at most CHUNK,
    so a pause takes effect within a quarter second or a few messages."""
    return max(1, min(CHUNK, channel.send_rate_per_second // 4))


async def _run(driver: Driver) -> tuple[bool, dict[str, Any]]:
    async with driver.runtime.db.unit_of_work() as db:
        await enter_workspace(db, driver.ws)
        row = await repository.get(db, driver.ws, driver.broadcast_id)
        driver.broadcast = {
            "message": row.message,
            "timezone": row.timezone,
            "quiet": (row.quiet_start, row.quiet_end) if row.quiet_start else None,
            "channel_id": row.channel_id,
            "materialised": row.materialised,
        }
        driver.channel = await channel_cache.get(db, driver.ws, row.channel_id)
        await repository.release_abandoned(db, driver.ws, driver.broadcast_id, utcnow())
    if driver.channel is None:
        return False, {"status": "failed", "error": "The channel no longer exists."}
    driver.pace = float(driver.channel.send_rate_per_second)
    deadline = time.monotonic() + SLICE_SECONDS
    if not driver.broadcast["materialised"] and not await _materialise(driver, deadline):
        return time.monotonic() >= deadline, {}
    while time.monotonic() < deadline:
        async with driver.runtime.db.unit_of_work() as db:
            await enter_workspace(db, driver.ws)
            status = await driver.renew(db)
            if status != "running":
                return False, {}
            allowance = await _tier_allowance(db, driver)
            if allowance is not None and allowance <= 0:
                return False, await _wait_for_tier(db, driver)
            # A batch lasts about two seconds of sending: its lease stays short.
            limit = min(CLAIM_BATCH, max(CHUNK, int(driver.pace) * 2))
            limit = min(limit, allowance) if allowance is not None else limit
            claim_lease = driver.lease_until
            claimed = await _claim(db, driver, limit)
        if claimed is None:
            return False, await _finish_or_wait(driver)
        size = chunk_size(driver.channel)
        for start in range(0, len(claimed), size):
            if not await _send_chunk(driver, claimed[start : start + size], claim_lease):
                await _give_back(driver, claimed[start:], claim_lease)
                return False, {}
    return True, {"waiting_reason": None}


async def _give_back(driver: Driver, rest: list[Ready], claim_lease: datetime) -> None:
    """Paused, cancelled or taken over: the claimed rows not yet sent are queued again."""
    async with driver.runtime.db.unit_of_work() as db:
        await enter_workspace(db, driver.ws)
        await db.execute(
            update(BroadcastRecipient)
            .where(
                BroadcastRecipient.workspace_id == driver.ws,
                BroadcastRecipient.id.in_([item.recipient_id for item in rest]),
                BroadcastRecipient.status == "sending",
                BroadcastRecipient.lease_until == claim_lease,
                BroadcastRecipient.message_id.is_(None),
            )
            .values(status="queued", lease_until=None)
            .execution_options(synchronize_session=False)
        )


# -- materialisation ----------------------------------------------------------------------


async def _materialise(driver: Driver, deadline: float) -> bool:
    """Inserts the audience's recipients, a batch per transaction, the cursor with them.
    True when done; False when the slice ran out (the next driver resumes at the cursor)."""
    assert driver.channel is not None
    while time.monotonic() < deadline:
        async with driver.runtime.db.unit_of_work() as db:
            await enter_workspace(db, driver.ws)
            if await driver.renew(db) != "running":
                return False
            row = await repository.lock(db, driver.ws, driver.broadcast_id)
            ids, cursor = await audience.next_batch(
                db, driver.channel, row.audience, row.cursor, MATERIALISE_BATCH
            )
            await _insert_batch(db, driver, row, ids)
            row.cursor = cursor
            if cursor is None:
                row.materialised = True
                return True
    return False


async def _insert_batch(
    db: AsyncSession, driver: Driver, row: Broadcast, contact_ids: list[uuid.UUID]
) -> None:
    assert driver.channel is not None
    if not contact_ids:
        return
    found = await repository.contacts_with_address(
        db, driver.ws, driver.channel.provider, contact_ids
    )
    now, rows = utcnow(), []
    for contact_id in dict.fromkeys(contact_ids):
        if contact_id not in found:
            continue  # not a contact of this workspace: nobody to send to
        opted_out, address = found[contact_id]
        reason = "opted_out" if opted_out else None if address else "no_address"
        rows.append(
            {
                "id": uuid.uuid4(),
                "workspace_id": driver.ws,
                "broadcast_id": driver.broadcast_id,
                "channel_id": row.channel_id,
                "contact_id": contact_id,
                "address": address,
                "status": "skipped" if reason else "queued",
                "error_code": reason,
                "error_title": None,
                "message_id": None,
                "attempts": 0,
                "lease_until": None,
                "not_before": None,
                "sent_at": None,
                "created_at": now,
                "updated_at": now,
            }
        )
    await repository.insert_recipients(db, rows)
    row.total = (row.total or 0) + len(rows)


# -- the tier -----------------------------------------------------------------------------


async def _tier_allowance(db: AsyncSession, driver: Driver) -> int | None:
    assert driver.channel is not None
    limit = tier_limit(driver.channel)
    if limit is None:
        return None
    reached = await repository.reached_in_window(db, driver.ws, driver.channel.id, utcnow())
    return max(limit - reached, 0)


async def _wait_for_tier(db: AsyncSession, driver: Driver) -> dict[str, Any]:
    """Everyone the tier allows today was reached: the rest wait (queued), and the driver
    comes back when the oldest send leaves the 24-hour window (checked every minute)."""
    assert driver.channel is not None
    now = utcnow()
    oldest = await repository.oldest_in_window(db, driver.ws, driver.channel.id, now)
    recheck = now + timedelta(seconds=TIER_RECHECK_SECONDS)
    frees = oldest + timedelta(hours=24) if oldest else recheck
    return {"waiting_reason": "messaging_limit_tier", "next_run_at": min(frees, recheck)}


# -- claim --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    recipient_id: uuid.UUID
    contact_id: uuid.UUID
    conversation_id: uuid.UUID
    address: str
    body: MessageBody


async def _claim(db: AsyncSession, driver: Driver, limit: int) -> list[Ready] | None:
    """Leases a batch and decides each recipient: ready to send, held by quiet hours,
    skipped (opted out, a missing variable) or failed by the policy. None: nothing due."""
    assert driver.channel is not None
    now = utcnow()
    claimed = await repository.claim(
        db, driver.ws, driver.broadcast_id, now, driver.lease_until, limit
    )
    if not claimed:
        return None
    contacts = await _contacts(db, driver.ws, [contact_id for _, contact_id, _ in claimed])
    conversations = await _conversations(db, driver, list(contacts))
    ready: list[Ready] = []
    outcomes: list[dict[str, Any]] = []
    for recipient_id, contact_id, address in claimed:
        contact = contacts.get(contact_id)
        decision = _decide(driver, now, contact, conversations.get(contact_id), address)
        if isinstance(decision, MessageBody):
            assert contact is not None
            assert address is not None
            conversation = conversations[contact_id]
            ready.append(Ready(recipient_id, contact_id, conversation.id, address, decision))
        else:
            outcomes.append({"rid": recipient_id, **decision})
    await _write_decisions(db, driver, outcomes)
    return ready


def _decide(
    driver: Driver,
    now: datetime,
    contact: Contact | None,
    conversation: Conversation | None,
    address: str | None,
) -> MessageBody | dict[str, Any]:
    assert driver.channel is not None
    if contact is None or conversation is None or not address:
        return _ended("skipped", "no_address", "The contact has no address on this channel.")
    message = driver.broadcast["message"]
    try:
        policy.check(driver.channel, contact, conversation, message["type"])
    except policy.PolicyRefused as exc:
        status = "skipped" if exc.code == "opted_out" else "failed"
        return _ended(status, exc.code, exc.message)
    quiet = driver.broadcast["quiet"]
    if quiet:
        zone = recipient_zone(contact.attributes or {}, address, driver.broadcast["timezone"])
        until = quiet_until(now, zone, quiet[0], quiet[1])
        if until is not None:
            return {"status": "queued", "lease_until": None, "not_before": until,
                    "error_code": None, "error_title": None}  # fmt: skip
    try:
        return render(message, contact.name, contact.attributes or {})
    except MissingVariable as exc:
        return _ended("skipped", "missing_variable", f"No value for the variable {exc}.")


def _ended(status: str, code: str, title: str) -> dict[str, Any]:
    return {
        "status": status,
        "lease_until": None,
        "not_before": None,
        "error_code": code[:50],
        "error_title": title[:500],
    }


_DECISION = (
    update(table_of(BroadcastRecipient))
    .where(
        table_of(BroadcastRecipient).c.id == bindparam("rid"),
        table_of(BroadcastRecipient).c.workspace_id == bindparam("ws"),
    )
    .values(
        status=bindparam("status"),
        lease_until=bindparam("lease_until"),
        not_before=bindparam("not_before"),
        error_code=bindparam("error_code"),
        error_title=bindparam("error_title"),
        updated_at=bindparam("now"),
    )
)


async def _write_decisions(
    db: AsyncSession, driver: Driver, outcomes: list[dict[str, Any]]
) -> None:
    if outcomes:
        now = utcnow()
        await core.run(db, _DECISION, [{**o, "ws": driver.ws, "now": now} for o in outcomes])


async def _contacts(
    db: AsyncSession, ws: uuid.UUID, contact_ids: list[uuid.UUID]
) -> dict[uuid.UUID, Contact]:
    statement = select(Contact).where(Contact.workspace_id == ws, Contact.id.in_(contact_ids))
    return {contact.id: contact for contact in (await db.execute(statement)).scalars()}


async def _conversations(
    db: AsyncSession, driver: Driver, contact_ids: list[uuid.UUID]
) -> dict[uuid.UUID, Conversation]:
    """Each contact's conversation on the channel, created (with its event) if missing."""
    assert driver.channel is not None
    channel_id = driver.channel.id
    statement = select(Conversation).where(
        Conversation.workspace_id == driver.ws,
        Conversation.channel_id == channel_id,
        Conversation.contact_id.in_(contact_ids),
    )
    found = {c.contact_id: c for c in (await db.execute(statement)).scalars()}
    missing = [contact_id for contact_id in contact_ids if contact_id not in found]
    if missing:
        created = [
            Conversation(
                id=uuid.uuid4(),
                workspace_id=driver.ws,
                channel_id=channel_id,
                contact_id=contact_id,
                status="open",
                unread_count=0,
            )
            for contact_id in missing
        ]
        db.add_all(created)
        await db.flush()
        await emit_many(
            db,
            driver.ws,
            [("conversation.created", payloads.conversation_event(c)) for c in created],
        )
        found.update({c.contact_id: c for c in created})
    return found


# -- mark, send, outcome --------------------------------------------------------------------


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
        held = await db.execute(
            update(BroadcastRecipient)
            .where(
                BroadcastRecipient.workspace_id == driver.ws,
                BroadcastRecipient.id.in_([item.recipient_id for item in chunk]),
                BroadcastRecipient.status == "sending",
                BroadcastRecipient.lease_until == claim_lease,
                BroadcastRecipient.message_id.is_(None),
            )
            .values(attempts=BroadcastRecipient.attempts + 1)
            .returning(BroadcastRecipient.id, BroadcastRecipient.attempts)
            .execution_options(synchronize_session=False)
        )
        attempts = dict(held.all())
        mine = [item for item in chunk if item.recipient_id in attempts]
        first = sum(1 for item in mine if attempts[item.recipient_id] == 1)
        refused = await usage.count_batch(db, driver.ws, inbound=0, outbound=first)
        if refused is not None:  # the month's messages are used up: the broadcast stops
            values = _ended("failed", refused.code, refused.message)
            await _write_decisions(db, driver, [{"rid": i.recipient_id, **values} for i in mine])
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


async def _send_chunk(driver: Driver, chunk: list[Ready], claim_lease: datetime) -> bool:
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
            while not await policy.take_send_slot(
                driver.runtime.ratelimiter, channel, SLOT_WAIT_SECONDS
            ):
                pass  # the marker is committed: this send goes, only later
            key = message.idempotency_key or str(message.id)
            outbound = to_outbound(item.body, item.address, key, None, str(message.id))
            try:
                result = await adapter.send(outbound)
            except ProviderSendError as exc:
                if exc.ambiguous:
                    return Outcome(item, message, "unknown")
                kind = "retry" if exc.retryable else "failed"
                return Outcome(item, message, kind, None, exc.code, exc.title[:500])
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


# -- the end --------------------------------------------------------------------------------


async def _finish_or_wait(driver: Driver) -> dict[str, Any]:
    """Nothing due now: done when nobody is left to send; else (quiet hours, a back-off)
    the driver comes back when the earliest held recipient is due."""
    async with driver.runtime.db.unit_of_work() as db:
        await enter_workspace(db, driver.ws)
        left, earliest = await repository.pending(db, driver.ws, driver.broadcast_id)
        if left:
            soon = utcnow() + timedelta(seconds=5)
            due = min(earliest, soon) if earliest else soon
            reason = "quiet_hours" if earliest and earliest > soon else None
            return {"next_run_at": due, "waiting_reason": reason}
        row = await repository.lock(db, driver.ws, driver.broadcast_id)
        if row.status == "running" and row.driver_until == driver.lease_until:
            row.status, row.completed_at = "completed", utcnow()
            row.waiting_reason = None
            await events.emit_broadcast(db, row, "broadcast.completed")
        return {}
