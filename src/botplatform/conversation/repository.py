from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, func, literal, or_, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import SessionTransaction

from botplatform.kit.errors import NotFound
from botplatform.kit.phone import phone_digits
from botplatform.kit.scoping import ChannelReader, scoped, visible
from botplatform.models import (
    BotSession,
    ConsentEvent,
    Contact,
    ContactIdentity,
    Conversation,
    Message,
)


async def get_conversation(
    db: AsyncSession, reader: ChannelReader, conversation_id: uuid.UUID
) -> Conversation:
    """The conversation if `reader` sees it: 404 for another workspace's and, for an agent,
    for one of a channel it is not assigned to."""
    statement = visible(Conversation, reader).where(Conversation.id == conversation_id)
    found = (await db.execute(statement)).scalar_one_or_none()
    if found is None:
        raise NotFound("Conversation not found.", code="conversation_not_found")
    return found


async def get_message(db: AsyncSession, reader: ChannelReader, message_id: uuid.UUID) -> Message:
    """The message if `reader` sees its channel: 404 for another workspace's and, for an
    agent, for one of a channel it is not assigned to."""
    statement = visible(Message, reader).where(Message.id == message_id)
    found = (await db.execute(statement)).scalar_one_or_none()
    if found is None:
        raise NotFound("Message not found.", code="message_not_found")
    return found


async def get_contact(db: AsyncSession, ws: uuid.UUID, contact_id: uuid.UUID) -> Contact:
    found = (
        await db.execute(scoped(Contact, ws).where(Contact.id == contact_id))
    ).scalar_one_or_none()
    if found is None:
        raise NotFound("Contact not found.", code="contact_not_found")
    return found


def conversations(
    reader: ChannelReader,
    status: str | None,
    channel_id: uuid.UUID | None,
    assignee_id: uuid.UUID | None,
    label: str | None = None,
    *,
    dialect: str = "sqlite",
) -> Select[Any]:
    statement = visible(Conversation, reader)
    if status:
        statement = statement.where(Conversation.status == status)
    if channel_id:
        statement = statement.where(Conversation.channel_id == channel_id)
    if assignee_id:
        statement = statement.where(Conversation.assignee_id == assignee_id)
    if label:
        statement = statement.where(_has_label(label, dialect))
    return statement


def _has_label(label: str, dialect: str) -> ColumnElement[bool]:
    """Carries this exact label (`labels` is a JSON list of strings)."""
    if dialect == "postgresql":
        contains: ColumnElement[bool] = Conversation.labels.cast(JSONB).contains([label])
        return contains
    elements = func.json_each(Conversation.labels).table_valued("value")
    return exists(select(literal(1)).select_from(elements).where(elements.c.value == label))


def messages(ws: uuid.UUID, conversation_id: uuid.UUID) -> Select[Any]:
    return scoped(Message, ws).where(Message.conversation_id == conversation_id)


def contacts(ws: uuid.UUID, search: str | None) -> Select[Any]:
    """Contacts whose name contains `search`, or whose number it is (typed any usual way)."""
    statement = scoped(Contact, ws)
    if search:
        matches: ColumnElement[bool] = Contact.name.ilike(f"%{search}%")
        digits = phone_digits(search)
        if digits is not None:
            numbers = (
                scoped(ContactIdentity, ws)
                .where(ContactIdentity.external_id == digits)
                .with_only_columns(ContactIdentity.contact_id)
            )
            matches = or_(matches, Contact.id.in_(numbers))
        statement = statement.where(matches)
    return statement


async def identities(
    db: AsyncSession, ws: uuid.UUID, contact_id: uuid.UUID
) -> list[ContactIdentity]:
    statement = scoped(ContactIdentity, ws).where(ContactIdentity.contact_id == contact_id)
    return list((await db.execute(statement)).scalars())


def handle(provider: str, external_id: str) -> str:
    """How people write a contact's address: a WhatsApp id is a phone number."""
    return f"+{external_id}" if provider == "whatsapp" and external_id.isdigit() else external_id


async def handles(
    db: AsyncSession, ws: uuid.UUID, contact_ids: set[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """Each contact's number or handle (its oldest identity), in one query, so two
    customers of the same name can be told apart."""
    if not contact_ids:
        return {}
    statement = (
        scoped(ContactIdentity, ws)
        .where(ContactIdentity.contact_id.in_(contact_ids))
        .order_by(ContactIdentity.created_at, ContactIdentity.id)
    )
    found: dict[uuid.UUID, str] = {}
    for identity in (await db.execute(statement)).scalars():
        found.setdefault(identity.contact_id, handle(identity.provider, identity.external_id))
    return found


async def consent(db: AsyncSession, ws: uuid.UUID, contact_id: uuid.UUID) -> list[ConsentEvent]:
    statement = (
        scoped(ConsentEvent, ws)
        .where(ConsentEvent.contact_id == contact_id)
        .order_by(ConsentEvent.created_at)
    )
    return list((await db.execute(statement)).scalars())


async def recipient_of(
    db: AsyncSession, ws: uuid.UUID, contact_id: uuid.UUID, provider: str
) -> str:
    """The contact's id on a provider: whom a send or an action on its channel goes to."""
    identity = (
        await db.execute(
            scoped(ContactIdentity, ws).where(
                ContactIdentity.contact_id == contact_id, ContactIdentity.provider == provider
            )
        )
    ).scalar_one()
    return identity.external_id


# -- conversations whose row the transaction holds ---------------------------------------------

_LOCKED = "botplatform.locked_conversations"


def remember_locked(
    db: AsyncSession, conversation_id: uuid.UUID, bot_session: BotSession | None = None
) -> None:
    """The session's current transaction holds `conversation_id`'s row lock (read `FOR
    UPDATE`, or inserted by it: nobody else sees that row before the commit), so a later
    lock of it in this transaction costs no query (`locked_here`). `bot_session`: the
    conversation's bot session, read with the lock (`bot_session_locked`). PostgreSQL only:
    SQLite has no row locks, and its reads keep what they did."""
    if db.get_bind().dialect.name != "postgresql":
        return
    transaction = _innermost(db)
    if transaction is None:
        return
    root, held = db.info.get(_LOCKED, (None, {}))
    if root is not _root(transaction):  # a new transaction: what the last one held is gone
        root, held = _root(transaction), {}
        db.info[_LOCKED] = (root, held)
    held[conversation_id] = (transaction, bot_session)


def bot_session_locked(db: AsyncSession, conversation_id: uuid.UUID) -> BotSession | None:
    """The conversation's bot session when it was read with the conversation's lock, which
    this transaction still holds (bot steps take that lock first: a second read would see
    the same row). None when it was not read so, or did not exist then: ask the database."""
    if not locked_here(db, conversation_id):
        return None
    _, held = db.info[_LOCKED]
    return held[conversation_id][1]  # type: ignore[no-any-return]


def locked_here(db: AsyncSession, conversation_id: uuid.UUID) -> bool:
    """True when the current transaction (or one it is nested in) locked the row and is still
    open: a savepoint rolled back since gave its locks back, and a commit ends them all."""
    _, held = db.info.get(_LOCKED, (None, {}))
    locker = held.get(conversation_id, (None, None))[0]
    transaction = _innermost(db)
    if locker is None or transaction is None or not locker.is_active:
        return False
    while transaction is not None:
        if transaction is locker:
            return True
        transaction = transaction.parent
    return False


def _innermost(db: AsyncSession) -> SessionTransaction | None:
    session = db.sync_session
    return session.get_nested_transaction() or session.get_transaction()


def _root(transaction: SessionTransaction) -> SessionTransaction:
    while transaction.parent is not None:
        transaction = transaction.parent
    return transaction
