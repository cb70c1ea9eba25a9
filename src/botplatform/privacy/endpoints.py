"""GDPR requests about one contact: export everything the workspace holds, or erase it."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from botplatform.audit import service as audit_service
from botplatform.audit.dependencies import Audit
from botplatform.authz.dependencies import ContactsExport, PrivacyErase
from botplatform.db import DbSession, reads_replica
from botplatform.kit.envelope import Envelope, ok
from botplatform.kit.scoping import enter_workspace
from botplatform.privacy import service
from botplatform.privacy.schemas import ContactExport, ErasureOut
from botplatform.runtime import RuntimeDep

router = APIRouter(prefix="/workspaces/{ws}", tags=["privacy"])


@router.get("/contacts/{contact_id}/export")
@reads_replica
async def export_contact(
    access: ContactsExport,
    contact_id: uuid.UUID,
    db: DbSession,
    audit: Audit,
    runtime: RuntimeDep,
) -> Envelope[ContactExport]:
    """The contact, its identities and consent ledger, its conversations with every message
    (internal notes and statuses included) and its media (short-lived links). A read, but
    an export of personal data: it is audited (`contact.export`)."""
    exported = await service.export(db, access.workspace_id, contact_id, runtime.media_urls)
    # A GET's session is read-only (it may be a replica's): the entry has its own unit of
    # work, committed before the export is handed out.
    async with runtime.db.unit_of_work() as write_db:
        await enter_workspace(write_db, access.workspace_id)
        await audit_service.record(
            write_db,
            audit.actor(),
            "contact.export",
            workspace_id=access.workspace_id,
            target_type="contact",
            target_id=contact_id,
            changes={
                "conversations": len(exported.conversations),
                "messages": sum(len(c.messages) for c in exported.conversations),
            },
        )
    return ok(exported)


@router.delete("/contacts/{contact_id}")
async def erase_contact(
    access: PrivacyErase, contact_id: uuid.UUID, db: DbSession, audit: Audit
) -> Envelope[ErasureOut]:
    """Erases the contact in one transaction: its messages, conversations, identities,
    attributes, consent ledger, bot sessions, automation rows, the domain events (and webhook
    deliveries) naming it and its processed raw webhooks; then its stored media files. The
    audit entry keeps only that an erasure happened, with counts."""
    erasure = await service.erase(db, access.workspace_id, contact_id)
    await audit.log(
        "contact.erase",
        workspace_id=access.workspace_id,
        target_type="contact",
        target_id=contact_id,
        changes={**erasure.counts, "media_files": len(erasure.media_keys)},
    )
    return ok(
        ErasureOut(
            contact_id=contact_id, erased=erasure.counts, media_files=len(erasure.media_keys)
        )
    )
