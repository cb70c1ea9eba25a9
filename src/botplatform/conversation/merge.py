"""Two contacts that are one person (e.g. the same customer on WhatsApp and on Messenger)
become one: the kept contact takes the other's channel identities, conversations, consent
ledger, tags and attributes; the other is deleted. Flushes, never commits."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.events import payloads
from botplatform.events.service import emit
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import Conflict, Unprocessable
from botplatform.kit.scoping import scoped
from botplatform.models import ConsentEvent, Contact, ContactIdentity, Conversation
from botplatform.models.automation import AutomationEvent


async def _channels_of(db: AsyncSession, ws: uuid.UUID, contact_id: uuid.UUID) -> set[uuid.UUID]:
    rows = await db.execute(scoped(Conversation, ws).where(Conversation.contact_id == contact_id))
    return {conversation.channel_id for conversation in rows.scalars()}


async def _providers_of(db: AsyncSession, ws: uuid.UUID, contact_id: uuid.UUID) -> set[str]:
    rows = await db.execute(
        scoped(ContactIdentity, ws).where(ContactIdentity.contact_id == contact_id)
    )
    return {identity.provider for identity in rows.scalars()}


async def merge(db: AsyncSession, keep: Contact, other: Contact) -> dict[str, Any]:
    """Moves everything of `other` onto `keep`; answers what moved (for the audit log)."""
    if keep.id == other.id:
        raise Unprocessable("A contact cannot be merged with itself.", code="same_contact")
    ws = keep.workspace_id
    providers = await _providers_of(db, ws, keep.id) & await _providers_of(db, ws, other.id)
    if providers:
        # A send picks the contact's one identity on its channel's provider.
        raise Conflict(
            "Both contacts have an identity on the same provider: keep them apart.",
            code="contacts_share_a_provider",
            details={"providers": sorted(providers)},
        )
    shared = await _channels_of(db, ws, keep.id) & await _channels_of(db, ws, other.id)
    if shared:
        # Two people on one channel (two Page-scoped ids of one Page) are two people.
        raise Conflict(
            "Both contacts talk on the same channel: they are two people there.",
            code="contacts_share_a_channel",
            details={"channel_ids": sorted(str(c) for c in shared)},
        )
    for model in (ContactIdentity, Conversation, ConsentEvent, AutomationEvent):
        await db.execute(
            update(model)
            .where(model.workspace_id == ws, model.contact_id == other.id)
            .values(contact_id=keep.id)
        )
    keep.tags = sorted(set(keep.tags or []) | set(other.tags or []))
    keep.attributes = {**(other.attributes or {}), **(keep.attributes or {})}
    keep.opted_out = keep.opted_out or other.opted_out
    if keep.name in ("", None) and other.name:
        keep.name = other.name
    keep.updated_at = utcnow()
    await db.execute(delete(Contact).where(Contact.workspace_id == ws, Contact.id == other.id))
    await db.flush()
    await emit(db, ws, "contact.updated", payloads.contact_event(keep, ["identities"]))
    return {"merged_contact_id": str(other.id)}
