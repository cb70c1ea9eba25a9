"""WhatsApp message templates: the list with status, category and quality, a sync button per
channel, a create form whose preview follows the typing (htmx), delete. Every action is the
API's own endpoint function (rules, Meta's refusals and the audit entries are the API's)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request, Response
from starlette.datastructures import FormData

from botplatform.audit.dependencies import Auditor
from botplatform.authz.permissions import Permission
from botplatform.channel import endpoints as channel_api
from botplatform.dashboard.web import NOTICES, Page, PageRoute, attempt, parse_form, ws_page
from botplatform.kit.errors import AppError
from botplatform.kit.pagination import PageParams
from botplatform.template import endpoints as template_api
from botplatform.template.schemas import TemplateCreate
from botplatform.template.variables import example_params, placeholders, render

router = APIRouter(prefix="/app/w/{ws}", route_class=PageRoute, include_in_schema=False)

ReadPage = Annotated[Page, ws_page(Permission.TEMPLATES_READ)]
ManagePage = Annotated[Page, ws_page(Permission.TEMPLATES_MANAGE)]
ALL = PageParams(200, None)
T = TypeVar("T")
STATUSES = ("APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED", "DELETED")

NOTICES.setdefault("template_created", "Template submitted to WhatsApp for review.")
NOTICES.setdefault("template_deleted", "Template deleted on WhatsApp and here.")


def _lines(value: Any) -> list[str]:
    return [line.strip() for line in str(value or "").splitlines() if line.strip()]


def _components(form: FormData | dict[str, Any]) -> list[dict[str, Any]]:
    """The form's fields as Meta's components (with the examples Meta requires)."""
    components: list[dict[str, Any]] = []
    header = str(form.get("header") or "").strip()
    if header:
        entry: dict[str, Any] = {"type": "HEADER", "format": "TEXT", "text": header}
        if placeholders(header):
            entry["example"] = {"header_text": _lines(form.get("header_example"))[:1]}
        components.append(entry)
    body = str(form.get("body") or "").strip()
    entry = {"type": "BODY", "text": body}
    names, examples = placeholders(body), _lines(form.get("body_examples"))
    if names and all(name.isdigit() for name in names):
        entry["example"] = {"body_text": [examples]}
    elif names:
        pairs = zip(names, examples, strict=False)
        entry["example"] = {
            "body_text_named_params": [{"param_name": n, "example": e} for n, e in pairs]
        }
    components.append(entry)
    if footer := str(form.get("footer") or "").strip():
        components.append({"type": "FOOTER", "text": footer})
    buttons = [{"type": "QUICK_REPLY", "text": text} for text in _lines(form.get("quick_replies"))]
    url_text, url = str(form.get("url_text") or "").strip(), str(form.get("url") or "").strip()
    if url_text or url:
        button: dict[str, Any] = {"type": "URL", "text": url_text, "url": url}
        if placeholders(url):
            button["example"] = [str(form.get("url_example") or "").strip()]
        buttons.append(button)
    if buttons:
        components.append({"type": "BUTTONS", "buttons": buttons})
    return components


FIELDS = (
    "channel_id",
    "name",
    "language",
    "category",
    "header",
    "header_example",
    "body",
    "body_examples",
    "footer",
    "quick_replies",
    "url_text",
    "url",
    "url_example",
)


async def _context(page: Page, status: str = "", channel: str = "") -> dict[str, Any]:
    channels = (
        await channel_api.list_channels(page.granted, page.db, ALL, page.runtime)
    ).data.items
    whatsapp = [c for c in channels if c.provider == "whatsapp"]
    chosen_channel = next((c.id for c in whatsapp if str(c.id) == channel), None)
    chosen_status = status if status in STATUSES else None
    templates = (
        await template_api.list_templates(page.granted, page.db, ALL, chosen_channel, chosen_status)
    ).data.items
    return {
        "templates": templates,
        "channels": whatsapp,
        "channel_names": {c.id: c.name for c in channels},
        "statuses": STATUSES,
        "chosen_status": chosen_status or "",
        "chosen_channel": str(chosen_channel or ""),
        "may_manage": page.can(Permission.TEMPLATES_MANAGE),
        "preview": render(_components({}), {}),
    }


@router.get("/templates")
async def templates(
    page: ReadPage,
    status: Annotated[str, Query(max_length=30)] = "",
    channel: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    return page.render("app/templates.html", **await _context(page, status, channel))


@router.post("/templates/preview")
async def preview(page: ReadPage) -> Response:
    """The live preview of the create form: the texts with the example values in place."""
    form = await page.form()
    components = _components(form)
    shown = render(components, example_params(components))
    return page.render("fragments/template_preview.html", preview=shown)


@router.post("/templates")
async def create_template(request: Request, page: ManagePage) -> Response:
    form = await page.form()
    values = {name: str(form.get(name) or "") for name in FIELDS}
    components = _components(form)
    fields = {
        "channel_id": values["channel_id"],
        "name": values["name"].strip(),
        "language": values["language"].strip(),
        "category": values["category"],
        "components": components,
    }
    context = await _context(page)
    context["preview"] = render(components, example_params(components))
    body, errors = parse_form(TemplateCreate, fields)
    if body is None:
        message = "; ".join(errors.values())
        return page.render("app/templates.html", 422, error=message, values=values, **context)
    try:
        await attempt(
            page.db,
            lambda: template_api.create_template(
                page.granted, body, page.db, page.runtime, Auditor(request, page.db)
            ),
        )
    except AppError as exc:
        return page.render(
            "app/templates.html", exc.status_code, error=exc.message, values=values, **context
        )
    return page.redirect(page.url("templates"), "template_created")


async def _act(page: Page, call: Callable[[], Awaitable[T]]) -> T | Response:
    """Runs one API action; a refusal shows the page again with its reason."""
    try:
        return await attempt(page.db, call)
    except AppError as exc:
        context = await _context(page)
        return page.render("app/templates.html", exc.status_code, error=exc.message, **context)


@router.post("/templates/sync/{channel_id}")
async def sync_templates(request: Request, page: ManagePage, channel_id: uuid.UUID) -> Response:
    await page.form()
    answer = await _act(
        page,
        lambda: template_api.sync_templates(
            page.granted, channel_id, page.db, page.runtime, Auditor(request, page.db)
        ),
    )
    if isinstance(answer, Response):
        return answer
    result = answer.data
    summary = f"Synced {result.total} template(s): {result.created} new, {result.deleted} gone."
    return page.render("app/templates.html", synced=summary, **await _context(page))


@router.post("/templates/{template_id}/delete")
async def delete_template(request: Request, page: ManagePage, template_id: uuid.UUID) -> Response:
    await page.form()
    answer = await _act(
        page,
        lambda: template_api.delete_template(
            page.granted, template_id, page.db, page.runtime, Auditor(request, page.db)
        ),
    )
    if isinstance(answer, Response):
        return answer
    return page.redirect(page.url("templates"), "template_deleted")
