"""Never a duplicate, never a silent loss: the protocol every sender of outbound messages
follows (the per-message `send_message` job and any batched sender).

1. **Claim**: a row `claimable()` becomes `sending` with a lease (`lease_until`) and
   `attempts + 1`, in one conditional UPDATE.
2. **Mark**: `mark_attempted` (or `commit_attempt`, which owns its transaction) writes
   `send_attempted_at` for every row about to leave in one UPDATE, fenced by the claim's
   lease value, and it is COMMITTED before the provider request leaves. Only the rows it
   returns may be sent: a row another worker re-claimed in the meantime is not among them.
3. **Outcome**: the provider's answer is written with `sent_values`, `failed_values` or
   `retry_values` (one statement per row or per batch); each clears the marker.
   No answer (a timeout, a dropped connection, a killed worker): nothing is written, the row
   keeps its marker, and it is never claimed again. The provider's status webhook (our id in
   `biz_opaque_callback_data`) moves it on; if none comes within
   SEND_UNKNOWN_GRACE_SECONDS, the sweeper's `expire_unknown` ends it `failed` with
   `delivery_unknown`, which a human may resend. A later status still moves it on.

A leased row without the marker provably never left (the marker is committed before the
request), so it is claimed and sent again when its lease ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter
from sqlalchemy import ColumnElement, and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.db import after_commit
from botplatform.events.service import emit_message
from botplatform.kit.clock import utcnow
from botplatform.kit.scoping import enter_workspace
from botplatform.models import Message

if TYPE_CHECKING:
    from botplatform.channels.base import ChannelInfo
    from botplatform.db import Database

DELIVERY_UNKNOWN = "delivery_unknown"
DELIVERY_UNKNOWN_TITLE = (
    "Delivery unknown: the send was interrupted after the request may have reached the "
    "provider, and no delivery status came back. It was not sent again automatically, so "
    "the customer got it once or not at all; resend it only if they did not."
)
EXPIRE_BATCH = 500  # rows ended per sweep; the rest wait for the next one

DELIVERY_UNKNOWN_TOTAL = Counter(
    "messages_delivery_unknown_total",
    "Outbound messages ended failed/delivery_unknown: the request may have left and no "
    "status came within SEND_UNKNOWN_GRACE_SECONDS",
)


def claimable(now: datetime) -> ColumnElement[bool]:
    """The rows a sender may claim: queued, or leased with an expired lease and no marker
    (their request provably never left). A row with the marker is never claimed again."""
    return or_(
        Message.status == "queued",
        and_(
            Message.status == "sending",
            Message.lease_until < now,
            Message.send_attempted_at.is_(None),
        ),
    )


def held_by(lease_until: datetime) -> ColumnElement[bool]:
    """Still leased by the claim that wrote `lease_until`, and not yet attempted: the only
    state in which that claimant may give the row back (`queued`) or refuse it before
    sending. A claim is the fencing token: a re-claim writes a new lease."""
    return and_(
        Message.status == "sending",
        Message.lease_until == lease_until,
        Message.send_attempted_at.is_(None),
    )


def awaits_outcome(message: Message) -> bool:
    """A row whose request may have left and whose outcome is not known yet."""
    return message.status == "sending" and message.send_attempted_at is not None


def is_delivery_unknown(message: Any) -> bool:
    """`message`: a `Message`, or any row with its `status` and `error_code`."""
    return bool(message.status == "failed" and message.error_code == DELIVERY_UNKNOWN)


async def mark_attempted(
    db: AsyncSession,
    workspace_id: uuid.UUID,
    row_ids: Sequence[uuid.UUID],
    lease_until: datetime,
) -> set[uuid.UUID]:
    """Writes the marker on the rows about to be sent, in one UPDATE; returns the ids it
    marked, the only ones the caller may send. `lease_until` is the value the caller's claim
    wrote: it fences out a row whose lease ran out and that another worker claimed since.
    The caller commits before any request leaves."""
    if not row_ids:
        return set()
    result = await db.execute(
        update(Message)
        .where(
            Message.workspace_id == workspace_id,
            Message.id.in_(list(row_ids)),
            held_by(lease_until),
        )
        .values(send_attempted_at=utcnow())
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    return set(result.scalars().all())


async def commit_attempt(
    database: Database,
    workspace_id: uuid.UUID,
    row_ids: Sequence[uuid.UUID],
    lease_until: datetime,
) -> set[uuid.UUID]:
    """`mark_attempted` in its own short transaction, committed when this returns."""
    async with database.unit_of_work() as db:
        await enter_workspace(db, workspace_id)
        return await mark_attempted(db, workspace_id, row_ids, lease_until)


def _moves_to_sent() -> ColumnElement[bool]:
    # A status webhook may already have moved the row further (it carries our id): never
    # back. A `delivery_unknown` row is moved on: the provider's answer proves it left.
    # Plain comparisons, no IN (…): an expanding IN cannot run in an executemany.
    return or_(
        Message.status == "queued",
        Message.status == "sending",
        and_(Message.status == "failed", Message.error_code == DELIVERY_UNKNOWN),
    )


Value = str | ColumnElement[Any]  # a value, or a `bindparam` for a statement run per row


def _cut(value: Value, length: int) -> Value:
    return value[:length] if isinstance(value, str) else value


def sent_values(
    provider_message_id: Value, now: datetime | ColumnElement[Any] | None = None
) -> dict[str, Any]:
    """The outcome of an accepted send, for `UPDATE … SET`: per row, or for a batch in one
    executemany with `bindparam`s as values."""
    moves = _moves_to_sent()
    return {
        "status": case((moves, "sent"), else_=Message.status),
        "provider_message_id": provider_message_id,
        "sent_at": func.coalesce(Message.sent_at, utcnow() if now is None else now),
        "lease_until": None,
        "send_attempted_at": None,
        "error_code": case((moves, None), else_=Message.error_code),
        "error_title": case((moves, None), else_=Message.error_title),
    }


def failed_values(code: Value, title: Value) -> dict[str, Any]:
    """A final refusal (the provider's or the policy's): `failed`, never retried."""
    return {
        "status": "failed",
        "error_code": _cut(code, 50),
        "error_title": _cut(title, 500),
        "lease_until": None,
        "send_attempted_at": None,
    }


def retry_values(code: Value, title: Value) -> dict[str, Any]:
    """A definite provider error worth another try (throttled, an outage answered as such):
    the request was refused, so the row is `queued` again without its marker."""
    return {**failed_values(code, title), "status": "queued"}


def _expired(now: datetime, grace: timedelta) -> ColumnElement[bool]:
    # The lease condition keeps a live sender's row out even if the grace is set shorter.
    return and_(
        Message.status == "sending",
        Message.send_attempted_at.is_not(None),
        Message.send_attempted_at <= now - grace,
        or_(Message.lease_until.is_(None), Message.lease_until < now),
    )


async def expire_unknown(db: AsyncSession, grace_seconds: int) -> int:
    """Ends the rows whose request may have left and for which no status came within the
    grace: `failed` / `delivery_unknown`, with `message.failed` and the metric. Runs in the
    sweeper (system scope: every workspace). Returns how many it ended."""
    now, grace = utcnow(), timedelta(seconds=grace_seconds)
    candidates = (
        select(Message.id)
        .where(_expired(now, grace))
        .order_by(Message.send_attempted_at)
        .limit(EXPIRE_BATCH)
        .with_for_update(skip_locked=True)
    )
    ids = list((await db.execute(candidates)).scalars().all())
    if not ids:
        return 0
    change = (
        update(Message)
        .where(Message.id.in_(ids), _expired(now, grace))  # a status may have come since
        .values(
            status="failed",
            error_code=DELIVERY_UNKNOWN,
            error_title=DELIVERY_UNKNOWN_TITLE,
            lease_until=None,
        )
        .returning(Message)
    )
    ended = (
        (
            await db.execute(
                select(Message).from_statement(change),
                execution_options={"populate_existing": True},
            )
        )
        .scalars()
        .all()
    )
    for message in ended:
        await emit_message(db, "message.failed", message)
    count = len(ended)
    after_commit(db, lambda: DELIVERY_UNKNOWN_TOTAL.inc(count))  # counted once it is true
    return count


# -- replies leased in the unit of work that decides them ------------------------------------
#
# An inbound batch (`channels.tasks`) opens `Leases` on its session. A reply queued while it
# applies its messages (`message.service.queue_outbound`: a bot's answer, an automation's, the
# per-item auto-reply) to a conversation whose customer wrote in this batch is then inserted
# already `sending`, leased to the batch, with its send marker: claimed and marked by the
# batch's own commit, and sent by the batch right after it (`channels.sender`), instead of by a
# send job that would claim, read the rows again, mark and finish in four transactions.


@dataclass(frozen=True)
class LeasedReply:
    # In the batch's session, or (its insert deferred, `Leases.deferred`) its row as an
    # object of no session; read when the batch is about to commit.
    message: Message
    channel: ChannelInfo
    contact_id: uuid.UUID
    recipient_id: str


@dataclass
class Leases:
    until: datetime  # the batch's lease on its replies
    recipients: dict[uuid.UUID, str] = field(default_factory=dict)  # conversation → recipient
    replies: list[LeasedReply] = field(default_factory=list)
    #: While the batch answers its customers (`defer_inserts`): the leased replies' rows by
    #: id, inserted with the batch's last writes in one statement, not one INSERT each.
    deferred: dict[uuid.UUID, dict[str, Any]] | None = None

    def recipient_for(self, conversation_id: uuid.UUID) -> str | None:
        return self.recipients.get(conversation_id)

    def leased(self, now: datetime) -> dict[str, Any]:
        """The columns of a reply to be inserted leased to the batch, marked as about to
        leave: the batch's commit is the claim and the marker at once."""
        return {
            "status": "sending",
            "lease_until": self.until,
            "send_attempted_at": now,
            "attempts": 1,
        }

    def take(self, reply: LeasedReply) -> None:
        """`reply`'s row, inserted with `leased`'s columns, is sent by the batch."""
        self.replies.append(reply)

    def defer_inserts(self) -> None:
        """From now on, a leased reply's row waits for the batch's last writes. Only for
        replies to messages the batch stores: their idempotency keys come from those new
        messages' ids (`bot:<id>:<n>`, `auto:<id>`), which no other transaction knows, so the
        insert cannot meet a taken key (and the batch checks that it did not)."""
        self.deferred = {}

    def unlease(self, reply: LeasedReply) -> None:
        """The reply goes the per-message way instead (a send job claims it)."""
        unleased: dict[str, Any] = {"status": "queued", "lease_until": None}
        unleased |= {"send_attempted_at": None, "attempts": 0}
        row = self.deferred.get(reply.message.id) if self.deferred is not None else None
        if row is not None:
            row.update(unleased)
        for name, value in unleased.items():
            setattr(reply.message, name, value)


_LEASES = "botplatform.leases"


def open_leases(db: AsyncSession, until: datetime) -> Leases:
    leases = Leases(until)
    db.info[_LEASES] = leases
    return leases


def leases_of(db: AsyncSession) -> Leases | None:
    leases: Leases | None = db.info.get(_LEASES)
    return leases


def learn_recipient(db: AsyncSession, conversation_id: uuid.UUID, recipient_id: str) -> None:
    """The customer who just wrote in `conversation_id`: a reply to it may be leased."""
    leases = leases_of(db)
    if leases is not None:
        leases.recipients[conversation_id] = recipient_id
