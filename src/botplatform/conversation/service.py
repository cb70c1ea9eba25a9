"""Contacts, conversations and messages as inbound events arrive. Flushes, never commits."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.analytics import cycles
from botplatform.automation import events as automation_events
from botplatform.channels import profile as profiles
from botplatform.channels.base import ChannelInfo
from botplatform.channels.messages import (
    MEDIA_TYPES,
    STATUS_RANK,
    Content,
    DeliveryStatus,
    InboundMessage,
    MessageDeleted,
    MessageEcho,
    MessageEdited,
    Watermark,
)
from botplatform.conversation import repository as conversation_repository
from botplatform.conversation.consent import consent_keyword
from botplatform.conversation.statuses import TIME_FIELDS
from botplatform.events import payloads
from botplatform.events.service import emit, emit_message
from botplatform.kit import core, metrics
from botplatform.kit.clock import utcnow
from botplatform.kit.scoping import scoped
from botplatform.models import (
    ConsentEvent,
    Contact,
    ContactIdentity,
    Conversation,
    Message,
)

#: A channel identity's unique key: one contact per number (or user id) per provider.
IDENTITY_KEY = ["workspace_id", "provider", "external_id"]
#: A conversation's unique key: one per contact, channel and thread ("" outside threads).
CONVERSATION_KEY = ["channel_id", "contact_id", "thread_key"]


def content_json(content: Content) -> dict[str, Any]:
    """The content as the JSON column stores it. What `dataclasses.asdict` gives, without
    its deep copy of every value (a fifth of storing an inbound message): the values are
    stored, never changed in place."""
    plain: dict[str, Any] = _plain(content)
    return plain


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


async def contact_for(
    db: AsyncSession,
    channel: ChannelInfo,
    external_id: str,
    name: str | None,
    *,
    inbound: bool = False,
) -> Contact:
    """The contact behind a channel identity, created on first contact; the profile name is
    kept up to date (customers change it)."""
    ws = channel.workspace_id
    found = await _identified(db, channel, external_id)
    if found is None:
        created = await _create_contact(db, channel, external_id, name)
        if created is not None:
            return created
        # Another transaction created this identity between our read and our insert.
        found = await _identified(db, channel, external_id)
        if found is None:
            raise RuntimeError(f"identity {external_id} neither made nor found")
    identity, contact = found
    if name and identity.profile_name != name:
        if contact.name in ("", identity.profile_name, external_id):
            contact.name = name
            contact.updated_at = utcnow()
            await emit(db, ws, "contact.updated", payloads.contact_event(contact, ["name"]))
        identity.profile_name = name
    if inbound:  # Messenger/Instagram: the customer wrote again, a day-old profile is re-read
        profiles.refresh_if_stale(db, channel, external_id, identity.profile_fetched_at)
    return contact


async def _identified(
    db: AsyncSession, channel: ChannelInfo, external_id: str
) -> tuple[ContactIdentity, Contact] | None:
    """The channel identity and its contact, in one read (every inbound message asks)."""
    ws = channel.workspace_id
    statement = (
        scoped(ContactIdentity, ws)
        .add_columns(Contact)
        .join(Contact, (Contact.id == ContactIdentity.contact_id) & (Contact.workspace_id == ws))
        .where(
            ContactIdentity.provider == channel.provider,
            ContactIdentity.external_id == external_id,
        )
    )
    row = (await db.execute(statement)).one_or_none()
    return (row[0], row[1]) if row is not None else None


async def _create_contact(
    db: AsyncSession, channel: ChannelInfo, external_id: str, name: str | None
) -> Contact | None:
    """Inserts a contact with its identity (one round trip on PostgreSQL, `core.together`),
    or answers None when a concurrent transaction (an inbound message and an API send to the
    same new number) inserted that identity first: the identity's unique key decides, our
    contact is removed again, and the caller reads theirs instead of failing on the clash."""
    ws = channel.workspace_id
    await db.flush()  # what was pending before is written first
    now = utcnow()
    contact_row = core.complete_row(
        Contact, {"id": uuid.uuid4(), "workspace_id": ws, "name": name or external_id}
    )
    identity_row = core.complete_row(
        ContactIdentity,
        {
            "workspace_id": ws,
            "contact_id": contact_row["id"],
            "provider": channel.provider,
            "external_id": external_id,
            "profile_name": name,
            "created_at": now,
            "updated_at": now,
        },
    )
    _, won = await core.together(
        db,
        [
            core.inserting(db, Contact, [contact_row]),
            core.inserting(
                db, ContactIdentity, [identity_row], conflict=IDENTITY_KEY, returning="id"
            ),
        ],
    )
    if not won:
        lost = delete(Contact).where(Contact.workspace_id == ws, Contact.id == contact_row["id"])
        await core.run(db, lost)
        return None
    contact = core.as_loaded(db, Contact, contact_row)
    core.as_loaded(db, ContactIdentity, identity_row)
    await emit(db, ws, "contact.created", payloads.contact_event(contact))
    profiles.queue_fetch(db, channel, external_id)  # Messenger/Instagram: name and picture
    await automation_events.record(
        db, ws, automation_events.CONTACT_CREATED, contact_id=contact.id, channel_id=channel.id
    )
    return contact


async def conversation_for(
    db: AsyncSession,
    channel: ChannelInfo,
    contact: Contact,
    thread_key: str = "",
    *,
    lock: bool = False,
) -> Conversation:
    """The contact's conversation on the channel (of one thread of theirs, on a channel
    with threads), created if missing. `lock`: its row is locked by this very read (`FOR
    UPDATE` on PostgreSQL) and remembered so (`repository.locked_here`): a bot's step later
    in the transaction, which needs the lock, takes no second query for it."""
    statement = scoped(Conversation, channel.workspace_id).where(
        Conversation.channel_id == channel.id,
        Conversation.contact_id == contact.id,
        Conversation.thread_key == thread_key,
    )
    if lock:
        # After a wait for the lock, the row as the other transaction left it. Its bot
        # session is not joined to this read: a joined row would be given as it was before
        # the wait (read committed), not as that transaction moved it on; the bot's step
        # reads it afterwards.
        statement = statement.with_for_update().execution_options(populate_existing=True)
    found = (await db.execute(statement)).scalar_one_or_none()
    if found is None:
        found = Conversation(
            id=uuid.uuid4(),
            workspace_id=channel.workspace_id,
            channel_id=channel.id,
            contact_id=contact.id,
            thread_key=thread_key,
            status="open",
            unread_count=0,
        )
        db.add(found)
        await db.flush()
        await emit(
            db, channel.workspace_id, "conversation.created", payloads.conversation_event(found)
        )
        await automation_events.record(
            db,
            channel.workspace_id,
            automation_events.CONVERSATION_CREATED,
            conversation_id=found.id,
            contact_id=contact.id,
            channel_id=channel.id,
        )
    if lock:
        conversation_repository.remember_locked(db, found.id)
    return found


async def set_status(db: AsyncSession, conversation: Conversation, status: str) -> None:
    """Moves the conversation to `status`; resolving it is an automation event."""
    previous, conversation.status = conversation.status, status
    if status == "resolved" and previous != "resolved":
        await cycles.close_cycle(db, conversation.workspace_id, conversation.id)
        await automation_events.record(
            db,
            conversation.workspace_id,
            automation_events.CONVERSATION_RESOLVED,
            conversation_id=conversation.id,
            contact_id=conversation.contact_id,
            channel_id=conversation.channel_id,
        )


async def find_message(db: AsyncSession, channel: ChannelInfo, provider_id: str) -> Message | None:
    statement = scoped(Message, channel.workspace_id).where(
        Message.channel_id == channel.id, Message.provider_message_id == provider_id
    )
    return (await db.execute(statement)).scalar_one_or_none()


async def record_consent(
    db: AsyncSession,
    contact: Contact,
    action: str,
    source: str,
    channel_id: uuid.UUID | None,
    detail: str | None,
) -> None:
    changed = contact.opted_out != (action == "opt_out")
    contact.opted_out = action == "opt_out"
    if changed:
        contact.updated_at = utcnow()
        await emit(
            db,
            contact.workspace_id,
            "contact.updated",
            payloads.contact_event(contact, ["opted_out"]),
        )
    db.add(
        ConsentEvent(
            workspace_id=contact.workspace_id,
            contact_id=contact.id,
            action=action,
            source=source,
            channel_id=channel_id,
            detail=(detail or "")[:500],
        )
    )
    await db.flush()


async def opt_out_blocked(
    db: AsyncSession,
    workspace_id: uuid.UUID,
    contact_ids: list[uuid.UUID],
    channel_id: uuid.UUID,
    reason: str,
) -> None:
    """Contacts a provider said blocked the channel (a send refused `recipient_blocked`):
    opted out in the consent ledger, so nothing else is queued to them."""
    for contact_id in dict.fromkeys(contact_ids):
        contact = await db.get(Contact, contact_id)
        if contact is not None and contact.workspace_id == workspace_id and not contact.opted_out:
            await record_consent(db, contact, "opt_out", "provider", channel_id, reason)


#: A provider's message is stored once per channel: a redelivery meets this unique key.
MESSAGE_KEY = ["channel_id", "provider_message_id"]


def inbound_row(
    channel: ChannelInfo, conversation_id: uuid.UUID, event: InboundMessage, now: datetime
) -> dict[str, Any]:
    """Every column of a customer's new message (the batch inserts many at once)."""
    content = event.content
    return {
        "id": uuid.uuid4(),
        "workspace_id": channel.workspace_id,
        "conversation_id": conversation_id,
        "channel_id": channel.id,
        "direction": "inbound",
        "type": content.type.value,
        "text": content.text or (content.media.caption if content.media else None),
        "content": {
            **content_json(content),
            "forwarded": event.forwarded,
            "referral": event.referral,
            "raw": event.raw,
        },
        "is_note": False,
        "provider_message_id": event.provider_message_id,
        "reply_to_provider_id": event.reply_to,
        "status": "received",
        "attempts": 0,
        "media_status": "pending" if content.type in MEDIA_TYPES else None,
        "edited": False,
        "deleted": False,
        "created_at": event.timestamp,
        "updated_at": now,
    }


async def record_inbound(
    db: AsyncSession, channel: ChannelInfo, event: InboundMessage, *, lock: bool = False
) -> Message | None:
    """Stores an inbound message once (providers redeliver); None for a duplicate. `lock`
    (a live bot serves the channel): the conversation is locked at its first read."""
    contact = await contact_for(db, channel, event.sender_id, event.sender_name, inbound=True)
    conversation = await conversation_for(db, channel, contact, event.thread or "", lock=lock)
    row = inbound_row(channel, conversation.id, event, utcnow())
    message = await core.insert_loaded(db, Message, row, conflict=MESSAGE_KEY)
    if message is None:
        return None
    conversation.last_inbound_at = max(
        conversation.last_inbound_at or event.timestamp, event.timestamp
    )
    conversation.last_message_at = utcnow()
    conversation.unread_count += 1
    if conversation.status == "resolved":
        conversation.status = "open"
    keyword = consent_keyword(event.content.text)
    if keyword and (keyword == "opt_out") != contact.opted_out:
        await record_consent(db, contact, keyword, "keyword", channel.id, event.content.text)
    # The conversation's new values are not flushed here: a reply decided in this transaction
    # moves it again, and one UPDATE takes both (at the next flush; the channel batch flushes
    # before its last writes). Every ORM read flushes first, so nothing reads them stale.
    opening = cycles.Opening(conversation.id, channel.id, message.created_at)
    await cycles.open_cycles(db, channel.workspace_id, [opening])
    metrics.count_messages(channel.workspace_id, "inbound")
    await emit_message(db, "message.received", message)
    await automation_events.message_received(db, message, contact.id)
    return message


async def apply_edit(db: AsyncSession, channel: ChannelInfo, event: MessageEdited) -> bool:
    message = await find_message(db, channel, event.provider_message_id)
    if message is None:
        return False
    message.edited = True
    message.text = event.content.text or (
        event.content.media.caption if event.content.media else message.text
    )
    message.content = {**message.content, "edited_to": content_json(event.content)}
    return True


async def apply_delete(db: AsyncSession, channel: ChannelInfo, event: MessageDeleted) -> bool:
    result = await db.execute(
        update(Message)
        .where(
            Message.workspace_id == channel.workspace_id,
            Message.channel_id == channel.id,
            Message.provider_message_id == event.provider_message_id,
        )
        .values(deleted=True, text=None)
    )
    return bool(getattr(result, "rowcount", 0))


async def record_echo(db: AsyncSession, channel: ChannelInfo, echo: MessageEcho) -> Message | None:
    """A message the Page sent from outside the platform (Meta's inbox, another app):
    recorded as outbound and sent, never answered. An echo of our own send (its metadata is
    our row's id, or its id is known) only teaches us the provider id."""
    if await find_message(db, channel, echo.provider_message_id) is not None:
        return None
    ours = _uuid(echo.raw.get("message", {}).get("metadata"))
    if ours is not None:
        row = await db.get(Message, ours)
        if row is not None and row.workspace_id == channel.workspace_id:
            row.provider_message_id = row.provider_message_id or echo.provider_message_id
            return None
    contact = await contact_for(db, channel, echo.recipient_id, None)
    conversation = await conversation_for(db, channel, contact)
    content = echo.content
    message = Message(
        workspace_id=channel.workspace_id,
        conversation_id=conversation.id,
        channel_id=channel.id,
        direction="outbound",
        type=content.type.value,
        text=content.text or (content.media.caption if content.media else None),
        content={**content_json(content), "echo": True, "app_id": echo.app_id, "raw": echo.raw},
        provider_message_id=echo.provider_message_id,
        status=DeliveryStatus.SENT.value,
        sent_at=echo.timestamp,
        attempts=0,
        created_at=echo.timestamp,
    )
    db.add(message)
    conversation.last_message_at = utcnow()
    await db.flush()
    await emit_message(db, "message.sent", message)
    return message


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


#: Our `sent_at` is taken when the provider answered, a moment after its own timestamp.
WATERMARK_SKEW = timedelta(seconds=2)


async def apply_watermark(db: AsyncSession, channel: ChannelInfo, mark: Watermark) -> int:
    """Every outbound message to this contact on this channel sent up to the watermark (and
    any the receipt names) moves forward to delivered or read — never backwards."""
    conversation_ids = (
        select(Conversation.id)
        .join(ContactIdentity, ContactIdentity.contact_id == Conversation.contact_id)
        .where(
            Conversation.workspace_id == channel.workspace_id,
            Conversation.channel_id == channel.id,
            ContactIdentity.workspace_id == channel.workspace_id,
            ContactIdentity.provider == channel.provider,
            ContactIdentity.external_id == mark.recipient_id,
        )
    )
    lower = [
        s.value for s in STATUS_RANK if STATUS_RANK[s] and STATUS_RANK[s] < STATUS_RANK[mark.status]
    ]
    covered = Message.sent_at <= mark.watermark + WATERMARK_SKEW
    if mark.provider_message_ids:
        covered = covered | Message.provider_message_id.in_(mark.provider_message_ids)
    statement = scoped(Message, channel.workspace_id).where(
        Message.channel_id == channel.id,
        Message.conversation_id.in_(conversation_ids),
        Message.direction == "outbound",
        Message.status.in_(lower),
        covered,
    )
    moved = list((await db.execute(statement.with_for_update())).scalars())
    for message in moved:
        message.status = mark.status.value
        for status, field in TIME_FIELDS.items():
            if STATUS_RANK[mark.status] >= STATUS_RANK[status] and getattr(message, field) is None:
                setattr(message, field, mark.watermark)
    await db.flush()
    for message in moved:
        await emit_message(db, "message.status_updated", message)
    return len(moved)
