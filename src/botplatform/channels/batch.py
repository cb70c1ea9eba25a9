"""The inbound path, many events per unit of work.

A batch is the stored webhooks of one workspace that reached one worker at the same moment.
Their common case — a text (or any plain message) from a customer — is written with a
handful of multi-row Core statements for the whole batch: contacts, conversations, messages,
events, usage, and the channel's auto-replies, inserted already leased to this job, which
sends them itself once the batch has committed (`channels.sender`). On a channel a live bot
serves, the messages are stored so too and each is then answered by the bot's turn, one at a
time (`_bot_turns`). Delivery statuses are applied all at once too (`conversation.statuses`).
Everything else (edits, a STOP, a renamed contact) goes through the per-item path of
`channels.tasks`, unchanged, in the same transaction, after the common case.

Why it leaves the ORM here: an ORM flush and load costs ~0.5-0.7 ms per statement and per
row; the same work as one multi-row statement costs a few hundredths of a millisecond per
row. This is the hottest path of the platform; the API and the dashboard keep the ORM.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cache, lru_cache, partial
from typing import Any

from sqlalchemy import (
    String,
    Uuid,
    any_,
    bindparam,
    case,
    delete,
    func,
    inspect,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstanceState, PassiveFlag, aliased
from sqlalchemy.orm.attributes import set_committed_value

from botplatform.analytics import cycles
from botplatform.automation import events as automation_events
from botplatform.bot import cache as bot_cache
from botplatform.channels import choices, delivery, policy
from botplatform.channels import profile as profiles
from botplatform.channels.base import ChannelInfo
from botplatform.channels.messages import InboundMessage, OutboundMessage, StatusUpdate
from botplatform.channels.registry import threaded
from botplatform.channels.sender import LeasedSend
from botplatform.conversation import repository as conversation_repository
from botplatform.conversation import statuses
from botplatform.conversation.consent import consent_keyword
from botplatform.conversation.service import (
    CONVERSATION_KEY,
    IDENTITY_KEY,
    MESSAGE_KEY,
    inbound_row,
)
from botplatform.events import payloads
from botplatform.events.service import (
    anyone_receives,
    defer_events,
    emit_deferred,
    emit_many,
    forget_deferred,
)
from botplatform.kit import core, metrics
from botplatform.kit.clock import utcnow
from botplatform.kit.scoping import scoped_columns, scoped_rows
from botplatform.message.schemas import MessageBody
from botplatform.message.service import IDEMPOTENCY_KEY, SEND_JOB, to_outbound
from botplatform.models import (
    BotSession,
    Contact,
    ContactIdentity,
    Conversation,
    InboundEvent,
    Message,
)
from botplatform.models.base import table_of
from botplatform.usage import service as usage
from botplatform.worker.jobs import enqueue

#: Declared in `channels.tasks` (which imports this module), queued from here too.
FETCH_MEDIA_JOB = "fetch_media"

#: Applies one parsed item the per-item way; 1 when it stored a new inbound message.
ApplyOne = Callable[[ChannelInfo, object], Awaitable[int]]
#: Answers one stored inbound message on a channel a live bot serves, as the per-item path
#: does once it has stored it: the bot's turn, else the channel's auto-reply. Its last
#: argument: whether the message opens its conversation (None: the answerer asks).
Answer = Callable[[ChannelInfo, Message, str, bool | None], Awaitable[None]]


@dataclass
class Sender:
    """A customer writing in one conversation of one channel (their one conversation, or a
    thread of theirs on a channel with threads), with what the batch learns about them."""

    channel: ChannelInfo
    external_id: str
    name: str | None
    thread_key: str = ""  # the conversation's key (`Conversation.thread_key`)
    arrivals: list[InboundMessage] = field(default_factory=list)
    contact_id: uuid.UUID | None = None
    opted_out: bool = False
    conversation_id: uuid.UUID | None = None
    last_inbound_at: datetime | None = None
    profile_changed: bool = False
    new_contact: bool = False  # created by this batch: no conversation to look for
    new_conversation: bool = False  # created by this batch, already in its final state
    earlier_inbound: bool = True  # its conversation had a customer message before the batch
    conversation_asked: bool = False  # looked for with its contact (`_find_contacts`)
    bot: bool = False  # a live bot serves the channel: it answers (`_bot_turns`)
    stored: list[Message] = field(default_factory=list)  # this batch's new messages


@dataclass
class Outcome:
    """What a batch did: the replies it leased (to send after commit), and how many new
    inbound messages it stored."""

    replies: list[LeasedSend] = field(default_factory=list)
    received: int = 0


def _per_dialect(build: Callable[[str], Any]) -> dict[str, Any]:
    return {dialect: build(dialect) for dialect in ("postgresql", "sqlite")}


_EVENTS = table_of(InboundEvent)
_PENDING_EVENTS = _per_dialect(
    lambda dialect: scoped_columns(
        InboundEvent, "id", "channel_id", "body", "dedupe_key", "created_at"
    ).where(core.one_of(_EVENTS.c.id, "ids")[dialect], _EVENTS.c.status == "pending")
)


async def pending_events(
    db: AsyncSession, workspace_id: uuid.UUID, event_ids: list[uuid.UUID]
) -> list[Any]:
    """The batch's events still to process, in the order they arrived: by the time they
    were stored, then by their place in `event_ids`. The intake stores a whole group with one
    timestamp and random ids, and lists each group's ids in arrival order (channels/intake.py),
    so within a group only the list knows the order: a customer's STOP and the message
    after it, stored together, must not be applied the other way round (the second would be
    answered). Not locked: a copy of the job running at the same moment stores nothing twice
    (the messages' unique key decides), and a lock here would meet a channel's deletion in
    the other order."""
    parameters = {"workspace_id": workspace_id, "ids": event_ids}
    rows = await core.run(db, _dialect(db, _PENDING_EVENTS), parameters)
    place = {event_id: index for index, event_id in enumerate(event_ids)}
    return sorted(rows, key=lambda row: (row.created_at, place[row.id]))


async def apply_items(
    db: AsyncSession,
    workspace_id: uuid.UUID,
    settings_lease: timedelta,
    items: list[tuple[ChannelInfo, object]],
    apply_one: ApplyOne,
    answer: Answer,
    closing: list[core.Write],
) -> Outcome:
    """Applies the parsed items of a batch: the common case in bulk, the rest one by one
    (after it, in their order); counts the new inbound messages. Its last writes — the
    usage counters, the replies and the caller's `closing` ones — go together (one round
    trip on PostgreSQL)."""
    outcome = Outcome()
    # Asked once for the batch: the stored messages' events and every event below.
    heard = await anyone_receives(db, workspace_id)
    items = await _follow_reactions(db, items)
    senders, rest = await _split(db, items)
    if senders:
        closing = [*await _record(db, senders, heard), *closing]
        outcome.received += sum(len(sender.stored) for sender in senders)
    # With the last writes: the cycles the items below open and note.
    cycles.defer_writes(db)
    # And their events: one INSERT for the rows, one for the deliveries; none where nobody
    # can receive them.
    defer_events(db, None if heard else workspace_id)
    # The status updates, all at once, before anything else locks a row (conversation
    # .statuses locks their messages in id order).
    updates = [(channel, item) for channel, item in rest if isinstance(item, StatusUpdate)]
    rest = [(channel, item) for channel, item in rest if not isinstance(item, StatusUpdate)]
    await statuses.apply_batch(db, workspace_id, updates, heard)
    leases = delivery.leases_of(db)  # replies the per-item path leases (bots, automations)
    if leases is not None:
        leases.defer_inserts()  # their rows: one INSERT with the last writes
    turns: list[core.Write] = []
    try:
        # With nothing left for the per-item path (which may read or change the same rows),
        # what the turns changed goes with the last writes: one round trip less.
        turns = await _bot_turns(db, senders, answer, defer_writes=not rest)
        for channel, item in rest:
            outcome.received += await apply_one(channel, item)
        await emit_deferred(db)
    finally:
        closing = [
            *closing,
            *turns,
            *cycles.deferred_writes(db),
        ]
        forget_deferred(db)
    wanted = _wanted_replies(senders)
    leased = len(leases.replies) if leases is not None else 0
    # Inbound messages count first (as when the replies' own jobs ran after this one), then
    # the replies take their share of the month's quota: one statement for both.
    writes = await usage.counting_batch(
        db, workspace_id, inbound=outcome.received, outbound=len(wanted) + leased
    )
    if writes is None:  # a plan with a quota: decided now, the replies may be refused
        refused = await usage.count_batch(
            db, workspace_id, inbound=outcome.received, outbound=len(wanted) + leased
        )
        if refused is not None and leases is not None:
            _give_back(db, workspace_id, leases)
        writes = []
    else:
        refused = None
    if wanted:
        outcome.replies, rows = _replies(db, wanted, settings_lease, refused is None)
        writes.append(core.inserting(db, Message, rows))
    deferred = list(leases.deferred.values()) if leases and leases.deferred else []
    if deferred:
        writes.append(
            core.inserting(db, Message, deferred, conflict=IDEMPOTENCY_KEY, returning="id")
        )
    await db.flush()  # the per-item path's changes first, in the order they always had
    done = await core.together(db, writes + closing)
    if deferred and len(done[len(writes) - 1]) != len(deferred):
        # Never sent without its row: the batch fails, and is retried.
        raise RuntimeError("a leased reply's idempotency key was taken")
    return outcome


def _give_back(db: AsyncSession, workspace_id: uuid.UUID, leases: delivery.Leases) -> None:
    """The month's quota has no room for all of the batch's replies: the leased ones go the
    per-message way instead, whose claim counts each (or fails it with `quota_exceeded`)."""
    for reply in leases.replies:
        leases.unlease(reply)
        enqueue(db, SEND_JOB, str(workspace_id), str(reply.message.id))
    leases.replies.clear()


# -- which items take the bulk path ----------------------------------------------------------


async def _split(
    db: AsyncSession, items: list[tuple[ChannelInfo, object]]
) -> tuple[list[Sender], list[tuple[ChannelInfo, object]]]:
    """The senders whose every message in this batch can be written in bulk, and the items
    left to the per-item path. A person stays whole on one side (all their threads), so
    their messages keep their order whichever path they take."""
    by_sender: dict[tuple[uuid.UUID, str, str], Sender] = {}
    per_item: set[tuple[uuid.UUID, str]] = set()  # people: (channel, their id on it)
    bot_free = await _channels_without_live_bots(db, {channel for channel, _ in items})
    for channel, item in items:
        if not isinstance(item, InboundMessage):
            continue
        person, thread = (channel.id, item.sender_id), item.thread or ""
        sender = by_sender.setdefault(
            (*person, thread), Sender(channel, item.sender_id, item.sender_name, thread)
        )
        sender.arrivals.append(item)
        sender.bot = channel.id not in bot_free
        if consent_keyword(item.content.text):
            per_item.add(person)  # a STOP / START: the per-item path
        elif item.sender_name and sender.name != item.sender_name:
            per_item.add(person)  # renamed within the batch: the per-item path keeps up
    await _find_contacts(db, [s for k, s in by_sender.items() if k[:2] not in per_item])
    for key, sender in by_sender.items():
        if sender.contact_id is not None and sender.name and sender.profile_changed:
            per_item.add(key[:2])  # a new profile name is an update event: the per-item path
    bulk = [sender for key, sender in by_sender.items() if key[:2] not in per_item]
    rest = [
        (channel, item)
        for channel, item in items
        if not isinstance(item, InboundMessage) or (channel.id, item.sender_id) in per_item
    ]
    return bulk, rest


async def _channels_without_live_bots(
    db: AsyncSession, channels: set[ChannelInfo]
) -> set[uuid.UUID]:
    free = set()
    for channel in channels:
        if not await bot_cache.live_for_channel(db, channel.workspace_id, channel.id):
            free.add(channel.id)
    return free


# -- contacts and conversations ----------------------------------------------------------


# The statements of the bulk path are built once per process (constructing a statement and
# computing its cache key cost more than executing it: 0.6 ms against 0.25 ms, measured), and
# on PostgreSQL run on asyncpg itself (`kit.core`). Inserts that meet a unique key leave
# those rows out (`ON CONFLICT DO NOTHING`) and say which rows they wrote.


def _dialect(db: AsyncSession, statements: dict[str, Any]) -> Any:
    return statements[db.get_bind().dialect.name]


_IDENTITIES, _CONTACTS = table_of(ContactIdentity), table_of(Contact)
_CONVERSATIONS = table_of(Conversation)
#: SQLite's read of the known contacts; PostgreSQL reads them with their conversations
#: (`_KNOWN_SENDERS`).
_KNOWN_IDENTITIES = (
    scoped_columns(
        ContactIdentity, "external_id", "contact_id", "profile_name", "profile_fetched_at"
    )
    .add_columns(_CONTACTS.c.opted_out)
    .join(_CONTACTS, _CONTACTS.c.id == _IDENTITIES.c.contact_id)
    .where(
        _IDENTITIES.c.provider == bindparam("provider"),
        core.one_of(_IDENTITIES.c.external_id, "external_ids")["sqlite"],
    )
)


def _known_senders() -> Any:
    """PostgreSQL: each sender's contact and their conversation on the channel, in one round
    trip instead of two (`_find_contacts`, then `_find_conversations`). One row of arrays in,
    a row out per sender whose contact exists. Both lookups are lateral subqueries with
    `LIMIT 1` (each key is unique): the planner cannot merge them into joins, so each runs
    as an index lookup per sender whatever the tables' statistics say (a join's plan followed
    them, and on a new database's growing tables chose sequential scans; see `_lock_talking`)."""
    asked = core.unnested(
        "asked", ("external_id", String), ("channel_id", Uuid), ("thread_key", String)
    )
    contact = (
        scoped_columns(ContactIdentity, "contact_id", "profile_name", "profile_fetched_at")
        .add_columns(_CONTACTS.c.opted_out)
        .join(_CONTACTS, _CONTACTS.c.id == _IDENTITIES.c.contact_id)
        .where(
            _IDENTITIES.c.provider == bindparam("provider"),
            _IDENTITIES.c.external_id == asked.c.external_id,
        )
        .limit(1)
        .lateral("contact")
    )
    conversation = (
        scoped_columns(Conversation, "id", "last_inbound_at")
        .where(
            _CONVERSATIONS.c.channel_id == asked.c.channel_id,
            _CONVERSATIONS.c.contact_id == contact.c.contact_id,
            _CONVERSATIONS.c.thread_key == asked.c.thread_key,
        )
        .limit(1)
        .lateral("conversation")
    )
    return (
        select(
            asked.c.external_id,
            asked.c.channel_id,
            asked.c.thread_key,
            contact.c.contact_id,
            contact.c.profile_name,
            contact.c.profile_fetched_at,
            contact.c.opted_out,
            conversation.c.id,
            conversation.c.last_inbound_at,
        )
        .select_from(asked)
        .join(contact, true())
        .outerjoin(conversation, true())
    )


_KNOWN_SENDERS = _known_senders()


async def _find_contacts(db: AsyncSession, senders: list[Sender]) -> None:
    """Fills in the contact of each sender known already (one query per provider; the same
    number on two channels is one contact), and on PostgreSQL their conversation too."""
    by_provider: dict[str, dict[str, list[Sender]]] = defaultdict(lambda: defaultdict(list))
    for sender in senders:
        by_provider[sender.channel.provider][sender.external_id].append(sender)
    with_conversations = db.get_bind().dialect.name == "postgresql"
    for provider, known in by_provider.items():
        workspace_id = next(iter(known.values()))[0].channel.workspace_id
        if with_conversations:
            found = await _contacts_and_conversations(db, workspace_id, provider, known)
        else:
            parameters = {
                "workspace_id": workspace_id,
                "provider": provider,
                "external_ids": list(known),
            }
            found = await core.run(db, _KNOWN_IDENTITIES, parameters)
        refresh = profiles.has_profiles(provider)
        for external_id, contact_id, profile_name, fetched_at, opted_out in found:
            for sender in known[external_id]:
                sender.contact_id, sender.opted_out = contact_id, bool(opted_out)
                sender.profile_changed = bool(sender.name) and profile_name != sender.name
            if refresh:  # Messenger/Instagram: a day-old profile is read again
                profiles.refresh_if_stale(
                    db, known[external_id][0].channel, external_id, fetched_at
                )


async def _contacts_and_conversations(
    db: AsyncSession, workspace_id: uuid.UUID, provider: str, known: dict[str, list[Sender]]
) -> list[tuple[Any, ...]]:
    """`_KNOWN_SENDERS` for one provider's senders: their conversations filled in (each
    sender marked as asked), and the contacts found, one row per person, as
    `_KNOWN_IDENTITIES` gives them."""
    asked = [sender for senders in known.values() for sender in senders]
    parameters = {
        "workspace_id": workspace_id,
        "provider": provider,
        "external_id": [sender.external_id for sender in asked],
        "channel_id": [sender.channel.id for sender in asked],
        "thread_key": [sender.thread_key for sender in asked],
    }
    by_key = {(s.external_id, s.channel.id, s.thread_key): s for s in asked}
    people: dict[str, tuple[Any, ...]] = {}
    for row in await core.run(db, _KNOWN_SENDERS, parameters):
        external_id, channel_id, thread_key, contact_id, *contact, conversation_id, last = row
        people[external_id] = (external_id, contact_id, *contact)
        if conversation_id is not None:
            sender = by_key[(external_id, channel_id, thread_key)]
            sender.conversation_id, sender.last_inbound_at = conversation_id, last
            sender.earlier_inbound = last is not None
    for sender in asked:
        sender.conversation_asked = True
    return list(people.values())


class Events:
    """The batch's domain events, emitted together. Their payloads are built only when
    someone receives them (an endpoint subscribes, a dashboard watches the workspace):
    most batches of most workspaces have nobody, and building them was a tenth of the
    worker's CPU."""

    def __init__(self, wanted: bool) -> None:
        self.wanted = wanted
        self.items: list[tuple[str, dict[str, Any]]] = []

    def add(self, event_type: str, payload: Callable[[], dict[str, Any]]) -> None:
        if self.wanted:
            self.items.append((event_type, payload()))


async def _create_customers(
    db: AsyncSession, new: list[Sender], now: datetime, events: Events
) -> list[Sender]:
    """Customers met for the first time: their contacts, identities, conversations and
    messages written together (one round trip on PostgreSQL, `core.together`), each row
    already in its final state. Two workers can meet the same new number at once: the
    identity's unique key decides; the loser's rows are removed (the contact, and with it
    what refers to it) and those senders are returned, to go the way of known customers
    with the winner's contact (read again)."""
    workspace_id = new[0].channel.workspace_id
    # The same new number on two channels of the workspace: one contact, made by the first.
    firsts: dict[tuple[str, str], Sender] = {}
    for sender in new:
        firsts.setdefault((sender.channel.provider, sender.external_id), sender)
    repeats = [
        sender
        for sender in new
        if firsts[(sender.channel.provider, sender.external_id)] is not sender
    ]
    new = list(firsts.values())
    for sender in new:
        sender.contact_id, sender.conversation_id = uuid.uuid4(), uuid.uuid4()
    messages = _message_rows(new, now)
    conversations = [_conversation_row(sender, workspace_id, now) for sender in new]
    # In the order SQLite (which checks each row's foreign keys at once) writes them.
    _, won, _, stored = await core.together(
        db,
        [
            core.inserting(
                db, Contact, [_contact_row(sender, workspace_id, now) for sender in new]
            ),
            core.inserting(
                db,
                ContactIdentity,
                [_identity_row(sender, workspace_id, now) for sender in new],
                conflict=IDENTITY_KEY,
                returning="external_id",
            ),
            core.inserting(db, Conversation, conversations),
            core.inserting(
                db, Message, [row for _, row in messages], conflict=MESSAGE_KEY, returning="id"
            ),
        ],
    )
    winners = set(won)
    lost = [sender for sender in new if sender.external_id not in winners]
    if lost:
        orphans = [sender.contact_id for sender in lost]
        await core.run(
            db, delete(Contact).where(Contact.workspace_id == workspace_id, Contact.id.in_(orphans))
        )
        for sender in lost:
            sender.contact_id = sender.conversation_id = None
    if lost or repeats:
        await _find_contacts(db, lost + repeats)
    for sender, row in zip(new, conversations, strict=True):
        if sender.external_id not in winners:
            continue
        sender.new_contact = sender.new_conversation = True
        sender.last_inbound_at = row["last_inbound_at"]
        await _contact_created(db, sender, now, events)
        await _conversation_created(db, sender, now, events)
    _keep_stored([(s, row) for s, row in messages if s.external_id in winners], set(stored))
    return lost + repeats


def _contact_row(sender: Sender, workspace_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    return {
        "id": sender.contact_id,
        "workspace_id": workspace_id,
        "name": sender.name or sender.external_id,
        "attributes": {},
        "tags": [],
        "opted_out": False,
        "created_at": now,
        "updated_at": now,
    }


def _identity_row(sender: Sender, workspace_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "workspace_id": workspace_id,
        "contact_id": sender.contact_id,
        "provider": sender.channel.provider,
        "external_id": sender.external_id,
        "profile_name": sender.name,
        "created_at": now,
        "updated_at": now,
    }


def _conversation_row(sender: Sender, workspace_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    """A new conversation as the batch leaves it (what `_move_conversations` would make of
    it): its messages are all new, since a message stored before would have made it."""
    arrivals = _unique_arrivals(sender)
    return {
        "id": sender.conversation_id,
        "workspace_id": workspace_id,
        "channel_id": sender.channel.id,
        "contact_id": sender.contact_id,
        "thread_key": sender.thread_key,
        "status": "open",
        "unread_count": len(arrivals),
        "labels": [],
        "last_inbound_at": max(item.timestamp for item in arrivals),
        "last_message_at": now,
        "created_at": now,
        "updated_at": now,
    }


async def _contact_created(db: AsyncSession, sender: Sender, now: datetime, events: Events) -> None:
    assert sender.contact_id is not None
    row = Contact(
        id=sender.contact_id,
        name=sender.name or sender.external_id,
        opted_out=False,
        created_at=now,
        updated_at=now,
    )
    events.add("contact.created", lambda: payloads.contact_event(row))
    profiles.queue_fetch(db, sender.channel, sender.external_id)
    await automation_events.record(
        db,
        sender.channel.workspace_id,
        automation_events.CONTACT_CREATED,
        contact_id=sender.contact_id,
        channel_id=sender.channel.id,
    )


async def _conversation_created(
    db: AsyncSession, sender: Sender, now: datetime, events: Events
) -> None:
    row = Conversation(
        id=sender.conversation_id,
        channel_id=sender.channel.id,
        contact_id=sender.contact_id,
        status="open",
        assignee_id=None,
        created_at=now,
    )
    events.add("conversation.created", lambda: payloads.conversation_event(row))
    await automation_events.record(
        db,
        sender.channel.workspace_id,
        automation_events.CONVERSATION_CREATED,
        conversation_id=sender.conversation_id,
        contact_id=sender.contact_id,
        channel_id=sender.channel.id,
    )


_KNOWN_CONVERSATIONS = _per_dialect(
    lambda dialect: scoped_columns(
        Conversation, "contact_id", "thread_key", "id", "last_inbound_at"
    ).where(
        _CONVERSATIONS.c.channel_id == bindparam("channel_id"),
        core.one_of(_CONVERSATIONS.c.contact_id, "contact_ids")[dialect],
        core.one_of(_CONVERSATIONS.c.thread_key, "thread_keys")[dialect],
    )
)


async def _find_conversations(db: AsyncSession, senders: list[Sender]) -> None:
    by_channel: dict[uuid.UUID, dict[tuple[uuid.UUID, str], Sender]] = defaultdict(dict)
    for sender in senders:
        assert sender.contact_id is not None
        by_channel[sender.channel.id][(sender.contact_id, sender.thread_key)] = sender
    for channel_id, known in by_channel.items():
        workspace_id = next(iter(known.values())).channel.workspace_id
        parameters = {
            "workspace_id": workspace_id,
            "channel_id": channel_id,
            "contact_ids": list({contact_id for contact_id, _ in known}),
            "thread_keys": list({thread_key for _, thread_key in known}),
        }
        found = await core.run(db, _dialect(db, _KNOWN_CONVERSATIONS), parameters)
        # Every contact asked with every key asked: a row may pair a contact with another's
        # thread, not one of ours.
        for contact_id, thread_key, conversation_id, last_inbound_at in found:
            mine = known.get((contact_id, thread_key))
            if mine is not None:
                mine.conversation_id, mine.last_inbound_at = conversation_id, last_inbound_at
                mine.earlier_inbound = last_inbound_at is not None


async def _create_conversations(
    db: AsyncSession, senders: list[Sender], now: datetime, events: Events
) -> None:
    """Conversations for known contacts that have none on this channel yet."""
    new = sorted(
        (s for s in senders if s.conversation_id is None),
        key=lambda s: (s.external_id, s.thread_key),
    )
    if not new:
        return
    workspace_id = new[0].channel.workspace_id
    for sender in new:
        sender.conversation_id = uuid.uuid4()
    rows = [_conversation_row(sender, workspace_id, now) for sender in new]
    inserted = await core.insert_many(
        db, Conversation, rows, conflict=CONVERSATION_KEY, returning="id"
    )
    won = set(inserted.scalars())
    lost = [sender for sender, row in zip(new, rows, strict=True) if row["id"] not in won]
    for sender in lost:
        sender.conversation_id = None
    if lost:
        await _find_conversations(db, lost)
    for sender, row in zip(new, rows, strict=True):
        if row["id"] in won:
            sender.new_conversation, sender.last_inbound_at = True, row["last_inbound_at"]
            await _conversation_created(db, sender, now, events)


_MESSAGES = table_of(Message)
_THREADS_OF_MESSAGES = _per_dialect(
    lambda dialect: (
        scoped_columns(Message, "provider_message_id")
        .add_columns(_CONVERSATIONS.c.thread_key)
        .join(_CONVERSATIONS, _CONVERSATIONS.c.id == _MESSAGES.c.conversation_id)
        .where(
            _MESSAGES.c.channel_id == bindparam("channel_id"),
            core.one_of(_MESSAGES.c.provider_message_id, "provider_ids")[dialect],
        )
    )
)


def _reacted_to(channel: ChannelInfo, item: object) -> str | None:
    """The message a reaction with no thread of its own is about, on a threaded channel."""
    if not isinstance(item, InboundMessage) or item.thread is not None:
        return None
    reaction = item.content.reaction
    return reaction.message_id if reaction is not None and threaded(channel.provider) else None


async def _follow_reactions(
    db: AsyncSession, items: list[tuple[ChannelInfo, object]]
) -> list[tuple[ChannelInfo, object]]:
    """A reaction on a channel with threads names the message it is about, not its thread:
    it goes to that message's conversation (a thread is a conversation). One query per such
    channel in the batch; the other channels' items are not looked at."""
    wanted: dict[ChannelInfo, set[str]] = defaultdict(set)
    for channel, item in items:
        target = _reacted_to(channel, item)
        if target is not None:
            wanted[channel].add(target)
    if not wanted:
        return items
    threads: dict[tuple[uuid.UUID, str], str] = {}
    for channel, provider_ids in wanted.items():
        parameters = {
            "workspace_id": channel.workspace_id,
            "channel_id": channel.id,
            "provider_ids": sorted(provider_ids),
        }
        for provider_id, thread_key in await core.run(
            db, _dialect(db, _THREADS_OF_MESSAGES), parameters
        ):
            threads[(channel.id, provider_id)] = thread_key
    placed: list[tuple[ChannelInfo, object]] = []
    for channel, item in items:
        thread = threads.get((channel.id, _reacted_to(channel, item) or ""))
        if thread and isinstance(item, InboundMessage):
            item = replace(item, thread=thread)
        placed.append((channel, item))
    return placed


# -- messages --------------------------------------------------------------------------------


async def _record(db: AsyncSession, senders: list[Sender], heard: bool) -> list[core.Write]:
    """Stores the senders' messages once each (a provider's redelivery is left out by the
    unique key), and moves their conversations on: what `record_inbound` does per message.
    Gives the writes that can wait for the batch's last round trip (the cycles opened)."""
    now = utcnow()
    workspace_id = senders[0].channel.workspace_id
    events = Events(heard)  # `heard`: `anyone_receives`, asked by the caller
    new = sorted((s for s in senders if s.contact_id is None), key=lambda s: s.external_id)
    known = [sender for sender in senders if sender.contact_id is not None]
    if new:
        known += await _create_customers(db, new, now, events)
    if known:
        await _find_conversations(db, [s for s in known if not s.conversation_asked])
        await _create_conversations(db, known, now, events)
        rows = _message_rows(known, now)
        inserted = await core.insert_many(
            db, Message, [r for _, r in rows], conflict=MESSAGE_KEY, returning="id"
        )
        _keep_stored(rows, set(inserted.scalars()))
    touched = [sender for sender in senders if sender.stored]
    # A bot's conversations are moved on in the session instead, once locked (`_bot_turns`).
    moved = [sender for sender in touched if not sender.new_conversation and not sender.bot]
    later = [_moving_conversations(db, workspace_id, moved, now)]
    # (A bot's conversations open theirs with the bot's note on them: `_bot_turns`.)
    plain = [_opening(sender) for sender in touched if not sender.bot]
    later.append(cycles.opening_cycles(db, workspace_id, plain))
    metrics.count_messages(workspace_id, "inbound", sum(len(s.stored) for s in touched))
    for sender in touched:
        for message in sender.stored:
            events.add(
                "message.received", partial(payloads.message_event, message, sender.contact_id)
            )
            if message.media_status == "pending":
                enqueue(db, FETCH_MEDIA_JOB, str(workspace_id), str(message.id))
            choices.queue(db, sender.channel, message)
            if sender.contact_id is not None:
                await automation_events.message_received(db, message, sender.contact_id)
    await emit_many(db, workspace_id, events.items)
    return [write for write in later if write is not None]


def _opening(sender: Sender) -> cycles.Opening:
    assert sender.conversation_id is not None  # a stored message has its conversation
    first = min(message.created_at for message in sender.stored)
    return cycles.Opening(sender.conversation_id, sender.channel.id, first)


def _keep_stored(rows: list[tuple[Sender, dict[str, Any]]], stored: set[Any]) -> None:
    for sender, row in rows:
        if row["id"] in stored:
            sender.stored.append(core.instance(Message, row))


def _unique_arrivals(sender: Sender) -> list[InboundMessage]:
    """The sender's messages in this batch, each provider message once."""
    return list({item.provider_message_id: item for item in sender.arrivals}.values())


def _message_rows(senders: list[Sender], now: datetime) -> list[tuple[Sender, dict[str, Any]]]:
    rows: list[tuple[Sender, dict[str, Any]]] = []
    seen: set[tuple[uuid.UUID, str]] = set()
    for sender in sorted(senders, key=lambda s: (s.external_id, s.thread_key)):
        for item in sender.arrivals:
            if (sender.channel.id, item.provider_message_id) in seen:
                continue  # the same message twice in one batch
            seen.add((sender.channel.id, item.provider_message_id))
            rows.append((sender, _message_row(sender, item, now)))
    return rows


def _message_row(sender: Sender, item: InboundMessage, now: datetime) -> dict[str, Any]:
    assert sender.conversation_id is not None  # found or created before its messages
    return inbound_row(sender.channel, sender.conversation_id, item, now)


def _moved_values(conversations: Any, moved: Any) -> dict[str, Any]:
    """A conversation's columns once `moved` (its batch's latest message and how many it
    brought) has reached it."""
    return {
        "last_inbound_at": case(
            (
                conversations.c.last_inbound_at.is_(None)
                | (conversations.c.last_inbound_at < moved["latest"]),
                moved["latest"],
            ),
            else_=conversations.c.last_inbound_at,
        ),
        "last_message_at": bindparam("now"),
        "unread_count": conversations.c.unread_count + moved["added"],
        "status": case(
            (conversations.c.status == "resolved", "open"),
            else_=conversations.c.status,
        ),
        "updated_at": bindparam("now"),
    }


def _move_statements() -> dict[str, Any]:
    """PostgreSQL: every conversation of the batch in one statement from arrays, its rows
    locked first in id order (the sorted `FOR UPDATE` subquery), so two batches touching the
    same conversations never wait on each other in a circle; it runs among the batch's last
    writes (`core.together`), first of them. SQLite (one writer): one row per execution."""
    table = table_of(Conversation)
    uuids = postgresql.ARRAY(table.c.id.type)
    arrays = (
        bindparam("ids", type_=uuids),
        bindparam("latest", type_=postgresql.ARRAY(table.c.last_inbound_at.type)),
        bindparam("added", type_=postgresql.ARRAY(table.c.unread_count.type)),
    )
    moved = func.unnest(*arrays).table_valued("id", "latest", "added").render_derived("moved")
    locked = (
        select(table.c.id)
        .where(
            table.c.workspace_id == bindparam("ws"),
            table.c.id == any_(bindparam("locked", type_=uuids)),
        )
        .order_by(table.c.id)
        .with_for_update()
    )
    return {
        "postgresql": update(table)
        .where(
            table.c.workspace_id == bindparam("ws"),
            table.c.id == moved.c.id,
            table.c.id.in_(locked),
        )
        .values(_moved_values(table, moved.c)),
        "sqlite": update(table)
        .where(
            table.c.workspace_id == bindparam("ws"),
            table.c.id == bindparam("conversation_id"),
        )
        .values(_moved_values(table, {"latest": bindparam("latest"), "added": bindparam("added")})),
    }


_MOVE_CONVERSATIONS = _move_statements()


def _moving_conversations(
    db: AsyncSession, workspace_id: uuid.UUID, senders: list[Sender], now: datetime
) -> core.Write | None:
    """The statement that moves the batch's known conversations on (last inbound, unread,
    reopened), to run with the batch's last writes; the senders learn their new last
    inbound time now (the replies' window is judged on it)."""
    if not senders:
        return None
    rows: list[dict[str, Any]] = []
    for sender in sorted(senders, key=lambda s: str(s.conversation_id)):
        latest = max(message.created_at for message in sender.stored)
        previous = sender.last_inbound_at
        sender.last_inbound_at = latest if previous is None or previous < latest else previous
        rows.append({"conversation_id": sender.conversation_id, "latest": latest})
        rows[-1]["added"] = len(sender.stored)
    if db.get_bind().dialect.name == "postgresql":
        ids = [row["conversation_id"] for row in rows]
        parameters = {"ws": workspace_id, "now": now, "ids": ids, "locked": ids}
        parameters["latest"] = [row["latest"] for row in rows]
        parameters["added"] = [row["added"] for row in rows]
        return _MOVE_CONVERSATIONS["postgresql"], parameters
    return _MOVE_CONVERSATIONS["sqlite"], [{"ws": workspace_id, "now": now, **r} for r in rows]


# -- a live bot's turn ------------------------------------------------------------------------


async def _bot_turns(
    db: AsyncSession, senders: list[Sender], answer: Answer, *, defer_writes: bool
) -> list[core.Write]:
    """Customers on a channel a live bot serves: their messages were stored in bulk above;
    each is answered now as the per-item path answers it (`answer`: a bot's step needs the
    ORM, since a flow may hand off, wait or call out), but what every step reads — the
    conversation under its lock, its bot session, the contact — is read for all of them in
    one statement first, and each conversation is moved on in the session, so that a step
    reads nothing and writes its conversation once. With `defer_writes`, what the turns
    changed is given back to go with the batch's last writes (see `_turn_writes`)."""
    talking = [sender for sender in senders if sender.bot and sender.stored]
    if not talking:
        return []
    now = utcnow()
    # Deferred (`cycles.defer_writes`): each cycle opened takes the bot's note in its row.
    workspace_id = talking[0].channel.workspace_id
    await cycles.open_cycles(db, workspace_id, [_opening(sender) for sender in talking])
    loaded = await _lock_talking(db, talking)  # held: the session keeps clean objects weakly
    conversations = {conversation.id: conversation for conversation in loaded[0]}
    for sender in talking:
        assert sender.conversation_id is not None  # a stored message has its conversation
        conversation = conversations[sender.conversation_id]
        if not sender.new_conversation:  # (a new one was inserted in its final state)
            _move_loaded(conversation, sender, now)
        delivery.learn_recipient(db, conversation.id, sender.external_id)
        for index, message in enumerate(sender.stored):
            # Known without a query: the conversation is new, or had no customer message.
            opens = index == 0 and (sender.new_conversation or not sender.earlier_inbound)
            await answer(sender.channel, message, sender.external_id, opens)
    if db.new:  # a turn left a new row (one the changed ones may refer to): the ORM's flush
        await db.flush()
        return []
    writes = _turn_writes(db)
    if defer_writes:
        return writes
    await core.together(db, writes)
    return []


#: What a bot's turn changes: written for the whole batch (`_turn_writes`).
_TURN_MODELS = (BotSession, Conversation, Contact)


def _turn_writes(db: AsyncSession) -> list[core.Write]:
    """What the turns changed on the sessions, conversations and contacts they hold, as
    writes for one round trip: one `UPDATE` per table and set of changed columns
    (`core.updating`), instead of one ORM `UPDATE` per row at the next flush. The objects are
    clean from here on, with their values as the writes will leave them (the ORM's flush
    leaves them alone). Nothing else in the batch writes these rows: a bot's conversations
    are moved on in the session, not by the move statement (`_record`), and its sessions
    and contacts are changed by its turns only."""
    groups: dict[tuple[type[Any], tuple[str, ...]], list[Any]] = defaultdict(list)
    for changed in list(db.dirty):
        if isinstance(changed, _TURN_MODELS):
            names = _changed_columns(inspect(changed))
            if names:
                groups[(type(changed), names)].append(changed)
    if not groups:
        return []
    now = utcnow()
    writes = []
    # In a fixed order (`db.dirty` is a set): the same kinds of change make the same
    # statement, which each connection prepares once, not once per order it came in.
    for (model, names), objects in sorted(groups.items(), key=_by_table_and_columns):
        rows = []
        for changed in objects:
            row = {name: getattr(changed, name) for name in names}
            rows.append({"id": changed.id, "workspace_id": changed.workspace_id, **row})
            rows[-1]["updated_at"] = now
        writes.append(core.updating(db, model, rows))
    for (_, names), objects in groups.items():
        for changed in objects:
            for name in (*names, "updated_at"):
                value = now if name == "updated_at" else getattr(changed, name)
                set_committed_value(changed, name, value)
    return writes


def _by_table_and_columns(group: tuple[tuple[type[Any], tuple[str, ...]], Any]) -> Any:
    (model, names), _ = group
    return model.__tablename__, names


def _changed_columns(state: InstanceState[Any]) -> tuple[str, ...]:
    """The columns a turn changed on a loaded object, in a fixed order. Only an attribute
    set since the object was loaded has its old value in `committed_state`, so only those
    are asked for their history (asking every column built each object's full attribute
    map: about half of the write's CPU)."""
    columns = _column_keys(state.mapper)
    set_since_loaded = [key for key in state.committed_state if key in columns]
    return tuple(
        sorted(key for key in set_since_loaded if state.get_history(key, _UNLOADED).has_changes())
    )


#: History as `InstanceState.attrs[key].history` asks it: nothing loaded to answer.
_UNLOADED = PassiveFlag.PASSIVE_NO_INITIALIZE


@cache
def _column_keys(mapper: Any) -> frozenset[str]:
    """A model's column attributes that a turn's write carries (`updated_at` is set by it)."""
    return frozenset(prop.key for prop in mapper.column_attrs) - {"updated_at"}


async def _lock_talking(db: AsyncSession, talking: list[Sender]) -> list[Any]:
    """The senders' conversations, locked in id order (as the move statement locks others),
    then their contacts and bot sessions, all loaded into the session; each conversation
    remembered as locked here with its session (`conversation.repository.remember_locked`),
    so the bot's step takes neither the lock nor the session again.

    Read after the lock: after waiting for a lock, PostgreSQL gives the locked row as the
    other transaction left it but the rows joined to it as they were before (read
    committed), and that transaction has just moved the same bot session on. And read by
    key, one table each, not joined: a join's plan depends on the tables' statistics, and
    on tables that grew since they were last analyzed (a new database's first minute) the
    planner chose nested loops of sequential scans, 5-25 ms a batch where these take well
    under one. Each list is one array parameter (`_one_of`): one prepared shape."""
    workspace_id = talking[0].channel.workspace_id
    ids = sorted({sender.conversation_id for sender in talking if sender.conversation_id})
    locking = _locking(db.get_bind().dialect.name)
    conversations = list(
        (await db.execute(locking, {"workspace_id": workspace_id, "values": ids})).scalars()
    )
    contacts, found = await _contacts_and_sessions(db, workspace_id, conversations)
    sessions: dict[uuid.UUID, BotSession | None] = dict.fromkeys(c.id for c in conversations)
    sessions.update((session.conversation_id, session) for session in found)
    made = await _make_sessions(db, workspace_id, talking, sessions)
    for conversation_id, session in sessions.items():
        conversation_repository.remember_locked(db, conversation_id, session)
    return [conversations, contacts, found, made]


async def _contacts_and_sessions(
    db: AsyncSession, workspace_id: uuid.UUID, conversations: list[Conversation]
) -> tuple[list[Contact], list[BotSession]]:
    """The conversations' contacts and bot sessions, loaded afresh: on PostgreSQL in one
    statement (`_TALKING`), on SQLite one table each."""
    if db.get_bind().dialect.name != "postgresql":
        contact_ids = sorted({conversation.contact_id for conversation in conversations})
        ids = [conversation.id for conversation in conversations]
        return (
            await _read_by(db, workspace_id, Contact.id, contact_ids),
            await _read_by(db, workspace_id, BotSession.conversation_id, ids),
        )
    parameters = {
        "workspace_id": workspace_id,
        "conversation_id": [conversation.id for conversation in conversations],
        "contact_id": [conversation.contact_id for conversation in conversations],
    }
    contacts: dict[uuid.UUID, Contact] = {}
    sessions = []
    for contact, session in await db.execute(_TALKING, parameters):
        contacts[contact.id] = contact
        if session is not None:
            sessions.append(session)
    return list(contacts.values()), sessions


def _talking() -> Any:
    """PostgreSQL: each locked conversation's contact and bot session as ORM objects, in one
    round trip. Lateral lookups with `LIMIT 1`, as `_known_senders` (an index lookup each,
    whatever the statistics), made after the lock was taken (`_lock_talking` says why)."""
    talking = core.unnested("talking", ("conversation_id", Uuid), ("contact_id", Uuid))
    contact = (
        scoped_rows(Contact).where(Contact.id == talking.c.contact_id).limit(1).lateral("contact")
    )
    session = (
        scoped_rows(BotSession)
        .where(BotSession.conversation_id == talking.c.conversation_id)
        .limit(1)
        .lateral("session")
    )
    return (
        select(aliased(Contact, contact), aliased(BotSession, session))
        .select_from(talking)
        .join(contact, true())
        .outerjoin(session, true())
        .execution_options(populate_existing=True)
    )


_TALKING = _talking()


async def _read_by(
    db: AsyncSession, workspace_id: uuid.UUID, key: Any, values: list[uuid.UUID]
) -> list[Any]:
    """The workspace's rows of `key`'s model whose `key` is one of `values`, loaded afresh."""
    reading = _reading(key.class_, key.key, db.get_bind().dialect.name)
    parameters = {"workspace_id": workspace_id, "values": values}
    return list((await db.execute(reading, parameters)).scalars())


# Built once per process (`scoped_rows`), as the batch runs them for every bot batch.


@cache
def _reading(model: Any, key: str, dialect: str) -> Any:
    """`model`'s rows whose `key` is one of `:values`, loaded afresh."""
    reading = scoped_rows(model).where(core.one_of(getattr(model, key), "values")[dialect])
    return reading.execution_options(populate_existing=True)


@cache
def _locking(dialect: str) -> Any:
    """`_reading` of conversations by id, locked in id order."""
    return _reading(Conversation, "id", dialect).order_by(Conversation.id).with_for_update()


async def _make_sessions(
    db: AsyncSession,
    workspace_id: uuid.UUID,
    talking: list[Sender],
    sessions: dict[uuid.UUID, BotSession | None],
) -> list[BotSession]:
    """The idle bot sessions the turns would make one by one (`bot.repository.session_made`:
    a conversation whose customer may be answered, without a session yet), made in one
    statement and put in `sessions`. A session made meanwhile by another transaction (its
    unique key) is left out, to be read by the turn."""
    wanted = [
        sender.conversation_id
        for sender in talking
        if sender.conversation_id is not None
        and sessions.get(sender.conversation_id, False) is None
        and not sender.opted_out
        and any(message.type != "reaction" for message in sender.stored)
    ]
    if not wanted:
        return []
    now = utcnow()
    rows = [
        core.complete_row(
            BotSession,
            {
                "id": uuid.uuid4(),
                "workspace_id": workspace_id,
                "conversation_id": conversation_id,
                "status": "idle",
                "variables": {},
                "attempts": 0,
                "step": 0,
                "created_at": now,
                "updated_at": now,
            },
        )
        for conversation_id in dict.fromkeys(wanted)
    ]
    inserted = await core.insert_many(
        db, BotSession, rows, conflict=["conversation_id"], returning="id"
    )
    won = set(inserted.scalars())
    made = [core.as_loaded(db, BotSession, row) for row in rows if row["id"] in won]
    for session in made:
        sessions[session.conversation_id] = session
    return made


def _move_loaded(conversation: Conversation, sender: Sender, now: datetime) -> None:
    """What the move statement (`_moved_values`) does to a conversation, done to it loaded:
    written with the bot's own changes to it, in one UPDATE."""
    latest = max(message.created_at for message in sender.stored)
    if conversation.last_inbound_at is None or conversation.last_inbound_at < latest:
        conversation.last_inbound_at = latest
    conversation.last_message_at = now
    conversation.unread_count += len(sender.stored)
    if conversation.status == "resolved":
        conversation.status = "open"


# -- the channel's auto-reply ----------------------------------------------------------------


def _wanted_replies(senders: list[Sender]) -> list[tuple[Sender, Message]]:
    """The channel's fixed answer to each new inbound text (what `tasks._auto_reply` decides
    per message): not to an opted-out contact, not outside the 24-hour window."""
    wanted: list[tuple[Sender, Message]] = []
    for sender in senders:
        if sender.bot or not sender.channel.config.get("auto_reply") or sender.opted_out:
            continue  # (where a bot serves the channel, `_bot_turns` answers)
        for message in sender.stored:
            if message.type == "text" and _window_open(sender):
                wanted.append((sender, message))
    return wanted


def _replies(
    db: AsyncSession, wanted: list[tuple[Sender, Message]], lease: timedelta, counted: bool
) -> tuple[list[LeasedSend], list[dict[str, Any]]]:
    """The replies' rows, already leased to this job: no send job, no separate claim.
    When the month's quota had no room for all of them (`counted` False), each goes the
    per-message way instead, whose claim counts it (or fails it with `quota_exceeded`)."""
    now = utcnow()
    workspace_id = wanted[0][0].channel.workspace_id
    lease_until = now + lease if counted else None
    rows = [_reply_row(sender, message, now, lease_until) for sender, message in wanted]
    if lease_until is None:
        for row in rows:
            enqueue(db, SEND_JOB, str(workspace_id), str(row["id"]))
        return [], rows
    leased = [
        LeasedSend(
            message_id=row["id"],
            workspace_id=workspace_id,
            channel=sender.channel,
            conversation_id=row["conversation_id"],
            contact_id=sender.contact_id,
            recipient_id=sender.external_id,
            outbound=_reply_outbound(row, sender.external_id),
            row=row,
            lease_until=lease_until,
        )
        for (sender, _), row in zip(wanted, rows, strict=True)
    ]
    return leased, rows


def _reply_outbound(row: dict[str, Any], recipient_id: str) -> OutboundMessage:
    body, _ = _auto_reply_body(str(row["text"]))
    key = str(row["idempotency_key"])
    return to_outbound(body, recipient_id, key, row["reply_to_provider_id"], str(row["id"]))


def _window_open(sender: Sender) -> bool:
    return policy.window_open(sender.channel.provider, sender.last_inbound_at)


@lru_cache(maxsize=1024)
def _auto_reply_body(text: str) -> tuple[MessageBody, dict[str, Any]]:
    """A channel's fixed answer as a send body and as its stored request, built once per text
    (validating and dumping it for every reply was a tenth of a batch's own CPU)."""
    body = MessageBody(type="text", text=text)
    request = body.model_dump(mode="json", exclude_none=True, include=set(MessageBody.model_fields))
    return body, request


def _reply_row(
    sender: Sender, message: Message, now: datetime, lease_until: datetime | None
) -> dict[str, Any]:
    text = str(sender.channel.config["auto_reply"])
    _, request = _auto_reply_body(text)
    return {
        "id": uuid.uuid4(),
        "workspace_id": sender.channel.workspace_id,
        "conversation_id": sender.conversation_id,
        "channel_id": sender.channel.id,
        "direction": "outbound",
        "type": "text",
        "text": text,
        "content": {"request": dict(request)},  # (a row of its own, whatever is done to it)
        "is_note": False,
        "status": "sending" if lease_until else "queued",
        "lease_until": lease_until,
        # The send marker (`channels.delivery`), committed with the batch: the request
        # leaves right after that commit, from this job. A worker killed in between leaves
        # its batch to the status webhook or `delivery_unknown`, never to a second send.
        "send_attempted_at": now if lease_until else None,
        "attempts": 1 if lease_until else 0,
        "idempotency_key": f"auto:{message.id}",
        # Into the thread the customer wrote in (Slack; None elsewhere).
        "reply_to_provider_id": sender.thread_key or None,
        "sender_user_id": None,
        "edited": False,
        "deleted": False,
        "created_at": now,
        "updated_at": now,
    }
