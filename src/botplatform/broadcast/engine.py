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
   the recipient follows its message (`conversation.statuses`).

A worker killed anywhere loses nothing and repeats nothing: before (2) the claim's lease
runs out and the rows are claimed again; after (2) the message's marker stops any resend.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.broadcast import audience, events, mail, repository
from botplatform.broadcast.claim import Ready, claim
from botplatform.broadcast.driver import Driver, take_driver
from botplatform.broadcast.sending import CHUNK, send_chunk, settle_writes
from botplatform.channel import cache as channel_cache
from botplatform.channels.base import ChannelInfo
from botplatform.kit.clock import utcnow
from botplatform.kit.scoping import enter_workspace
from botplatform.models import Broadcast, BroadcastRecipient

if TYPE_CHECKING:
    from botplatform.runtime import Runtime

MATERIALISE_BATCH = 1_000  # recipients inserted per transaction
CLAIM_BATCH = 250  # recipients claimed per transaction: the next while these are sent
#: A chunk lasts about this long (marked, sent); the first one is small, the next ones sized
#: by the pace the last one went (`next_chunk`).
CHUNK_SECONDS = 0.25
FIRST_CHUNK = 16
MIN_CHUNK = 4
SLICE_SECONDS = 20.0  # a driver hands over to a new job after this long
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
#: A driver that stops to wait (a back-off, the tier, quiet hours) queues its successor
#: when the wait is at most this long; a longer one is left to the scheduler's tick.
SELF_WAKE_SECONDS = 300


def tier_limit(channel: ChannelInfo) -> int | None:
    value = channel.config.get("messaging_limit_tier")
    if isinstance(value, int):  # set directly (tests, operators): a plain number
        return value
    return TIERS.get(str(value or "TIER_UNLIMITED"))


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
        email = row.message.get("type") == "email"
        if not email and row.channel_id is not None:
            driver.channel = await channel_cache.get(db, driver.ws, row.channel_id)
        await repository.release_abandoned(db, driver.ws, driver.broadcast_id, utcnow())
    if email:  # over SMTP, no channel (broadcast/mail.py)
        driver.pace = float(driver.runtime.settings.broadcast_email_rate)
    elif driver.channel is None:
        return False, {"status": "failed", "error": "The channel no longer exists."}
    else:
        driver.pace = float(driver.channel.send_rate_per_second)
    deadline = time.monotonic() + SLICE_SECONDS
    if not driver.broadcast["materialised"] and not await _materialise(driver, deadline):
        return time.monotonic() >= deadline, {}
    ahead: asyncio.Future[tuple[list[Ready] | None, datetime]] | None = None
    claimed: Sequence[Ready | mail.MailReady] | None
    try:
        while time.monotonic() < deadline:
            if ahead is not None:  # claimed while the last batch was sent
                claimed, claim_lease = await ahead
                ahead = None
            else:
                async with driver.runtime.db.unit_of_work() as db:
                    await enter_workspace(db, driver.ws)
                    status = await driver.renew(db)
                    if status != "running":
                        return False, {}
                    allowance = None if email else await _tier_allowance(db, driver)
                    if allowance is not None and allowance <= 0:
                        return False, await _wait_for_tier(db, driver)
                    limit = _claim_limit(driver, allowance)
                    claim_lease = driver.lease_until
                    claimed = await (
                        mail.claim(db, driver, limit)
                        if email
                        else claim(db, driver, limit, claim_lease)
                    )
            if claimed is None:
                return False, await _finish_or_wait(driver)
            if driver.channel is not None and tier_limit(driver.channel) is None:
                # The next batch is claimed (and decided) while this one is sent. Not under
                # a tier: its allowance counts the sends written back.
                ahead = asyncio.ensure_future(_claim_ahead(driver, _claim_limit(driver, None)))
            if not await _send(driver, claimed, claim_lease):
                return False, {}
        return True, {"waiting_reason": None}
    finally:
        if ahead is not None:  # stopped, or the slice ended: that batch is given back
            unsent, lease = await ahead
            if unsent:
                await _give_back(driver, [item.recipient_id for item in unsent], lease)


def _claim_limit(driver: Driver, allowance: int | None) -> int:
    """A batch lasts about two seconds of sending: its lease stays short."""
    limit = min(CLAIM_BATCH, max(CHUNK, int(driver.pace) * 2))
    return min(limit, allowance) if allowance is not None else limit


async def _claim_ahead(driver: Driver, limit: int) -> tuple[list[Ready] | None, datetime]:
    """The next batch, claimed under the driver's lease as it is now (no renewal here: the
    mark renews; two renewals at once would each take the other for a new driver)."""
    async with driver.runtime.db.unit_of_work() as db:
        await enter_workspace(db, driver.ws)
        lease = driver.lease_until
        return await claim(db, driver, limit, lease), lease


async def _send(
    driver: Driver, claimed: Sequence[Ready | mail.MailReady], claim_lease: datetime
) -> bool:
    """The claimed batch, chunk by chunk; False (the rest given back) when the driver must
    stop."""
    try:
        start = 0
        while start < len(claimed):
            if driver.channel is None:
                chunk = claimed[start : start + mail.CHUNK]
                sent = await mail.send_chunk(
                    driver, [i for i in chunk if isinstance(i, mail.MailReady)], claim_lease
                )
            else:
                size = driver.chunk or min(FIRST_CHUNK, chunk_size(driver.channel))
                chunk = claimed[start : start + size]
                began = time.monotonic()
                items = [i for i in chunk if isinstance(i, Ready)]
                sent = await send_chunk(driver, items, claim_lease)
                driver.chunk = next_chunk(driver.channel, len(chunk), time.monotonic() - began)
            if not sent:
                rest = [item.recipient_id for item in claimed[start:]]
                await _give_back(driver, rest, claim_lease)
                return False
            start += len(chunk)
    finally:  # the batch's last outcomes written before anything counts or claims again
        await settle_writes(driver)
    return True


def next_chunk(channel: ChannelInfo, size: int, took: float) -> int:
    """The next chunk's size: what lasts about CHUNK_SECONDS at the pace the last one went
    (at most twice the last, at most `chunk_size`). A chunk's send markers wait for its
    outcomes while it is sent: on a slow or loaded machine the chunks shrink, so a marker
    is never old enough to be taken for an abandoned send."""
    largest = chunk_size(channel)  # a slow channel's chunks stay small: a pause acts soon
    fits = int(size * CHUNK_SECONDS / max(took, 1e-3))
    return max(min(MIN_CHUNK, largest), min(fits, 2 * size, largest))


async def _give_back(driver: Driver, rest: list[uuid.UUID], claim_lease: datetime) -> None:
    """Paused, cancelled or taken over: the claimed rows not yet sent are queued again."""
    async with driver.runtime.db.unit_of_work() as db:
        await enter_workspace(db, driver.ws)
        await db.execute(
            update(BroadcastRecipient)
            .where(
                BroadcastRecipient.workspace_id == driver.ws,
                BroadcastRecipient.id.in_(rest),
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
    while time.monotonic() < deadline:
        async with driver.runtime.db.unit_of_work() as db:
            await enter_workspace(db, driver.ws)
            if await driver.renew(db) != "running":
                return False
            row = await repository.lock(db, driver.ws, driver.broadcast_id)
            ids, cursor = await audience.next_batch(
                db, driver.ws, driver.channel, row.audience, row.cursor, MATERIALISE_BATCH
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
    if not contact_ids:
        return
    if driver.channel is None:  # an email broadcast: the `email` attribute is the address
        found = await mail.contacts_with_email(db, driver.ws, contact_ids)
    else:
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
