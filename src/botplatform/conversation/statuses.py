"""Delivery statuses: the provider says how far an outbound message got (sent, delivered,
read, failed), and the message moves forward.

    await statuses.apply_batch(db, workspace_id, [(channel, update), ...], heard)

The rule is `move`: statuses arrive out of order, and a message never goes back (read stays
read when a late `delivered` comes). A channel batch applies all of its statuses at once
(`apply_batch`): a broadcast brings three status webhooks per message sent, so this is the
hottest path of a broadcast.

Why it leaves the ORM: through it, each status loaded its message whole (the JSON content
too, refreshed because it is locked) and flushed its change: about 4 ms of a worker's CPU
per broadcast message for its three statuses, measured with py-spy on the bulk worker (the
loads ~13% and the flushes ~15% of its time). Here the batch reads only the columns a status
reads or reports, locks those rows in one statement, moves them in memory, and writes the
moved ones in one statement (with their broadcast recipients).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.broadcast import status as broadcast_status
from botplatform.channels import delivery
from botplatform.channels.base import ChannelInfo
from botplatform.channels.messages import STATUS_RANK, DeliveryStatus, StatusUpdate
from botplatform.events import payloads
from botplatform.events.service import emit_many
from botplatform.kit import core
from botplatform.models import Conversation, Message
from botplatform.models.base import table_of


def callback_id(update_: StatusUpdate) -> uuid.UUID | None:
    """Our own id for the message, as the status names it (biz_opaque_callback_data)."""
    try:
        return uuid.UUID(str(update_.raw.get("biz_opaque_callback_data", "")))
    except ValueError:
        return None


TIME_FIELDS = {
    DeliveryStatus.SENT: "sent_at",
    DeliveryStatus.DELIVERED: "delivered_at",
    DeliveryStatus.READ: "read_at",
}


def move(message: Target, update_: StatusUpdate) -> str | None:
    """Moves an outbound message as `update_` says: the type of the event to emit, or None
    where the status does not move it."""
    new = update_.status
    if new == DeliveryStatus.FAILED:
        if message.status in (DeliveryStatus.READ, DeliveryStatus.PLAYED):
            return None
        message.status, message.send_attempted_at = new.value, None
        if update_.errors:
            message.error_code = str(update_.errors[0].code)
            message.error_title = update_.errors[0].title[:500]
        return "message.failed"
    current = DeliveryStatus(message.status) if message.status in STATUS_RANK else None
    if current is not None and STATUS_RANK[current] >= STATUS_RANK[new]:
        return None
    if message.status == DeliveryStatus.FAILED and not delivery.is_delivery_unknown(message):
        return None
    if message.status == DeliveryStatus.FAILED:  # we gave up knowing; the provider says it left
        message.error_code = message.error_title = message.send_attempted_at = None
    message.status = new.value
    for status, field in TIME_FIELDS.items():
        if STATUS_RANK[new] >= STATUS_RANK[status] and getattr(message, field) is None:
            setattr(message, field, update_.timestamp)
    return "message.status_updated"


def learn_provider_id(message: Target, update_: StatusUpdate) -> None:
    """A status named the message by our own id (biz_opaque_callback_data): a send whose
    answer never reached us (the worker died, or the webhook beat the response). Its provider
    id is learnt here, so the send is not repeated."""
    message.provider_message_id = update_.provider_message_id
    if message.status == "sending":
        message.status, message.lease_until = "queued", None  # rank 0: the status moves it
        message.send_attempted_at = None  # the outcome is known now


@dataclass(slots=True)
class Target:
    """A message a status names, as `_TARGETS` reads it (its fields in that order): the
    columns a status reads, changes or reports in its event, the contact of its
    conversation (for the events), and the broadcast that sent it, if one did."""

    id: uuid.UUID
    workspace_id: uuid.UUID
    conversation_id: uuid.UUID
    channel_id: uuid.UUID
    direction: str
    type: str
    text: str | None
    created_at: datetime
    provider_message_id: str | None
    status: str
    error_code: str | None
    error_title: str | None
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    send_attempted_at: datetime | None
    lease_until: datetime | None
    contact_id: uuid.UUID
    broadcast_id: str | None

    @property
    def content(self) -> dict[str, Any]:
        """The part of the message's content the statuses look at (`is_broadcast`)."""
        return {"broadcast_id": self.broadcast_id} if self.broadcast_id else {}


#: The columns of `Target` read from the messages' table, and those a status may change
#: (written back).
_READ = tuple(
    name for name in Target.__dataclass_fields__ if name not in ("contact_id", "broadcast_id")
)
_MOVED = (
    "provider_message_id",
    "status",
    "error_code",
    "error_title",
    "sent_at",
    "delivered_at",
    "read_at",
    "send_attempted_at",
    "lease_until",
)


def _targets_statement(dialect: str) -> Any:
    """The messages of one channel that the batch's statuses name, by the provider's id or by
    our own, locked in id order: two batches carrying statuses of the same messages in
    different orders (a broadcast's sent / delivered / read webhooks), or a batch and a
    broadcast chunk writing its outcomes (which locks in id order too, broadcast/sending.py),
    would otherwise each hold a row the other waits for, and PostgreSQL would end one as a
    deadlock. Built once per process; the lists are array parameters on PostgreSQL (one
    prepared shape whatever their lengths), expanding lists on SQLite (which has one writer:
    nothing to order, and `FOR UPDATE` is not written)."""
    messages, conversations = table_of(Message), table_of(Conversation)
    by_provider = core.one_of(messages.c.provider_message_id, "provider_ids")[dialect]
    by_ours = core.one_of(messages.c.id, "ours")[dialect]
    # The contact by a lookup per message (the conversation's primary key), not a join: a
    # join's plan would depend on the conversations' statistics, and a stale estimate of a
    # workspace's conversations (10,000 appear with a broadcast) made it scan them all.
    contact_id = (
        select(conversations.c.contact_id)
        .where(conversations.c.id == messages.c.conversation_id)
        .scalar_subquery()
    )
    return (
        select(
            *(messages.c[name] for name in _READ),
            contact_id.label("contact_id"),
            messages.c.content["broadcast_id"].as_string().label("broadcast_id"),
        )
        .where(
            messages.c.workspace_id == bindparam("workspace_id"),
            messages.c.channel_id == bindparam("channel_id"),
            by_provider | by_ours,
        )
        .order_by(messages.c.id)
        .with_for_update(of=messages)
    )


_TARGETS = {dialect: _targets_statement(dialect) for dialect in ("postgresql", "sqlite")}


async def apply_batch(
    db: AsyncSession,
    workspace_id: uuid.UUID,
    updates: list[tuple[ChannelInfo, StatusUpdate]],
    heard: bool,
) -> None:
    """Applies a batch's status updates, in their order: two round trips whatever their
    number (the read that locks the messages, the write of the moved ones with their
    broadcast recipients), and their events (built only when someone can receive them,
    `heard`) given to `emit_many`."""
    if not updates:
        return
    events: list[tuple[str, dict[str, Any]]] = []
    moved: dict[uuid.UUID, Target] = {}  # changed: to be written
    held = await _lock_targets(db, workspace_id, updates)
    for channel, update_ in updates:
        target, learnt = _target_of(held, channel, update_)
        if target is not None and learnt:  # its provider id is kept, even if nothing moves
            moved[target.id] = target
        if target is None or target.direction != "outbound":
            continue
        event_type = move(target, update_)
        if event_type is None:
            continue
        moved[target.id] = target
        if heard:
            events.append(
                (event_type, payloads.message_event(cast(Message, target), target.contact_id))
            )
    if moved:
        await core.together(db, _writes(db, workspace_id, list(moved.values())))
    await emit_many(db, workspace_id, events)


async def _lock_targets(
    db: AsyncSession, workspace_id: uuid.UUID, updates: list[tuple[ChannelInfo, StatusUpdate]]
) -> dict[Any, Target]:
    """The messages the statuses name, locked, each under our id and under (channel id,
    provider id)."""
    wanted: dict[uuid.UUID, set[tuple[str, uuid.UUID | None]]] = defaultdict(set)
    for channel, update_ in updates:
        wanted[channel.id].add((update_.provider_message_id, callback_id(update_)))
    statement = _TARGETS[db.get_bind().dialect.name]
    held: dict[Any, Target] = {}
    for channel_id, named in sorted(wanted.items()):  # channels in id order too
        parameters = {
            "workspace_id": workspace_id,
            "channel_id": channel_id,
            "provider_ids": sorted({provider_id for provider_id, _ in named}),
            "ours": sorted({row_id for _, row_id in named if row_id is not None}),
        }
        for row in await core.run(db, statement, parameters):
            target = Target(*row)
            held[target.id] = target
            if target.provider_message_id:
                held[(channel_id, target.provider_message_id)] = target
    return held


def _target_of(
    held: dict[Any, Target], channel: ChannelInfo, update_: StatusUpdate
) -> tuple[Target | None, bool]:
    """The message a status names: by the provider's id, or else by our own (a send whose
    provider id we have not written: learnt now, and found by it from then on); and whether
    its provider id was learnt just now."""
    target = held.get((channel.id, update_.provider_message_id))
    if target is not None:
        return target, False
    row_id = callback_id(update_)
    target = held.get(row_id) if row_id is not None else None
    if target is None or target.channel_id != channel.id or target.provider_message_id:
        return None, False
    learn_provider_id(target, update_)
    held[(channel.id, update_.provider_message_id)] = target
    return target, True


def _writes(db: AsyncSession, workspace_id: uuid.UUID, moved: list[Target]) -> list[core.Write]:
    rows = [
        {
            "id": target.id,
            "workspace_id": workspace_id,
            **{name: getattr(target, name) for name in _MOVED},
        }
        for target in moved
    ]
    writes = [core.updating(db, Message, rows)]
    # Each broadcast message's recipient follows it.
    sent = [target for target in moved if broadcast_status.is_broadcast(target)]
    following = broadcast_status.following(db, sent) if sent else None
    return writes if following is None else [*writes, following]
