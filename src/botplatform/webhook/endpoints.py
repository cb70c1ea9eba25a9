from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, status

from botplatform.audit.dependencies import Audit
from botplatform.authz.dependencies import WebhooksManage, WebhooksRead
from botplatform.db import DbSession
from botplatform.events.catalog import EVENT_TYPES, json_schema
from botplatform.events.payloads import envelope
from botplatform.kit.envelope import Envelope, ok
from botplatform.kit.errors import NotFound
from botplatform.kit.pagination import Page, PageQuery, paginate
from botplatform.models import Event, WebhookDelivery, WebhookEndpoint
from botplatform.runtime import RuntimeDep
from botplatform.webhook import repository, service
from botplatform.webhook.schemas import (
    AttemptOut,
    DeliveryDetail,
    DeliveryOut,
    DeliveryStatus,
    EndpointCreate,
    EndpointOut,
    EndpointUpdate,
    EndpointWithSecret,
    EventTypeOut,
    RotateSecret,
)

router = APIRouter(prefix="/workspaces/{ws}", tags=["webhooks"])


def _out(endpoint: WebhookEndpoint) -> EndpointOut:
    return EndpointOut(
        id=endpoint.id,
        url=endpoint.url,
        description=endpoint.description,
        event_types=endpoint.event_types,
        enabled=endpoint.enabled,
        disabled_reason=endpoint.disabled_reason,
        disabled_at=endpoint.disabled_at,
        failing_since=endpoint.failing_since,
        secret_hint="…" + endpoint.secret[-4:],
        previous_secret_expires_at=endpoint.previous_secret_expires_at,
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
    )


def _delivery(row: WebhookDelivery) -> DeliveryOut:
    return DeliveryOut.model_validate(row, from_attributes=True)


@router.get("/webhook-event-types")
async def list_event_types(access: WebhooksRead) -> Envelope[list[EventTypeOut]]:
    """Every event type with its current version and published JSON schema."""
    return ok(
        [
            EventTypeOut.model_validate(
                {"type": name, "version": version, "schema": json_schema(name, version)}
            )
            for name, version in EVENT_TYPES.items()
        ]
    )


@router.get("/webhook-endpoints")
async def list_endpoints(
    access: WebhooksRead, db: DbSession, page: PageQuery
) -> Envelope[Page[EndpointOut]]:
    statement = repository.endpoints(access.workspace_id)
    rows, cursor = await paginate(
        db, statement, WebhookEndpoint.created_at, WebhookEndpoint.id, page
    )
    return ok(Page(items=[_out(r[0]) for r in rows], next_cursor=cursor))


@router.post("/webhook-endpoints", status_code=status.HTTP_201_CREATED)
async def create_endpoint(
    access: WebhooksManage,
    body: EndpointCreate,
    db: DbSession,
    audit: Audit,
    runtime: RuntimeDep,
) -> Envelope[EndpointWithSecret]:
    """Registers an endpoint. Its signing secret is in this answer only."""
    user = access.principal.user
    endpoint, secret = await service.create(
        db, runtime.settings, access.workspace_id, body, user.id if user else None
    )
    await audit.log(
        "webhook_endpoint.create",
        workspace_id=access.workspace_id,
        target_type="webhook_endpoint",
        target_id=endpoint.id,
        changes={"url": endpoint.url, "event_types": endpoint.event_types},
    )
    return ok(EndpointWithSecret(endpoint=_out(endpoint), secret=secret), "Copy the secret now")


@router.get("/webhook-endpoints/{endpoint_id}")
async def get_endpoint(
    access: WebhooksRead, endpoint_id: uuid.UUID, db: DbSession
) -> Envelope[EndpointOut]:
    return ok(_out(await repository.get_endpoint(db, access.workspace_id, endpoint_id)))


@router.patch("/webhook-endpoints/{endpoint_id}")
async def update_endpoint(
    access: WebhooksManage,
    endpoint_id: uuid.UUID,
    body: EndpointUpdate,
    db: DbSession,
    audit: Audit,
    runtime: RuntimeDep,
) -> Envelope[EndpointOut]:
    """Changes the URL, event types, description, or enables/disables the endpoint."""
    endpoint = await repository.get_endpoint(db, access.workspace_id, endpoint_id)
    before = {"url": endpoint.url, "event_types": endpoint.event_types, "enabled": endpoint.enabled}
    await service.update(db, runtime.settings, endpoint, body)
    after = {"url": endpoint.url, "event_types": endpoint.event_types, "enabled": endpoint.enabled}
    await audit.log(
        "webhook_endpoint.update",
        workspace_id=access.workspace_id,
        target_type="webhook_endpoint",
        target_id=endpoint.id,
        changes={
            k: {"before": before[k], "after": after[k]} for k in before if before[k] != after[k]
        },
    )
    return ok(_out(endpoint), "Webhook endpoint updated")


@router.delete("/webhook-endpoints/{endpoint_id}")
async def delete_endpoint(
    access: WebhooksManage, endpoint_id: uuid.UUID, db: DbSession, audit: Audit
) -> Envelope[None]:
    """Deletes the endpoint with its delivery log."""
    endpoint = await repository.get_endpoint(db, access.workspace_id, endpoint_id)
    await db.delete(endpoint)
    await audit.log(
        "webhook_endpoint.delete",
        workspace_id=access.workspace_id,
        target_type="webhook_endpoint",
        target_id=endpoint_id,
        changes={"url": endpoint.url},
    )
    return ok(None, "Webhook endpoint deleted")


@router.post("/webhook-endpoints/{endpoint_id}/rotate-secret")
async def rotate_secret(
    access: WebhooksManage,
    endpoint_id: uuid.UUID,
    db: DbSession,
    audit: Audit,
    runtime: RuntimeDep,
    body: RotateSecret | None = None,
) -> Envelope[EndpointWithSecret]:
    """A new signing secret (in this answer only). The old one keeps signing beside it for
    `previous_valid_seconds`: each delivery then carries two signatures."""
    endpoint = await repository.get_endpoint(db, access.workspace_id, endpoint_id)
    overlap = body.previous_valid_seconds if body else None
    if overlap is None:
        overlap = runtime.settings.webhook_secret_overlap_seconds
    secret = service.rotate_secret(endpoint, overlap)
    await db.flush()
    await audit.log(
        "webhook_endpoint.rotate_secret",
        workspace_id=access.workspace_id,
        target_type="webhook_endpoint",
        target_id=endpoint.id,
        changes={"previous_valid_seconds": overlap},
    )
    return ok(EndpointWithSecret(endpoint=_out(endpoint), secret=secret), "Copy the secret now")


@router.get("/webhook-endpoints/{endpoint_id}/deliveries")
async def list_deliveries(
    access: WebhooksRead,
    endpoint_id: uuid.UUID,
    db: DbSession,
    page: PageQuery,
    status: DeliveryStatus | None = None,
    event_type: Annotated[str | None, Query(max_length=60)] = None,
    event_id: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Envelope[Page[DeliveryOut]]:
    """The delivery log, newest first, filtered by status, event type or id, and time."""
    await repository.get_endpoint(db, access.workspace_id, endpoint_id)
    statement = repository.deliveries(
        access.workspace_id,
        endpoint_id,
        status=status,
        event_type=event_type,
        event_id=event_id,
        since=since,
        until=until,
    )
    rows, cursor = await paginate(
        db, statement, WebhookDelivery.created_at, WebhookDelivery.id, page, newest_first=True
    )
    return ok(Page(items=[_delivery(r[0]) for r in rows], next_cursor=cursor))


@router.get("/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}")
async def get_delivery(
    access: WebhooksRead, endpoint_id: uuid.UUID, delivery_id: uuid.UUID, db: DbSession
) -> Envelope[DeliveryDetail]:
    """One delivery with its payload and every attempt (status, latency, response)."""
    delivery = await repository.get_delivery(db, access.workspace_id, endpoint_id, delivery_id)
    event = await db.get(Event, delivery.event_id)
    if event is None:
        raise NotFound("Delivery not found.", code="webhook_delivery_not_found")
    attempts = await repository.attempts(db, access.workspace_id, delivery.id)
    detail = DeliveryDetail(
        **_delivery(delivery).model_dump(),
        payload=envelope(
            event.id, event.type, event.version, event.workspace_id, event.created_at, event.data
        ),
        attempts=[AttemptOut.model_validate(a, from_attributes=True) for a in attempts],
    )
    return ok(detail)


@router.post(
    "/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/replay",
    status_code=status.HTTP_201_CREATED,
)
async def replay_delivery(
    access: WebhooksManage,
    endpoint_id: uuid.UUID,
    delivery_id: uuid.UUID,
    db: DbSession,
    audit: Audit,
) -> Envelope[DeliveryOut]:
    """Sends the delivery's event again now, as a new delivery (`replay_of_id`)."""
    endpoint = await repository.get_endpoint(db, access.workspace_id, endpoint_id)
    delivery = await repository.get_delivery(db, access.workspace_id, endpoint_id, delivery_id)
    again = await service.replay(db, endpoint, delivery)
    await audit.log(
        "webhook_delivery.replay",
        workspace_id=access.workspace_id,
        target_type="webhook_delivery",
        target_id=again.id,
        changes={"replay_of": str(delivery.id)},
    )
    return ok(_delivery(again), "Replay queued")
