"""Claiming recipients: a batch leased at once, and for each the decision — send it,
hold it (quiet hours), skip it (opted out, a missing variable) or fail it (the policy)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.broadcast import repository
from botplatform.broadcast.driver import Driver, give_way
from botplatform.broadcast.personalise import MissingVariable, Renderer, quiet_until, recipient_zone
from botplatform.channels import policy
from botplatform.conversation.service import CONVERSATION_KEY
from botplatform.events import payloads
from botplatform.events.service import anyone_receives, emit_many
from botplatform.kit import core
from botplatform.kit.clock import utcnow
from botplatform.message.schemas import MessageBody
from botplatform.models import BroadcastRecipient, Contact, Conversation
from botplatform.models.base import table_of

GIVE_WAY_EVERY = 50  # recipients decided between two looks at the event loop


@dataclass(frozen=True)
class Ready:
    recipient_id: uuid.UUID
    contact_id: uuid.UUID
    conversation_id: uuid.UUID
    address: str
    body: MessageBody
    request: dict[str, Any]  # the body as the message row keeps it (content.request)


async def claim(
    db: AsyncSession, driver: Driver, limit: int, lease_until: datetime
) -> list[Ready] | None:
    """Leases a batch (until `lease_until`, the token its mark checks) and decides each
    recipient: ready to send, held by quiet hours, skipped (opted out, a missing variable)
    or failed by the policy. None: nothing due."""
    assert driver.channel is not None
    now = utcnow()
    claimed = await repository.claim(db, driver.ws, driver.broadcast_id, now, lease_until, limit)
    if not claimed:
        return None
    contacts = await _contacts(db, driver.ws, [contact_id for _, contact_id, _ in claimed])
    conversations = await _conversations(db, driver, list(contacts))
    ready: list[Ready] = []
    outcomes: list[dict[str, Any]] = []
    for index, (recipient_id, contact_id, address) in enumerate(claimed):
        if index % GIVE_WAY_EVERY == GIVE_WAY_EVERY - 1:
            await give_way()
        contact = contacts.get(contact_id)
        decision = _decide(driver, now, contact, conversations.get(contact_id), address)
        if isinstance(decision, tuple):
            assert contact is not None
            assert address is not None
            conversation = conversations[contact_id]
            body, request = decision
            ready.append(Ready(recipient_id, contact_id, conversation.id, address, body, request))
        else:
            outcomes.append({"rid": recipient_id, **decision})
    await write_decisions(db, driver, outcomes)
    return ready


def _decide(
    driver: Driver,
    now: datetime,
    contact: Contact | None,
    conversation: Conversation | None,
    address: str | None,
) -> tuple[MessageBody, dict[str, Any]] | dict[str, Any]:
    assert driver.channel is not None
    if contact is None or conversation is None or not address:
        return ended("skipped", "no_address", "The contact has no address on this channel.")
    message = driver.broadcast["message"]
    try:
        policy.check(driver.channel, contact, conversation, message["type"])
    except policy.PolicyRefused as exc:
        status = "skipped" if exc.code == "opted_out" else "failed"
        return ended(status, exc.code, exc.message)
    quiet = driver.broadcast["quiet"]
    if quiet:
        zone = recipient_zone(contact.attributes or {}, address, driver.broadcast["timezone"])
        until = quiet_until(now, zone, quiet[0], quiet[1])
        if until is not None:
            return {"status": "queued", "lease_until": None, "not_before": until,
                    "error_code": None, "error_title": None}  # fmt: skip
    try:
        renderer: Renderer = driver.broadcast.setdefault("renderer", Renderer(message))
        return renderer(contact.name, contact.attributes or {})
    except MissingVariable as exc:
        return ended("skipped", "missing_variable", f"No value for the variable {exc}.")


def ended(status: str, code: str, title: str) -> dict[str, Any]:
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


async def write_decisions(db: AsyncSession, driver: Driver, outcomes: list[dict[str, Any]]) -> None:
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
    """Each contact's conversation on the channel, created (with its event) if missing: their
    one conversation there, not a thread of theirs (a broadcast starts no thread). Created
    with one multi-row INSERT rather than the ORM's flush (an imported audience has none yet:
    a conversation per send, 9% of a bulk worker's time through the ORM); one the customer
    opened meanwhile meets the unique key and is read instead."""
    assert driver.channel is not None
    channel_id = driver.channel.id
    statement = select(Conversation).where(
        Conversation.workspace_id == driver.ws,
        Conversation.channel_id == channel_id,
        Conversation.contact_id.in_(contact_ids),
        Conversation.thread_key == "",
    )
    found = {c.contact_id: c for c in (await db.execute(statement)).scalars()}
    missing = [contact_id for contact_id in contact_ids if contact_id not in found]
    if not missing:
        return found
    now = utcnow()
    rows = [_conversation_row(driver.ws, channel_id, contact_id, now) for contact_id in missing]
    inserted = await core.insert_many(
        db, Conversation, rows, conflict=CONVERSATION_KEY, returning="id"
    )
    won = set(inserted.scalars())
    # Not added to the session: only their ids are used from here on.
    created = [core.instance(Conversation, row) for row in rows if row["id"] in won]
    if len(created) < len(rows):
        found.update({c.contact_id: c for c in (await db.execute(statement)).scalars()})
    if await anyone_receives(db, driver.ws):
        events = [("conversation.created", payloads.conversation_event(c)) for c in created]
        await emit_many(db, driver.ws, events)
    found.update({c.contact_id: c for c in created})
    return found


def _conversation_row(
    ws: uuid.UUID, channel_id: uuid.UUID, contact_id: uuid.UUID, now: datetime
) -> dict[str, Any]:
    """A new conversation, every column set (`core.complete_row`)."""
    row = {
        "id": uuid.uuid4(),
        "workspace_id": ws,
        "channel_id": channel_id,
        "contact_id": contact_id,
        "thread_key": "",
        "status": "open",
        "unread_count": 0,
        "labels": [],
        "created_at": now,
        "updated_at": now,
    }
    return core.complete_row(Conversation, row)
