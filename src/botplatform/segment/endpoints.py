"""Segments: saved audiences over the workspace's contacts, with live counts.

Reading (list, counts, the sample of contacts) needs `contacts:read`; creating, changing and
deleting a segment needs `broadcasts:send` (an audience exists to be messaged; see
docs/decisions.md)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile, status

from botplatform.audit.dependencies import Audit
from botplatform.authz.dependencies import BroadcastsSend, ContactsManage, ContactsRead
from botplatform.conversation import repository as contacts_repository
from botplatform.db import DbSession
from botplatform.kit.envelope import Envelope, ok
from botplatform.kit.errors import Unprocessable
from botplatform.kit.pagination import Page, PageQuery, paginate
from botplatform.models import Contact, Segment
from botplatform.segment import importer, repository, service
from botplatform.segment.schemas import (
    CountOut,
    SegmentContactOut,
    SegmentCreate,
    SegmentDefinition,
    SegmentOut,
    SegmentUpdate,
)

router = APIRouter(prefix="/workspaces/{ws}", tags=["segments"])


def segment_out(segment: Segment) -> SegmentOut:
    return SegmentOut.model_validate(segment, from_attributes=True)


@router.get("/segments")
async def list_segments(
    access: ContactsRead, db: DbSession, page: PageQuery
) -> Envelope[Page[SegmentOut]]:
    statement = repository.list_statement(access.workspace_id)
    rows, cursor = await paginate(db, statement, Segment.created_at, Segment.id, page)
    return ok(Page(items=[segment_out(r[0]) for r in rows], next_cursor=cursor))


@router.post("/segments", status_code=status.HTTP_201_CREATED)
async def create_segment(
    access: BroadcastsSend, body: SegmentCreate, db: DbSession, audit: Audit
) -> Envelope[SegmentOut]:
    """A saved audience: conditions on tags, attributes, channel and last inbound message,
    combined with `all` or `any`. Opted-out contacts are never in it."""
    segment = await service.create(db, access.workspace_id, body)
    await audit.log(
        "segment.create",
        workspace_id=access.workspace_id,
        target_type="segment",
        target_id=segment.id,
        changes={"name": segment.name, "definition": segment.definition},
    )
    return ok(segment_out(segment), "Segment created")


@router.post("/segments/preview-count")
async def preview_count(
    access: ContactsRead, body: SegmentDefinition, db: DbSession
) -> Envelope[CountOut]:
    """How many contacts an unsaved definition matches now (the editor's live count)."""
    return ok(CountOut(count=await service.count(db, access.workspace_id, body)))


@router.get("/segments/{segment_id}")
async def get_segment(
    access: ContactsRead, segment_id: uuid.UUID, db: DbSession
) -> Envelope[SegmentOut]:
    return ok(segment_out(await repository.get(db, access.workspace_id, segment_id)))


@router.patch("/segments/{segment_id}")
async def update_segment(
    access: BroadcastsSend,
    segment_id: uuid.UUID,
    body: SegmentUpdate,
    db: DbSession,
    audit: Audit,
) -> Envelope[SegmentOut]:
    segment = await repository.get(db, access.workspace_id, segment_id)
    changes = await service.update(db, segment, body)
    if changes:
        await audit.log(
            "segment.update",
            workspace_id=access.workspace_id,
            target_type="segment",
            target_id=segment.id,
            changes=changes,
        )
    return ok(segment_out(segment), "Segment updated")


@router.delete("/segments/{segment_id}")
async def delete_segment(
    access: BroadcastsSend, segment_id: uuid.UUID, db: DbSession, audit: Audit
) -> Envelope[None]:
    segment = await repository.get(db, access.workspace_id, segment_id)
    name = segment.name
    await service.delete(db, segment)
    await audit.log(
        "segment.delete",
        workspace_id=access.workspace_id,
        target_type="segment",
        target_id=segment_id,
        changes={"name": name},
    )
    return ok(None, "Segment deleted")


@router.get("/segments/{segment_id}/count")
async def segment_count(
    access: ContactsRead, segment_id: uuid.UUID, db: DbSession
) -> Envelope[CountOut]:
    """How many contacts the saved segment matches now."""
    definition = await service.resolve_segment(db, access.workspace_id, segment_id)
    return ok(CountOut(count=await service.count(db, access.workspace_id, definition)))


@router.get("/segments/{segment_id}/contacts")
async def segment_contacts(
    access: ContactsRead, segment_id: uuid.UUID, db: DbSession, page: PageQuery
) -> Envelope[Page[SegmentContactOut]]:
    """The segment's contacts now, a page at a time (oldest first)."""
    definition = await service.resolve_segment(db, access.workspace_id, segment_id)
    where = service.condition(db, access.workspace_id, definition)
    statement = repository.contacts(access.workspace_id, where)
    rows, cursor = await paginate(db, statement, Contact.created_at, Contact.id, page)
    known = await contacts_repository.handles(db, access.workspace_id, {r[0].id for r in rows})
    items = [
        SegmentContactOut(
            id=r[0].id,
            name=r[0].name,
            handle=known.get(r[0].id),
            tags=list(r[0].tags or []),
            attributes=dict(r[0].attributes or {}),
        )
        for r in rows
    ]
    return ok(Page(items=items, next_cursor=cursor))


@router.post("/contacts/import", tags=["contacts"])
async def import_contacts(
    access: ContactsManage,
    file: Annotated[UploadFile, File(description="A CSV file with a header row")],
    db: DbSession,
    audit: Audit,
    consent_source: Annotated[
        str,
        Form(
            max_length=30,
            description="Where these contacts gave consent (import, web_form, ...), for rows "
            "without a `consent_source` cell",
        ),
    ] = "import",
) -> Envelope[importer.ImportResult]:
    """Creates or updates contacts from a CSV file: `phone` (required), `name`, `tags`
    (`;` or `|` between them), `opted_out`, `consent_source`, and any other column as an
    attribute. Every row is checked first: if any is bad, the answer is a 422 listing each
    bad row by line number and nothing is imported. A number already known updates its
    contact. Opted-in contacts get a consent ledger entry with their consent source."""
    try:
        source = importer.check_source(consent_source)
    except ValueError as exc:
        raise Unprocessable(str(exc), code="invalid_consent_source") from exc
    data = await file.read(importer.MAX_IMPORT_BYTES + 1)
    rows, lines = importer.parse(data, source)
    result = await importer.write(db, access.workspace_id, rows, lines)
    await audit.log(
        "contact.import",
        workspace_id=access.workspace_id,
        target_type="contact",
        changes={"file": file.filename or "", "consent_source": source, **result.model_dump()},
    )
    return ok(result, f"{result.contacts} contact(s) imported")
