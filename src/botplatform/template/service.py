"""WhatsApp message templates: created, listed and deleted through the Graph API, kept in step
by sync and by Meta's template webhooks, and checked before a template message is queued.
Flushes, never commits."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.channels.base import ChannelInfo
from botplatform.channels.messages import SystemEvent
from botplatform.channels.policy import PolicyRefused
from botplatform.config import Settings
from botplatform.events import service as events
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import Conflict
from botplatform.kit.logging import get_logger
from botplatform.models import MessageTemplate
from botplatform.template import repository
from botplatform.template.graph import GraphRequest
from botplatform.template.schemas import PreviewOut, SyncOut, TemplateCreate, TemplateOut
from botplatform.template.variables import (
    build_components,
    example_params,
    params_from_components,
    render,
    slots,
    validate_variables,
)

log = get_logger(__name__)
STATUS_CHANGED = "template.status_changed"
DELETED = "DELETED"
#: Meta's webhook `event` values that are a status; the others (e.g. PENDING_DELETION,
#: FLAGGED, REINSTATED) map to one or are kept as they come.
EVENT_STATUS = {"REINSTATED": "APPROVED", "FLAGGED": "APPROVED"}


def to_out(row: MessageTemplate) -> TemplateOut:
    found = slots(row.components)
    return TemplateOut(
        id=row.id,
        channel_id=row.channel_id,
        provider_template_id=row.provider_template_id,
        name=row.name,
        language=row.language,
        category=row.category,
        status=row.status,
        rejected_reason=row.rejected_reason,
        quality_score=row.quality_score,
        parameter_format=row.parameter_format,
        components=row.components,
        variables={
            "header_format": found.header_format,
            "header": found.header,
            "body": found.body,
            "buttons": {str(i): names for i, (_kind, names) in found.buttons.items() if names},
        },
        status_updated_at=row.status_updated_at,
        synced_at=row.synced_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def event_data(row: MessageTemplate, previous: str | None, source: str) -> dict[str, Any]:
    return {
        "template": {
            "id": str(row.id),
            "channel_id": str(row.channel_id),
            "provider_template_id": row.provider_template_id,
            "name": row.name,
            "language": row.language,
            "category": row.category,
            "status": row.status,
            "rejected_reason": row.rejected_reason,
            "quality_score": row.quality_score,
        },
        "previous_status": previous,
        "source": source,
    }


async def _set_status(
    db: AsyncSession, row: MessageTemplate, status: str, reason: str | None, source: str
) -> None:
    """Moves the template to `status` and emits `template.status_changed` when it moved."""
    previous = row.status
    row.rejected_reason = reason if status == "REJECTED" else None
    if status == previous:
        return
    row.status, row.status_updated_at = status, utcnow()
    await db.flush()
    await events.emit(db, row.workspace_id, STATUS_CHANGED, event_data(row, previous, source))


# -- create, sync, delete --------------------------------------------------------------------


async def create(
    db: AsyncSession,
    settings: Settings,
    http: httpx.AsyncClient,
    channel: ChannelInfo,
    body: TemplateCreate,
    created_by: uuid.UUID | None,
) -> MessageTemplate:
    """Submits the template to Meta for review and keeps it here, `PENDING` until Meta's
    status webhook (or a sync) says otherwise."""
    graph = GraphRequest(channel, settings, http)
    if await repository.find(db, channel.workspace_id, channel.id, body.name, body.language):
        raise Conflict(
            f"This channel already has a template {body.name!r} in {body.language}.",
            code="template_exists",
        )
    payload = body.graph_payload()
    answer = await graph.create(payload)
    row = MessageTemplate(
        workspace_id=channel.workspace_id,
        channel_id=channel.id,
        provider_template_id=str(answer.get("id") or "") or None,
        name=body.name,
        language=body.language,
        category=str(answer.get("category") or body.category),
        status=str(answer.get("status") or "PENDING"),
        parameter_format=body.parameter_format,
        components=payload["components"],
        status_updated_at=utcnow(),
        created_by_id=created_by,
    )
    db.add(row)
    await db.flush()
    return row


def _from_graph(row: MessageTemplate, item: dict[str, Any], now: datetime) -> None:
    row.provider_template_id = str(item.get("id") or row.provider_template_id or "") or None
    row.category = str(item.get("category") or row.category)
    if isinstance(item.get("components"), list):
        row.components = item["components"]
    quality = item.get("quality_score")
    if isinstance(quality, dict) and quality.get("score"):
        row.quality_score = str(quality["score"])
    row.parameter_format = str(item.get("parameter_format") or row.parameter_format)
    row.synced_at = now


async def sync(
    db: AsyncSession, settings: Settings, http: httpx.AsyncClient, channel: ChannelInfo
) -> SyncOut:
    """Reads every template of the channel's account, page after page: new ones are added,
    known ones updated (a status change emits its event), and those WhatsApp no longer has
    are marked DELETED."""
    graph = GraphRequest(channel, settings, http)
    known = {
        (t.name, t.language): t
        for t in await repository.of_channel(db, channel.workspace_id, channel.id)
    }
    seen: set[tuple[str, str]] = set()
    created = pages = 0
    now = utcnow()
    async for page in graph.pages():
        pages += 1
        for item in page:
            key = (str(item.get("name") or ""), str(item.get("language") or ""))
            if all(key) and key not in seen:
                seen.add(key)
                created += await _upsert(db, channel, known.get(key), item, now)
    deleted = 0
    for key, row in known.items():
        if key not in seen and row.status != DELETED:
            await _set_status(db, row, DELETED, None, "sync")
            deleted += 1
    await db.flush()
    updated = len(seen) - created
    return SyncOut(created=created, updated=updated, deleted=deleted, total=len(seen), pages=pages)


async def _upsert(
    db: AsyncSession,
    channel: ChannelInfo,
    row: MessageTemplate | None,
    item: dict[str, Any],
    now: datetime,
) -> int:
    """One listed template into its row; 1 when the row is new."""
    status, reason = str(item.get("status") or "PENDING"), _reason(item.get("rejected_reason"))
    if row is not None:
        _from_graph(row, item, now)
        await _set_status(db, row, status, reason, "sync")
        return 0
    row = MessageTemplate(
        workspace_id=channel.workspace_id,
        channel_id=channel.id,
        name=str(item["name"]),
        language=str(item["language"]),
        category="UTILITY",
        status=status,
        rejected_reason=reason if status == "REJECTED" else None,
        parameter_format="POSITIONAL",
        components=[],
        status_updated_at=now,
    )
    _from_graph(row, item, now)
    db.add(row)
    return 1


def _reason(value: Any) -> str | None:
    return None if value in (None, "", "NONE") else str(value)


async def delete(
    db: AsyncSession,
    settings: Settings,
    http: httpx.AsyncClient,
    channel: ChannelInfo,
    row: MessageTemplate,
) -> None:
    """Deletes this language of the template on WhatsApp (by name and its id), then here.
    One that a sync found gone already is only deleted here."""
    if row.status != DELETED:
        await GraphRequest(channel, settings, http).delete(row.name, row.provider_template_id)
    await db.delete(row)
    await db.flush()


# -- webhooks --------------------------------------------------------------------------------

TEMPLATE_KINDS = frozenset({"template_status", "template_quality", "template_category"})


async def apply_webhook(db: AsyncSession, channel: ChannelInfo, item: SystemEvent) -> bool:
    """Applies a template webhook (status, quality, category) to the templates it names;
    False when the event is not about templates."""
    if item.kind not in TEMPLATE_KINDS:
        return False
    data = item.data
    provider_id = data.get("message_template_id")
    rows = await repository.for_webhook(
        db,
        channel.workspace_id,
        channel.id,
        str(provider_id) if provider_id is not None else None,
        data.get("message_template_name"),
        data.get("message_template_language"),
    )
    if not rows:
        log.info("template_webhook_unknown", channel_id=str(channel.id), kind=item.kind)
    for row in rows:
        await _apply_one(db, row, item.kind, data)
    return True


async def _apply_one(
    db: AsyncSession, row: MessageTemplate, kind: str, data: dict[str, Any]
) -> None:
    if kind == "template_quality":
        if data.get("new_quality_score"):
            row.quality_score = str(data["new_quality_score"])
    elif kind == "template_category":
        # An announced change (`correct_category` set) names the category it will have in
        # 24 hours; `new_category` is then still the current one.
        if data.get("new_category"):
            row.category = str(data["new_category"])
    else:
        event = str(data.get("event") or "")
        if data.get("message_template_category"):
            row.category = str(data["message_template_category"])
        if event:
            reason = _reason(data.get("reason"))
            info = data.get("rejection_info")
            if isinstance(info, dict) and info.get("reason"):
                reason = f"{reason}: {info['reason']}" if reason else str(info["reason"])
            await _set_status(db, row, EVENT_STATUS.get(event, event), reason, "webhook")
    await db.flush()


# -- variables -------------------------------------------------------------------------------


def preview(row: MessageTemplate, params: dict[str, Any] | None) -> PreviewOut:
    values = params if params is not None else example_params(row.components)
    errors = validate_variables(row.components, values)
    named = row.parameter_format == "NAMED"
    components = [] if errors else build_components(row.components, values, named=named)
    return PreviewOut(
        **render(row.components, values), params=values, errors=errors, components=components
    )


async def check_send(
    db: AsyncSession, channel: ChannelInfo, name: str, language: str, components: list[Any]
) -> None:
    """Before a template message is queued: when the template is known here, it must be
    approved and the values must fit it (422 `template_variables_invalid` listing why).
    A template not known here is left to Meta, as before. A refusal by rule, like the policy
    gate's: final (a bot records it and goes on), never retried."""
    row = await repository.find(db, channel.workspace_id, channel.id, name, language)
    if row is None:
        return
    if row.status != "APPROVED":
        raise PolicyRefused(
            f"Template {name!r} ({language}) is {row.status}: only an approved template can "
            "be sent.",
            code="template_not_approved",
            details={"status": row.status, "reason": row.rejected_reason},
        )
    sent = [c for c in components if isinstance(c, dict)]
    errors = validate_variables(row.components, params_from_components(sent))
    if errors:
        raise PolicyRefused(
            f"The values do not fit template {name!r}: {errors[0]}",
            code="template_variables_invalid",
            details={"errors": errors},
        )
