"""Broadcasts: the list, the composer (channel, audience, message, schedule, quiet hours) and
the broadcast's own page (live progress, pause / resume / cancel, test send, the recipients
with a status filter and a CSV export, a chart of sends per second). Reading needs
`broadcasts:read`, every action `broadcasts:send`; each action is the API's own endpoint
function (its rules, refusals and audit entries), never an HTTP call.

The composer is one plain form. htmx re-renders the message part when the channel or the
template changes (`compose`), the audience count when the segment changes (`audience`) and the
preview as anything is typed (`preview`). Without JavaScript, "Refresh" posts the form back
and the page comes again with the same parts filled in.

Progress is polled (`progress`, every 2 s while the broadcast can still change); the chart
reads `rate` (sends per second from the recipients' `sent_at`) with our own script and uPlot,
both served from our static folder (the CSP forbids inline code)."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy import select
from starlette.datastructures import FormData

from botplatform.audit.dependencies import Auditor
from botplatform.authz.permissions import Permission
from botplatform.broadcast import endpoints as broadcast_api
from botplatform.broadcast import repository as broadcast_repository
from botplatform.broadcast import service as broadcast_service
from botplatform.broadcast.schemas import (
    BroadcastCreate,
    BroadcastStart,
    RecipientStatus,
    TestSendIn,
)
from botplatform.channel import endpoints as channel_api
from botplatform.dashboard.web import NOTICES, Page, PageRoute, attempt, ws_page
from botplatform.kit.errors import AppError, Unprocessable
from botplatform.kit.handlers import plain_message
from botplatform.kit.pagination import PageParams
from botplatform.models import Broadcast, BroadcastRecipient, Contact, MessageTemplate, Workspace
from botplatform.segment import endpoints as segment_api
from botplatform.segment import service as segment_service
from botplatform.template.variables import MEDIA_FORMATS, build_components, render, slots

router = APIRouter(prefix="/app/w/{ws}", route_class=PageRoute, include_in_schema=False)

ReadPage = Annotated[Page, ws_page(Permission.BROADCASTS_READ)]
SendPage = Annotated[Page, ws_page(Permission.BROADCASTS_SEND)]
ALL = PageParams(200, None)
#: Recipients shown on the broadcast's page (the CSV has them all).
SHOWN_RECIPIENTS = 200
#: The chart covers at most this many seconds (the latest ones).
CHART_SECONDS = 3600
LIVE = ("draft", "scheduled", "running", "paused")
RECIPIENT_STATUSES = ("queued", "sending", "sent", "delivered", "read", "failed", "skipped")
_NUMBER = re.compile(r"[^\d+]")

NOTICES.setdefault("broadcast_created", "Broadcast saved as a draft.")
NOTICES.setdefault("broadcast_started", "Broadcast started.")
NOTICES.setdefault("broadcast_scheduled", "Broadcast scheduled.")
NOTICES.setdefault("broadcast_paused", "Broadcast paused.")
NOTICES.setdefault("broadcast_resumed", "Broadcast resumed.")
NOTICES.setdefault("broadcast_cancelled", "Broadcast cancelled.")
NOTICES.setdefault("broadcast_test_sent", "Test message queued.")


@dataclass
class Slot:
    """One variable of the chosen template: where it is, and where its value comes from."""

    key: str  # the broadcast's variable name: h_1, b_first, u0_1
    label: str
    attribute: str
    default: str


# --- the composer's pieces ------------------------------------------------------------------


def _slots(template: MessageTemplate, form: FormData | None) -> list[Slot]:
    found = slots(template.components)
    named: list[tuple[str, str]] = [(f"h_{n}", f"Header {{{{{n}}}}}") for n in found.header]
    named += [(f"b_{n}", f"Body {{{{{n}}}}}") for n in found.body]
    for index, (kind, names) in found.buttons.items():
        if kind == "URL":
            named += [(f"u{index}_{n}", f"Link button {{{{{n}}}}}") for n in names]
    out = []
    for key, label in named:
        attribute = str(form.get(f"v-{key}-attribute") or "") if form else ""
        default = str(form.get(f"v-{key}-default") or "") if form else ""
        out.append(Slot(key, label, attribute, default))
    return out


def _params(template: MessageTemplate, value_of: dict[str, str]) -> dict[str, Any]:
    """The template's values per component (positional lists or named dicts)."""
    found = slots(template.components)
    named = template.parameter_format.upper() == "NAMED"

    def values(prefix: str, names: list[str]) -> Any:
        if named:
            return {n: value_of[f"{prefix}_{n}"] for n in names}
        return [value_of[f"{prefix}_{n}"] for n in names]

    params: dict[str, Any] = {}
    if found.header:
        params["header"] = values("h", found.header)
    if found.body:
        params["body"] = values("b", found.body)
    buttons = {
        str(i): [value_of[f"u{i}_{n}"] for n in names]
        for i, (kind, names) in found.buttons.items()
        if kind == "URL" and names
    }
    if buttons:
        params["buttons"] = buttons
    return params


def _template_message(template: MessageTemplate, chosen: list[Slot]) -> dict[str, Any]:
    if slots(template.components).header_format in (*MEDIA_FORMATS, "LOCATION"):
        raise Unprocessable(
            "Templates with a media or location header are sent through the API for now.",
            code="template_not_supported",
        )
    placeholders = {s.key: "{{" + s.key + "}}" for s in chosen}
    components = build_components(
        template.components,
        _params(template, placeholders),
        named=template.parameter_format.upper() == "NAMED",
    )
    variables = {
        s.key: {"attribute": s.attribute or None, "default": s.default or None} for s in chosen
    }
    return {
        "type": "template",
        "template": {
            "name": template.name,
            "language": template.language,
            "components": components,
        },
        "variables": variables,
    }


def _preview(template: MessageTemplate | None, chosen: list[Slot], text: str) -> dict[str, Any]:
    if template is None:
        return {"header": None, "body": text, "footer": None, "buttons": []}
    shown = {
        s.key: s.default or (f"[{s.attribute}]" if s.attribute else f"[{s.key}]") for s in chosen
    }
    return render(template.components, _params(template, shown))


def _phones(raw: str) -> list[str]:
    out = []
    for part in re.split(r"[\s,;]+", raw):
        number = _NUMBER.sub("", part)
        if number:
            out.append(number if number.startswith("+") else f"+{number}")
    return out


async def _attribute_keys(page: Page) -> list[str]:
    """Attribute names seen on the workspace's contacts (a sample), for the variable menus."""
    statement = select(Contact.attributes).where(Contact.workspace_id == page.ws).limit(500)
    keys: set[str] = set()
    for (attributes,) in (await page.db.execute(statement)).all():
        keys.update(k for k in (attributes or {}) if isinstance(k, str))
    return ["name", *sorted(keys - {"name"})]


async def _templates_of(page: Page, channel_id: uuid.UUID | None) -> list[MessageTemplate]:
    if channel_id is None:
        return []
    statement = (
        select(MessageTemplate)
        .where(
            MessageTemplate.workspace_id == page.ws,
            MessageTemplate.channel_id == channel_id,
            MessageTemplate.status == "APPROVED",
        )
        .order_by(MessageTemplate.name, MessageTemplate.language)
    )
    return list((await page.db.execute(statement)).scalars())


async def _channels(page: Page) -> list[Any]:
    return list(
        (await channel_api.list_channels(page.granted, page.db, ALL, page.runtime)).data.items
    )


async def _composer(page: Page, form: FormData | None) -> dict[str, Any]:
    """Everything the composer shows for what has been chosen so far."""

    def get(name: str) -> str:
        return str(form.get(name) or "") if form is not None else ""

    channels = await _channels(page)
    channel = next((c for c in channels if str(c.id) == get("channel_id")), None)
    channel = channel or (channels[0] if channels else None)
    templates = await _templates_of(page, channel.id if channel else None)
    template = next((t for t in templates if str(t.id) == get("template_id")), None)
    template = template or (templates[0] if templates else None)
    whatsapp = channel is not None and channel.provider == "whatsapp"
    chosen = _slots(template, form) if whatsapp and template else []
    segments = (await segment_api.list_segments(page.granted, page.db, ALL)).data.items
    segment = next((s for s in segments if str(s.id) == get("segment_id")), None)
    segment = segment or (segments[0] if segments else None)
    workspace = await page.db.get(Workspace, page.ws)
    return {
        "channels": channels,
        "channel": channel,
        "whatsapp": whatsapp,
        "templates": templates,
        "template": template if whatsapp else None,
        "slots": chosen,
        "attributes": await _attribute_keys(page),
        "segments": segments,
        "segment": segment,
        "segment_count": (
            await segment_service.count(page.db, page.ws, segment.definition) if segment else None
        ),
        "values": {name: get(name) for name in _FIELDS},
        "timezone": workspace.timezone if workspace else "UTC",
        "preview": _preview(template if whatsapp else None, chosen, get("text")),
    }


_FIELDS = (
    "name",
    "audience_type",
    "phones",
    "text",
    "when",
    "scheduled_at",
    "quiet",
    "quiet_start",
    "quiet_end",
)


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'] if not isinstance(p, int))}: {plain_message(e)}"
        if e["loc"]
        else plain_message(e)
        for e in exc.errors()
    )


def _body(context: dict[str, Any], form: FormData) -> BroadcastCreate:
    """The form as the API's request body; 422 with the reasons in words."""
    channel, template = context["channel"], context["template"]
    if channel is None:
        raise Unprocessable("Connect a channel first.", code="no_channel")
    if context["whatsapp"]:
        if template is None:
            raise Unprocessable(
                "This WhatsApp channel has no approved template: sync or create one first.",
                code="no_template",
            )
        message = _template_message(template, context["slots"])
    else:
        message = {"type": "text", "text": str(form.get("text") or "").strip()}
    if form.get("audience_type") == "list":
        audience: dict[str, Any] = {
            "type": "list",
            "phones": _phones(str(form.get("phones") or "")),
        }
    else:
        segment = context["segment"]
        audience = {"type": "segment", "segment_id": str(segment.id) if segment else None}
    quiet = None
    if form.get("quiet"):
        quiet = {"start": form.get("quiet_start"), "end": form.get("quiet_end")}
    raw = {
        "name": str(form.get("name") or "").strip(),
        "channel_id": str(channel.id),
        "message": message,
        "audience": audience,
        "quiet_hours": quiet,
    }
    try:
        return BroadcastCreate.model_validate(raw)
    except ValidationError as exc:
        raise Unprocessable(_problems(exc), code="validation_error") from exc


def _schedule(form: FormData) -> BroadcastStart:
    if form.get("when") != "later":
        return BroadcastStart()
    raw = str(form.get("scheduled_at") or "")
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise Unprocessable(
            "Give the date and time to start (in the workspace's timezone).", code="bad_time"
        ) from exc
    return BroadcastStart(scheduled_at=moment.replace(tzinfo=None))


# --- the list and the composer ----------------------------------------------------------------


@router.get("/broadcasts")
async def broadcasts(page: ReadPage) -> Response:
    statement = broadcast_repository.listing(page.ws, None)
    rows = list(
        (
            await page.db.execute(
                statement.order_by(Broadcast.created_at.desc(), Broadcast.id.desc()).limit(200)
            )
        ).scalars()
    )
    counts = {r.id: await broadcast_service.counts(page.db, r) for r in rows}
    channels = await _channels(page)
    return page.render(
        "app/broadcasts.html",
        broadcasts=rows,
        counts=counts,
        channel_names={c.id: c.name for c in channels},
        may_send=page.can(Permission.BROADCASTS_SEND),
    )


@router.get("/broadcasts/new")
async def new_broadcast(page: SendPage) -> Response:
    return page.render("app/broadcast_new.html", **await _composer(page, None))


@router.post("/broadcasts/compose")
async def compose(page: SendPage) -> Response:
    """The message part again (the channel or the template changed)."""
    form = await page.form()
    return page.render("fragments/broadcast_message.html", **await _composer(page, form))


@router.post("/broadcasts/audience")
async def audience_count(page: SendPage) -> Response:
    form = await page.form()
    return page.render("fragments/broadcast_audience.html", **await _composer(page, form))


@router.post("/broadcasts/preview")
async def preview(page: SendPage) -> Response:
    form = await page.form()
    context = await _composer(page, form)
    return page.render("fragments/template_preview.html", preview=context["preview"])


@router.post("/broadcasts")
async def create_broadcast(request: Request, page: SendPage) -> Response:
    form = await page.form()
    context = await _composer(page, form)
    if form.get("action") == "refresh":  # the composer's parts without JavaScript
        return page.render("app/broadcast_new.html", **context)
    start = form.get("action") == "start"

    async def create_and_start() -> Any:
        body = _body(context, form)
        audit = Auditor(request, page.db)
        created = (await broadcast_api.create_broadcast(page.granted, body, page.db, audit)).data
        if start:
            started = await broadcast_api.start_broadcast(
                page.granted, created.id, page.db, audit, _schedule(form)
            )
            return started.data
        return created

    try:
        made = await attempt(page.db, create_and_start)
    except AppError as exc:
        return page.render("app/broadcast_new.html", exc.status_code, error=exc.message, **context)
    notice = "broadcast_created"
    if start:
        notice = "broadcast_scheduled" if made.status == "scheduled" else "broadcast_started"
    return page.redirect(page.url(f"broadcasts/{made.id}"), notice)


# --- one broadcast --------------------------------------------------------------------------


def _local(moment: datetime | None, timezone: str) -> str:
    """A time as the workspace reads it: `2026-12-03 18:00 (Europe/Paris)`."""
    if moment is None:
        return ""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone, timezone = ZoneInfo("UTC"), "UTC"
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M} ({timezone})"


async def _progress(page: Page, broadcast_id: uuid.UUID) -> dict[str, Any]:
    row = await broadcast_repository.get(page.db, page.ws, broadcast_id)
    return {
        "b": row,
        "scheduled_local": _local(row.scheduled_at, row.timezone),
        "counts": await broadcast_service.counts(page.db, row),
        "live": row.status in LIVE,
        "may_send": page.can(Permission.BROADCASTS_SEND),
    }


async def _show(
    page: Page,
    broadcast_id: uuid.UUID,
    status: str = "",
    status_code: int = 200,
    error: str | None = None,
) -> Response:
    """The broadcast's page (again with a refusal's reason when an action was refused)."""
    context = await _progress(page, broadcast_id)
    chosen = status if status in RECIPIENT_STATUSES else None
    statement = broadcast_repository.recipients(page.ws, broadcast_id, chosen, None)
    ordered = statement.order_by(BroadcastRecipient.created_at, BroadcastRecipient.address)
    recipients = (await page.db.execute(ordered.limit(SHOWN_RECIPIENTS))).scalars()
    channels = await _channels(page)
    return page.render(
        "app/broadcast.html",
        status_code,
        error=error,
        recipients=list(recipients),
        statuses=RECIPIENT_STATUSES,
        chosen_status=chosen or "",
        shown_limit=SHOWN_RECIPIENTS,
        channel_names={c.id: c.name for c in channels},
        **context,
    )


@router.get("/broadcasts/{broadcast_id}")
async def broadcast(
    page: ReadPage,
    broadcast_id: uuid.UUID,
    status: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    return await _show(page, broadcast_id, status)


@router.get("/broadcasts/{broadcast_id}/progress")
async def progress(page: ReadPage, broadcast_id: uuid.UUID) -> Response:
    return page.render("fragments/broadcast_progress.html", **await _progress(page, broadcast_id))


@router.get("/broadcasts/{broadcast_id}/rate")
async def rate(page: ReadPage, broadcast_id: uuid.UUID) -> Response:
    """Sends per second, from the recipients' `sent_at`: `t` (unix seconds, every second from
    the one before the first send to the one after the last, at most the latest hour) and `n`
    (sends in that second)."""
    row = await broadcast_repository.get(page.db, page.ws, broadcast_id)
    statement = select(BroadcastRecipient.sent_at).where(
        BroadcastRecipient.workspace_id == page.ws,
        BroadcastRecipient.broadcast_id == broadcast_id,
        BroadcastRecipient.sent_at.is_not(None),
    )
    seconds = Counter(
        int(moment.timestamp())
        for (moment,) in (await page.db.execute(statement)).all()
        if moment is not None
    )
    t: list[int] = []
    if seconds:
        last = max(seconds)
        first = max(min(seconds), last - CHART_SECONDS + 1)
        t = list(range(first - 1, last + 2))  # a quiet second either side: the ramp shows
    return JSONResponse(
        {"status": row.status, "t": t, "n": [seconds.get(s, 0) for s in t]},
        headers={"Cache-Control": "no-store"},
    )


@router.get("/broadcasts/{broadcast_id}/recipients.csv")
async def export(
    page: ReadPage,
    broadcast_id: uuid.UUID,
    status: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    chosen: RecipientStatus | None = status if status in RECIPIENT_STATUSES else None  # type: ignore[assignment]
    return await broadcast_api.export_recipients(page.granted, broadcast_id, page.db, chosen)


ACTIONS = {
    "start": (broadcast_api.start_broadcast, "broadcast_started"),
    "pause": (broadcast_api.pause_broadcast, "broadcast_paused"),
    "resume": (broadcast_api.resume_broadcast, "broadcast_resumed"),
    "cancel": (broadcast_api.cancel_broadcast, "broadcast_cancelled"),
}


async def _refused(page: Page, broadcast_id: uuid.UUID, exc: AppError) -> Response:
    return await _show(page, broadcast_id, status_code=exc.status_code, error=exc.message)


@router.post("/broadcasts/{broadcast_id}/test-send")
async def test_send(request: Request, page: SendPage, broadcast_id: uuid.UUID) -> Response:
    form = await page.form()
    to = _phones(str(form.get("to") or ""))
    try:
        body = TestSendIn(to=to[0] if to else "")
    except ValidationError:
        return await _refused(
            page, broadcast_id, Unprocessable("Give one phone number, e.g. +15551234567.")
        )
    try:
        await attempt(
            page.db,
            lambda: broadcast_api.test_send(
                page.granted, broadcast_id, body, page.db, Auditor(request, page.db)
            ),
        )
    except AppError as exc:
        return await _refused(page, broadcast_id, exc)
    return page.redirect(page.url(f"broadcasts/{broadcast_id}"), "broadcast_test_sent")


@router.post("/broadcasts/{broadcast_id}/{action}")
async def act(request: Request, page: SendPage, broadcast_id: uuid.UUID, action: str) -> Response:
    form = await page.form()
    if action not in ACTIONS:
        return await _refused(page, broadcast_id, Unprocessable("There is no such action."))
    call, notice = ACTIONS[action]
    audit = Auditor(request, page.db)
    try:
        if action == "start":
            schedule = _schedule(form)
            answer = await attempt(
                page.db,
                lambda: broadcast_api.start_broadcast(
                    page.granted, broadcast_id, page.db, audit, schedule
                ),
            )
            if answer.data.status == "scheduled":
                notice = "broadcast_scheduled"
        else:
            await attempt(page.db, lambda: call(page.granted, broadcast_id, page.db, audit))
    except AppError as exc:
        return await _refused(page, broadcast_id, exc)
    return page.redirect(page.url(f"broadcasts/{broadcast_id}"), notice)
