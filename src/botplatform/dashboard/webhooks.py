"""Outgoing webhooks: endpoints (the signing secret shown once, on creation and rotation),
edit, enable/disable, delete, the delivery log with its filters, each delivery's attempts and
payload, and replay. Every action is the API's own endpoint function (rules, refusals and
the audit entry are the API's)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, get_args
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from starlette.datastructures import FormData

from botplatform.audit.dependencies import Auditor
from botplatform.authz.permissions import Permission
from botplatform.dashboard.web import NOTICES, Page, PageRoute, attempt, parse_form, ws_page
from botplatform.events.catalog import ALL, EVENT_TYPES
from botplatform.kit.errors import AppError, Unprocessable
from botplatform.kit.pagination import PageParams
from botplatform.webhook import endpoints as webhook_api
from botplatform.webhook.schemas import (
    DeliveryStatus,
    EndpointCreate,
    EndpointUpdate,
    EndpointWithSecret,
    RotateSecret,
)

router = APIRouter(prefix="/app/w/{ws}", route_class=PageRoute, include_in_schema=False)

ReadPage = Annotated[Page, ws_page(Permission.WEBHOOKS_READ)]
ManagePage = Annotated[Page, ws_page(Permission.WEBHOOKS_MANAGE)]
Text = Annotated[str, Query(max_length=200)]
ALL_ENDPOINTS = PageParams(200, None)
DELIVERIES_PER_PAGE = 50
STATUSES: tuple[str, ...] = get_args(DeliveryStatus)

NOTICES.setdefault("replay_queued", "Replay queued: it is a new delivery in the log.")
NOTICES.setdefault("webhook_deleted", "Webhook endpoint deleted with its delivery log.")


def _event_choices() -> list[str]:
    return [ALL, *sorted(EVENT_TYPES)]


def _endpoint_fields(form: FormData) -> dict[str, Any]:
    return {
        "url": str(form.get("url") or ""),
        "description": str(form.get("description") or ""),
        "event_types": [str(v) for v in form.getlist("event_types")],
    }


async def _list_context(page: Page) -> dict[str, Any]:
    answer = await webhook_api.list_endpoints(page.granted, page.db, ALL_ENDPOINTS)
    return {
        "endpoints": answer.data.items,
        "event_choices": _event_choices(),
        "may_manage": page.can(Permission.WEBHOOKS_MANAGE),
    }


@router.get("/webhooks")
async def webhooks(page: ReadPage) -> Response:
    return page.render("app/webhooks.html", **await _list_context(page))


@router.post("/webhooks")
async def create_webhook(request: Request, page: ManagePage) -> Response:
    form = await page.form()
    fields = _endpoint_fields(form)
    body, errors = parse_form(EndpointCreate, fields)
    context = await _list_context(page)
    if body is None:
        return page.render("app/webhooks.html", 422, errors=errors, values=fields, **context)
    try:
        answer = await attempt(
            page.db,
            lambda: webhook_api.create_endpoint(
                page.granted, body, page.db, Auditor(request, page.db), page.runtime
            ),
        )
    except AppError as exc:
        return page.render(
            "app/webhooks.html", exc.status_code, error=exc.message, values=fields, **context
        )
    # The secret is in this answer only; render sets no-store.
    return page.render("app/webhooks.html", 201, created=answer.data, **await _list_context(page))


def _moment(value: str) -> datetime | None:
    """A `datetime-local` or ISO value; naive means UTC. Unreadable → None (and said so)."""
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


async def _detail_context(
    page: Page,
    endpoint_id: uuid.UUID,
    status: str = "",
    event_type: str = "",
    event_id: str = "",
    since: str = "",
    until: str = "",
    cursor: str = "",
) -> dict[str, Any]:
    endpoint = (await webhook_api.get_endpoint(page.granted, endpoint_id, page.db)).data
    problems: list[str] = []
    chosen_status = status if status in STATUSES else None
    if status and chosen_status is None:
        problems.append("Unknown status; showing every status.")
    chosen_id = _uuid(event_id)
    if event_id and chosen_id is None:
        problems.append("That event id is not a valid id; it was ignored.")
    moments: list[datetime | None] = []
    for label, value in (("From", since), ("Until", until)):
        try:
            moments.append(_moment(value))
        except ValueError:
            moments.append(None)
            problems.append(f"{label}: not a date and time; it was ignored.")
    deliveries = await webhook_api.list_deliveries(
        page.granted,
        endpoint_id,
        page.db,
        PageParams(DELIVERIES_PER_PAGE, cursor or None),
        chosen_status,  # type: ignore[arg-type]
        event_type[:60] or None,
        chosen_id,
        moments[0],
        moments[1],
    )
    filters = {
        "status": status,
        "event_type": event_type,
        "event_id": event_id,
        "since": since,
        "until": until,
    }
    next_cursor = deliveries.data.next_cursor
    more = urlencode({**{k: v for k, v in filters.items() if v}, "cursor": next_cursor or ""})
    return {
        "endpoint": endpoint,
        "deliveries": deliveries.data.items,
        "filters": filters,
        "filter_problems": problems,
        "statuses": STATUSES,
        "event_choices": _event_choices(),
        "next_page": f"?{more}" if next_cursor else None,
        "may_manage": page.can(Permission.WEBHOOKS_MANAGE),
    }


@router.get("/webhooks/{endpoint_id}")
async def webhook(
    page: ReadPage,
    endpoint_id: uuid.UUID,
    status: Text = "",
    event_type: Text = "",
    event_id: Text = "",
    since: Text = "",
    until: Text = "",
    cursor: Annotated[str, Query(max_length=500)] = "",
) -> Response:
    try:
        context = await _detail_context(
            page, endpoint_id, status, event_type, event_id, since, until, cursor
        )
    except AppError as exc:
        if exc.code != "invalid_cursor":
            raise
        context = await _detail_context(page, endpoint_id, status, event_type, event_id)
        context["filter_problems"].append("That page link is no longer valid; back to the start.")
    return page.render("app/webhook.html", **context)


async def _detail_error(
    page: Page, endpoint_id: uuid.UUID, exc: AppError, **extra: Any
) -> Response:
    context = await _detail_context(page, endpoint_id)
    return page.render("app/webhook.html", exc.status_code, error=exc.message, **extra, **context)


@router.post("/webhooks/{endpoint_id}")
async def edit_webhook(request: Request, page: ManagePage, endpoint_id: uuid.UUID) -> Response:
    form = await page.form()
    fields = _endpoint_fields(form)
    body, errors = parse_form(EndpointUpdate, fields)
    if body is None:
        context = await _detail_context(page, endpoint_id)
        return page.render("app/webhook.html", 422, errors=errors, values=fields, **context)
    try:
        await attempt(
            page.db,
            lambda: webhook_api.update_endpoint(
                page.granted, endpoint_id, body, page.db, Auditor(request, page.db), page.runtime
            ),
        )
    except AppError as exc:
        return await _detail_error(page, endpoint_id, exc, values=fields)
    return page.redirect(page.url(f"webhooks/{endpoint_id}"), "saved")


@router.post("/webhooks/{endpoint_id}/enabled")
async def set_enabled(request: Request, page: ManagePage, endpoint_id: uuid.UUID) -> Response:
    form = await page.form()
    choice = str(form.get("enabled") or "")
    if choice not in ("true", "false"):
        raise Unprocessable("Choose enable or disable.", code="validation_error")
    body = EndpointUpdate(enabled=choice == "true")
    await webhook_api.update_endpoint(
        page.granted, endpoint_id, body, page.db, Auditor(request, page.db), page.runtime
    )
    return page.redirect(page.url(f"webhooks/{endpoint_id}"), "saved")


@router.post("/webhooks/{endpoint_id}/rotate")
async def rotate(request: Request, page: ManagePage, endpoint_id: uuid.UUID) -> Response:
    form = await page.form()
    raw = str(form.get("previous_valid_seconds") or "").strip()
    body, errors = parse_form(RotateSecret, {"previous_valid_seconds": raw or None})
    if body is None:
        exc = Unprocessable("Overlap: a whole number of seconds from 0 to 604800.", details=errors)
        return await _detail_error(page, endpoint_id, exc)
    answer = await webhook_api.rotate_secret(
        page.granted, endpoint_id, page.db, Auditor(request, page.db), page.runtime, body
    )
    rotated: EndpointWithSecret = answer.data
    context = await _detail_context(page, endpoint_id)
    return page.render("app/webhook.html", 200, rotated=rotated, **context)


@router.post("/webhooks/{endpoint_id}/delete")
async def delete_webhook(request: Request, page: ManagePage, endpoint_id: uuid.UUID) -> Response:
    await page.form()
    await webhook_api.delete_endpoint(page.granted, endpoint_id, page.db, Auditor(request, page.db))
    return page.redirect(page.url("webhooks"), "webhook_deleted")


@router.get("/webhooks/{endpoint_id}/deliveries/{delivery_id}")
async def delivery(page: ReadPage, endpoint_id: uuid.UUID, delivery_id: uuid.UUID) -> Response:
    endpoint = (await webhook_api.get_endpoint(page.granted, endpoint_id, page.db)).data
    detail = (await webhook_api.get_delivery(page.granted, endpoint_id, delivery_id, page.db)).data
    return page.render(
        "app/webhook_delivery.html",
        endpoint=endpoint,
        delivery=detail,
        may_manage=page.can(Permission.WEBHOOKS_MANAGE),
    )


@router.post("/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay")
async def replay(
    request: Request, page: ManagePage, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> Response:
    await page.form()
    answer = await webhook_api.replay_delivery(
        page.granted, endpoint_id, delivery_id, page.db, Auditor(request, page.db)
    )
    return page.redirect(
        page.url(f"webhooks/{endpoint_id}/deliveries/{answer.data.id}"), "replay_queued"
    )
