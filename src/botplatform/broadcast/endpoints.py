from __future__ import annotations

import csv
import io
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from botplatform.audit.dependencies import Audit
from botplatform.authz.dependencies import BroadcastsRead, BroadcastsSend
from botplatform.broadcast import repository, service
from botplatform.broadcast.schemas import (
    BroadcastCreate,
    BroadcastOut,
    BroadcastStart,
    BroadcastStatus,
    RecipientOut,
    RecipientStatus,
    TestSendIn,
)
from botplatform.db import DbSession, reads_replica
from botplatform.kit.envelope import Envelope, ok
from botplatform.kit.pagination import Page, PageQuery, paginate
from botplatform.message.schemas import MessageOut
from botplatform.models import Broadcast, BroadcastRecipient

router = APIRouter(prefix="/workspaces/{ws}", tags=["broadcasts"])
CSV_COLUMNS = (
    "contact_id",
    "address",
    "status",
    "error_code",
    "error_title",
    "message_id",
    "attempts",
    "sent_at",
    "updated_at",
)


def _user_id(access: BroadcastsSend) -> uuid.UUID | None:
    user = access.principal.user
    return user.id if user else None


@router.post("/broadcasts", status_code=status.HTTP_201_CREATED)
async def create_broadcast(
    access: BroadcastsSend, body: BroadcastCreate, db: DbSession, audit: Audit
) -> Envelope[BroadcastOut]:
    """Creates a draft: the message (a WhatsApp template with per-recipient variables, or a
    text), the audience (an uploaded list, or a segment), optional quiet hours. Nothing is
    sent until it is started."""
    row = await service.create(db, access.workspace_id, body, _user_id(access))
    await audit.log(
        "broadcast.create",
        workspace_id=access.workspace_id,
        target_type="broadcast",
        target_id=row.id,
        changes=service.audit_changes(row),
    )
    return ok(service.out(row), "Broadcast created")


@router.get("/broadcasts")
@reads_replica
async def list_broadcasts(
    access: BroadcastsRead,
    db: DbSession,
    page: PageQuery,
    status_: Annotated[BroadcastStatus | None, Query(alias="status")] = None,
) -> Envelope[Page[BroadcastOut]]:
    statement = repository.listing(access.workspace_id, status_)
    rows, cursor = await paginate(db, statement, Broadcast.created_at, Broadcast.id, page)
    return ok(Page(items=[service.out(r[0]) for r in rows], next_cursor=cursor))


@router.get("/broadcasts/{broadcast_id}")
async def get_broadcast(
    access: BroadcastsRead, broadcast_id: uuid.UUID, db: DbSession
) -> Envelope[BroadcastOut]:
    """The broadcast with its progress, counted from the recipient rows: queued, sending,
    sent, delivered, read, failed (by code), skipped (by reason)."""
    row = await repository.get(db, access.workspace_id, broadcast_id)
    return ok(service.out(row, await service.counts(db, row)))


async def _change(
    access: BroadcastsSend,
    db: DbSession,
    audit: Audit,
    broadcast_id: uuid.UUID,
    action: str,
    body: BroadcastStart | None = None,
) -> BroadcastOut:
    row = await repository.lock(db, access.workspace_id, broadcast_id)
    before = row.status
    if action == "start":
        await service.start(db, row, body.scheduled_at if body else None)
    elif action == "pause":
        await service.pause(db, row)
    elif action == "resume":
        await service.resume(db, row)
    else:
        await service.cancel(db, row)
    await audit.log(
        f"broadcast.{action}",
        workspace_id=access.workspace_id,
        target_type="broadcast",
        target_id=row.id,
        changes={
            "status": {"before": before, "after": row.status},
            "scheduled_at": row.scheduled_at.isoformat() if row.scheduled_at else None,
        },
    )
    return service.out(row)


@router.post("/broadcasts/{broadcast_id}/start")
async def start_broadcast(
    access: BroadcastsSend,
    broadcast_id: uuid.UUID,
    db: DbSession,
    audit: Audit,
    body: BroadcastStart | None = None,
) -> Envelope[BroadcastOut]:
    """Starts a draft now, or schedules it (`scheduled_at`; without an offset, the
    workspace's timezone). The plan is checked first: 402 `quota_exceeded` (broadcasts per
    month, recipients per broadcast) and nothing is queued."""
    out = await _change(access, db, audit, broadcast_id, "start", body)
    return ok(out, "Broadcast scheduled" if out.status == "scheduled" else "Broadcast started")


@router.post("/broadcasts/{broadcast_id}/pause")
async def pause_broadcast(
    access: BroadcastsSend, broadcast_id: uuid.UUID, db: DbSession, audit: Audit
) -> Envelope[BroadcastOut]:
    """Stops sending within a few messages; unsent recipients wait. 409 `broadcast_state`
    unless running or scheduled."""
    return ok(await _change(access, db, audit, broadcast_id, "pause"), "Broadcast paused")


@router.post("/broadcasts/{broadcast_id}/resume")
async def resume_broadcast(
    access: BroadcastsSend, broadcast_id: uuid.UUID, db: DbSession, audit: Audit
) -> Envelope[BroadcastOut]:
    """Goes on where it stopped (no recipient twice). 409 unless paused."""
    return ok(await _change(access, db, audit, broadcast_id, "resume"), "Broadcast resumed")


@router.post("/broadcasts/{broadcast_id}/cancel")
async def cancel_broadcast(
    access: BroadcastsSend, broadcast_id: uuid.UUID, db: DbSession, audit: Audit
) -> Envelope[BroadcastOut]:
    """Stops it for good; unsent recipients end `skipped` with reason `cancelled`."""
    return ok(await _change(access, db, audit, broadcast_id, "cancel"), "Broadcast cancelled")


@router.post("/broadcasts/{broadcast_id}/test-send", status_code=status.HTTP_201_CREATED)
async def test_send(
    access: BroadcastsSend,
    broadcast_id: uuid.UUID,
    body: TestSendIn,
    db: DbSession,
    audit: Audit,
) -> Envelope[MessageOut]:
    """Sends the broadcast's message to one number now, filled in as for that contact
    (its attributes, else the defaults): an ordinary outbound message."""
    row = await repository.get(db, access.workspace_id, broadcast_id)
    message = await service.test_send(db, row, body.to)
    await audit.log(
        "broadcast.test_send",
        workspace_id=access.workspace_id,
        target_type="broadcast",
        target_id=row.id,
        changes={"to": body.to, "message_id": str(message.id)},
    )
    return ok(MessageOut.model_validate(message, from_attributes=True), "Test message queued")


@router.get("/broadcasts/{broadcast_id}/recipients")
@reads_replica
async def list_recipients(
    access: BroadcastsRead,
    broadcast_id: uuid.UUID,
    db: DbSession,
    page: PageQuery,
    status_: Annotated[RecipientStatus | None, Query(alias="status")] = None,
    error_code: Annotated[str | None, Query(max_length=50)] = None,
) -> Envelope[Page[RecipientOut]]:
    """One row per recipient, filtered by status and/or error code (a failure's code, or
    a skip's reason: `opted_out`, `no_address`, `missing_variable`, `cancelled`)."""
    await repository.get(db, access.workspace_id, broadcast_id)
    statement = repository.recipients(access.workspace_id, broadcast_id, status_, error_code)
    rows, cursor = await paginate(
        db, statement, BroadcastRecipient.created_at, BroadcastRecipient.id, page
    )
    items = [RecipientOut.model_validate(r[0], from_attributes=True) for r in rows]
    return ok(Page(items=items, next_cursor=cursor))


@router.get(
    "/broadcasts/{broadcast_id}/recipients/export",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "The recipients as CSV"}},
)
@reads_replica
async def export_recipients(
    access: BroadcastsRead,
    broadcast_id: uuid.UUID,
    db: DbSession,
    status_: Annotated[RecipientStatus | None, Query(alias="status")] = None,
    error_code: Annotated[str | None, Query(max_length=50)] = None,
) -> Response:
    """The recipient list as CSV (same filters as the list)."""
    await repository.get(db, access.workspace_id, broadcast_id)
    statement = repository.recipients(access.workspace_id, broadcast_id, status_, error_code)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in (await db.execute(statement.order_by(BroadcastRecipient.id))).scalars():
        writer.writerow(
            ["" if getattr(row, c) is None else _cell(getattr(row, c)) for c in CSV_COLUMNS]
        )
    name = f"broadcast-{broadcast_id}-recipients.csv"
    return Response(
        buffer.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _cell(value: object) -> str:
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    # A cell starting like a formula is not run by a spreadsheet.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
