from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from botplatform.audit.dependencies import Audit
from botplatform.authz.dependencies import TemplatesManage, TemplatesRead
from botplatform.channel import repository as channels
from botplatform.db import DbSession
from botplatform.kit.envelope import Envelope, ok
from botplatform.kit.pagination import Page, PageQuery, paginate
from botplatform.models import MessageTemplate
from botplatform.runtime import RuntimeDep
from botplatform.template import repository, service
from botplatform.template.schemas import PreviewIn, PreviewOut, SyncOut, TemplateCreate, TemplateOut

router = APIRouter(prefix="/workspaces/{ws}", tags=["templates"])


@router.get("/templates")
async def list_templates(
    access: TemplatesRead,
    db: DbSession,
    page: PageQuery,
    channel_id: Annotated[uuid.UUID | None, Query(description="Only this channel's")] = None,
    template_status: Annotated[
        str | None,
        Query(
            alias="status",
            max_length=30,
            description="Only templates in this status (APPROVED, PENDING, REJECTED, …)",
        ),
    ] = None,
) -> Envelope[Page[TemplateOut]]:
    """The WhatsApp message templates of the workspace's channels, oldest first."""
    statement = repository.list_statement(access, channel_id, template_status)
    rows, next_cursor = await paginate(
        db, statement, MessageTemplate.created_at, MessageTemplate.id, page
    )
    return ok(Page(items=[service.to_out(row[0]) for row in rows], next_cursor=next_cursor))


@router.post("/templates", status_code=status.HTTP_201_CREATED)
async def create_template(
    access: TemplatesManage, body: TemplateCreate, db: DbSession, runtime: RuntimeDep, audit: Audit
) -> Envelope[TemplateOut]:
    """Submits a template to WhatsApp for review (`POST /{waba_id}/message_templates`). It
    starts `PENDING`; Meta's status webhook moves it to `APPROVED` or `REJECTED` (with the
    reason) and emits `template.status_changed`. The checks Meta makes on variables and their
    examples are made here first (422); Meta's own refusals answer 409 `template_exists` or
    422 `provider_rejected` with its message."""
    channel = await channels.get(db, access.workspace_id, body.channel_id)
    user_id = access.principal.user.id if access.principal.user else None
    row = await service.create(db, runtime.settings, runtime.http, channel, body, user_id)
    await audit.log(
        "template.create",
        workspace_id=access.workspace_id,
        target_type="template",
        target_id=row.id,
        changes={"name": row.name, "language": row.language, "category": row.category},
    )
    return ok(service.to_out(row), "Template submitted for review")


@router.get("/templates/{template_id}")
async def get_template(
    access: TemplatesRead, template_id: uuid.UUID, db: DbSession
) -> Envelope[TemplateOut]:
    return ok(service.to_out(await repository.get_visible(db, access, template_id)))


@router.delete("/templates/{template_id}")
async def delete_template(
    access: TemplatesManage,
    template_id: uuid.UUID,
    db: DbSession,
    runtime: RuntimeDep,
    audit: Audit,
) -> Envelope[None]:
    """Deletes this language of the template on WhatsApp (`DELETE
    /{waba_id}/message_templates?name=…&hsm_id=…`) and here. Meta keeps the name blocked
    for a while after."""
    row = await repository.get_visible(db, access, template_id)
    channel = await channels.get(db, access.workspace_id, row.channel_id)
    name, language = row.name, row.language
    await service.delete(db, runtime.settings, runtime.http, channel, row)
    await audit.log(
        "template.delete",
        workspace_id=access.workspace_id,
        target_type="template",
        target_id=template_id,
        changes={"name": name, "language": language},
    )
    return ok(None, "Template deleted")


@router.post("/channels/{channel_id}/templates/sync")
async def sync_templates(
    access: TemplatesManage, channel_id: uuid.UUID, db: DbSession, runtime: RuntimeDep, audit: Audit
) -> Envelope[SyncOut]:
    """Reads every template of the channel's WhatsApp Business Account (`GET
    /{waba_id}/message_templates`, page after page): adds the new ones, updates the known
    ones, marks the ones WhatsApp no longer has `DELETED`."""
    channel = await channels.get(db, access.workspace_id, channel_id)
    result = await service.sync(db, runtime.settings, runtime.http, channel)
    await audit.log(
        "template.sync",
        workspace_id=access.workspace_id,
        target_type="channel",
        target_id=channel_id,
        changes=result.model_dump(),
    )
    return ok(result, f"{result.total} template(s) on WhatsApp")


@router.post("/templates/{template_id}/preview")
async def preview_template(
    access: TemplatesRead, template_id: uuid.UUID, body: PreviewIn, db: DbSession, audit: Audit
) -> Envelope[PreviewOut]:
    """The template's text with these values in place (its own example values when none are
    given), the problems that would stop a send with them, and the Graph API components such
    a send carries. Nothing is sent."""
    row = await repository.get_visible(db, access, template_id)
    params = body.params.model_dump(exclude_none=True) if body.params is not None else None
    await audit.log(
        "template.preview",
        workspace_id=access.workspace_id,
        target_type="template",
        target_id=row.id,
    )
    return ok(service.preview(row, params))
