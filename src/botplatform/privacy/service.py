"""Export everything about one contact; erase a contact in one transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.conversation import repository as conversations
from botplatform.conversation.schemas import ConsentOut, ContactOut, IdentityOut
from botplatform.kit.clock import utcnow
from botplatform.media.storage import SignedMediaUrls
from botplatform.message.schemas import MessageOut
from botplatform.privacy import repository
from botplatform.privacy.schemas import ContactExport, ConversationExport, MediaRef
from botplatform.worker.jobs import enqueue

DELETE_MEDIA_JOB = "privacy.delete_media"


async def export(
    db: AsyncSession, ws: uuid.UUID, contact_id: uuid.UUID, urls: SignedMediaUrls
) -> ContactExport:
    contact = await conversations.get_contact(db, ws, contact_id)
    out = ContactOut.model_validate(contact, from_attributes=True)
    out.identities = [
        IdentityOut.of(i, urls) for i in await conversations.identities(db, ws, contact.id)
    ]
    out.consent = [
        ConsentOut.model_validate(c, from_attributes=True)
        for c in await conversations.consent(db, ws, contact.id)
    ]
    threads = await repository.conversations(db, ws, contact.id)
    rows = await repository.messages(db, ws, [c.id for c in threads])
    by_conversation: dict[uuid.UUID, list[MessageOut]] = {c.id: [] for c in threads}
    media: list[MediaRef] = []
    for row in rows:
        message = MessageOut.model_validate(row, from_attributes=True)
        if row.media_key:
            message.media_url = urls.url_for(row.media_key)
            media.append(
                MediaRef(
                    message_id=row.id,
                    key=row.media_key,
                    mime=row.media_mime,
                    status=row.media_status,
                    url=message.media_url,
                )
            )
        by_conversation[row.conversation_id].append(message)
    return ContactExport(
        exported_at=utcnow(),
        workspace_id=ws,
        contact=out,
        conversations=[
            ConversationExport.model_validate(
                {
                    **{
                        name: getattr(c, name)
                        for name in ConversationExport.model_fields
                        if name != "messages"
                    },
                    "messages": by_conversation[c.id],
                }
            )
            for c in threads
        ],
        media=media,
    )


@dataclass(frozen=True)
class Erasure:
    counts: dict[str, int]
    media_keys: list[str]


async def erase(db: AsyncSession, ws: uuid.UUID, contact_id: uuid.UUID) -> Erasure:
    """Removes the contact and every row about it; the stored files no other message of the
    workspace uses are removed by a job once this transaction has committed."""
    contact = await conversations.get_contact(db, ws, contact_id)
    identities = await conversations.identities(db, ws, contact.id)
    threads = await repository.conversations(db, ws, contact.id)
    conversation_ids = [c.id for c in threads]
    rows = await repository.messages(db, ws, conversation_ids)
    avatars = {i.profile_picture_key for i in identities if i.profile_picture_key}
    keys = sorted({m.media_key for m in rows if m.media_key} | avatars)
    counts = await repository.erase(
        db, ws, contact, conversation_ids, [i.external_id for i in identities]
    )
    for loaded in [contact, *identities, *threads, *rows]:
        db.expunge(loaded)  # deleted: they must not linger in the session's identity map
    orphaned = sorted(set(keys) - await repository.media_in_use(db, ws, keys))
    if orphaned:
        enqueue(db, DELETE_MEDIA_JOB, str(ws), *orphaned)
    return Erasure(counts, orphaned)
