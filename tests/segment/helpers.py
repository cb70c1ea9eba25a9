"""Contacts written straight into the database, shaped for audience tests (JSON numbers and
booleans the CSV import never makes, conversations with a chosen last inbound time)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botplatform.kit.clock import utcnow
from botplatform.models import Contact, ContactIdentity, Conversation
from botplatform.runtime import Runtime


@dataclass
class Person:
    name: str
    tags: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    opted_out: bool = False
    identities: list[tuple[str, str]] = field(default_factory=list)  # (provider, external_id)
    # (channel id, last inbound time or None)
    conversations: list[tuple[uuid.UUID, datetime | None]] = field(default_factory=list)


async def seed(runtime: Runtime, ws: uuid.UUID, people: list[Person]) -> dict[str, uuid.UUID]:
    """Creates the people as contacts of `ws`; their ids by name."""
    ids: dict[str, uuid.UUID] = {}
    async with runtime.db.unit_of_work(system=True) as db:
        for person in people:
            contact = Contact(
                workspace_id=ws,
                name=person.name,
                tags=person.tags,
                attributes=person.attributes,
                opted_out=person.opted_out,
            )
            db.add(contact)
            await db.flush()
            ids[person.name] = contact.id
            for provider, external_id in person.identities:
                db.add(
                    ContactIdentity(
                        workspace_id=ws,
                        contact_id=contact.id,
                        provider=provider,
                        external_id=external_id,
                    )
                )
            for channel_id, last_inbound in person.conversations:
                db.add(
                    Conversation(
                        workspace_id=ws,
                        contact_id=contact.id,
                        channel_id=channel_id,
                        status="open",
                        last_inbound_at=last_inbound,
                        last_message_at=last_inbound or utcnow(),
                    )
                )
        await db.flush()
    return ids
