"""Segments (saved audiences) with a condition builder and a live count, and the contacts'
CSV import form. Reading follows the API (`contacts:read`), changing segments needs
`broadcasts:send`, importing `contacts:manage`; every change is the API's own endpoint.

The builder is a plain form: one row per condition (`c-N-type`, `c-N-operator`, `c-N-key`,
`c-N-value`), combined with `match`. htmx posts the whole form as it changes: to `builder`
(a row added, removed or given another type: the rows again) and to `count` (the live
count). Without JavaScript, the buttons still work as ordinary form posts."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, cast

from fastapi import APIRouter, Request, Response
from fastapi import UploadFile as ApiUploadFile
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from botplatform.audit.dependencies import Auditor
from botplatform.authz.permissions import Permission
from botplatform.channel import repository as channel_repository
from botplatform.dashboard.web import NOTICES, Page, PageRoute, attempt, ws_page
from botplatform.kit.errors import AppError
from botplatform.kit.handlers import plain_message
from botplatform.kit.pagination import PageParams
from botplatform.segment import endpoints as segment_api
from botplatform.segment import service as segment_service
from botplatform.segment.schemas import (
    GroupCondition,
    SegmentCreate,
    SegmentDefinition,
    SegmentUpdate,
)

router = APIRouter(prefix="/app/w/{ws}", route_class=PageRoute, include_in_schema=False)

SegmentsPage = Annotated[Page, ws_page(Permission.CONTACTS_READ)]
SegmentsManagePage = Annotated[Page, ws_page(Permission.BROADCASTS_SEND)]
ImportPage = Annotated[Page, ws_page(Permission.CONTACTS_MANAGE)]
MAX_ROWS = 20

NOTICES.setdefault("segment_created", "Segment created.")
NOTICES.setdefault("segment_saved", "Segment saved.")
NOTICES.setdefault("segment_deleted", "Segment deleted.")

TYPES = {
    "tags": "Tags",
    "attribute": "Attribute",
    "channel": "Channel",
    "last_inbound": "Last message from them",
}
OPERATORS = {
    "tags": {"has_any": "has any of", "has_all": "has all of", "has_none": "has none of"},
    "attribute": {
        "eq": "is",
        "neq": "is not",
        "contains": "contains",
        "starts_with": "starts with",
        "gt": "is greater than",
        "gte": "is at least",
        "lt": "is less than",
        "lte": "is at most",
        "in": "is one of",
        "exists": "is set",
        "not_exists": "is not set",
    },
    "channel": {"is": "is"},
    "last_inbound": {
        "after": "within the last … days",
        "before": "more than … days ago",
        "never": "never",
    },
}
VALUE_HINTS = {
    "tags": "tags, separated by commas",
    "attribute": "a value (one of: separated by commas; dates as YYYY-MM-DD)",
    "last_inbound": "days",
}
_SPLIT = re.compile(r"[,;|]")


@dataclass
class Row:
    type: str = "tags"
    operator: str = ""
    key: str = ""
    value: str = ""


def _rows(form: FormData) -> list[Row]:
    rows = []
    for index in range(MAX_ROWS):
        kind = str(form.get(f"c-{index}-type") or "")
        if kind not in TYPES:
            continue
        operator = str(form.get(f"c-{index}-operator") or "")
        if operator not in OPERATORS[kind]:
            operator = next(iter(OPERATORS[kind]))
        rows.append(
            Row(
                kind,
                operator,
                str(form.get(f"c-{index}-key") or "").strip(),
                str(form.get(f"c-{index}-value") or "").strip(),
            )
        )
    return rows


def _apply(rows: list[Row], action: str) -> list[Row]:
    """The rows after a builder button: `add` (a new empty row) or `remove-N`."""
    if action == "add" and len(rows) < MAX_ROWS:
        rows.append(Row("tags", "has_any"))
    elif action.startswith("remove-") and action[7:].isdigit() and int(action[7:]) < len(rows):
        rows.pop(int(action[7:]))
    return rows


def _condition(row: Row) -> dict[str, Any]:
    """One builder row as the filter language's condition (validated by the caller)."""
    if row.type == "tags":
        values = [v.strip() for v in _SPLIT.split(row.value) if v.strip()]
        return {"type": "tags", "operator": row.operator, "values": values}
    if row.type == "attribute":
        condition: dict[str, Any] = {"type": "attribute", "key": row.key, "operator": row.operator}
        if row.operator == "in":
            condition["value"] = [v.strip() for v in row.value.split(",") if v.strip()]
        elif row.operator not in ("exists", "not_exists"):
            condition["value"] = row.value
        return condition
    if row.type == "channel":
        kind, _, target = row.value.partition(":")
        field = "channel_id" if kind == "channel" else "provider"
        return {"type": "channel", field: target or None}
    condition = {"type": "last_inbound", "operator": row.operator}
    if row.operator != "never":
        condition["days_ago"] = row.value or None
    return condition


def _from_definition(definition: dict[str, Any]) -> tuple[str, list[Row], bool]:
    """The builder's rows for a saved definition; False when it has nested groups or absolute
    times (kept as they are: edited through the API)."""
    rows, simple = [], True
    for item in definition.get("conditions", []):
        kind = item.get("type")
        if kind == "tags":
            rows.append(Row("tags", item["operator"], "", ", ".join(item["values"])))
        elif kind == "attribute":
            value = item.get("value")
            text = ", ".join(map(str, value)) if isinstance(value, list) else value
            rows.append(Row("attribute", item["operator"], item["key"], _text(text)))
        elif kind == "channel":
            target = f"channel:{item['channel_id']}" if item.get("channel_id") else ""
            rows.append(Row("channel", "is", "", target or f"provider:{item['provider']}"))
        elif kind == "last_inbound" and item.get("at") is None:
            days = item.get("days_ago")
            rows.append(
                Row("last_inbound", item["operator"], "", "" if days is None else str(days))
            )
        else:
            simple = False
    return str(definition.get("match", "all")), rows, simple


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _problems(exc: ValidationError) -> list[str]:
    """Each problem in words, naming the builder row it is about."""
    problems = []
    for error in exc.errors():
        where = error["loc"]
        row = (
            f"Condition {int(where[1]) + 1}: "
            if len(where) > 1 and where[0] == "conditions"
            else ""
        )
        field = str(where[-1]) if len(where) > 3 and isinstance(where[-1], str) else ""
        message = plain_message(error)
        if error["type"] == "too_short" and field == "values":
            message = "give at least one tag"
        elif field:
            message = f"{field}: {message}"
        problems.append(row + message)
    return problems


def _definition(form: FormData) -> tuple[dict[str, Any], SegmentDefinition | None, list[str]]:
    match = "any" if form.get("match") == "any" else "all"
    raw = {"match": match, "conditions": [_condition(row) for row in _rows(form)]}
    try:
        return raw, SegmentDefinition.model_validate(raw), []
    except ValidationError as exc:
        return raw, None, _problems(exc)


async def _builder_context(page: Page) -> dict[str, Any]:
    listed = await page.db.execute(channel_repository.list_statement(page.granted))
    channels = [(f"channel:{c.id}", c.name) for c in listed.scalars()]
    providers = [(f"provider:{p}", p.capitalize()) for p in ("whatsapp", "messenger",
                 "instagram", "telegram", "slack", "webchat")]  # fmt: skip
    return {
        "types": TYPES,
        "operators": OPERATORS,
        "hints": VALUE_HINTS,
        "channel_choices": providers + channels,
        "max_rows": MAX_ROWS,
        "may_manage": page.can(Permission.BROADCASTS_SEND),
    }


@router.get("/segments")
async def segments(page: SegmentsPage) -> Response:
    listed = await segment_api.list_segments(page.granted, page.db, PageParams(200, None))
    counts = {
        s.id: await segment_service.count(page.db, page.ws, s.definition) for s in listed.data.items
    }
    return page.render(
        "app/segments.html",
        segments=listed.data.items,
        counts=counts,
        may_manage=page.can(Permission.BROADCASTS_SEND),
    )


async def _editor(
    page: Page,
    *,
    segment: Any = None,
    name: str = "",
    description: str = "",
    match: str = "all",
    rows: list[Row] | None = None,
    simple: bool = True,
    status: int = 200,
    error: str | None = None,
) -> Response:
    rows = rows if rows is not None else [Row("tags", "has_any")]
    raw = {"match": match, "conditions": [_condition(row) for row in rows]}
    count, problems = await _count_of(page, raw)
    return page.render(
        "app/segment.html",
        status,
        segment=segment,
        seg_name=name,
        seg_description=description,
        match=match,
        rows=rows,
        simple=simple,
        count=count,
        problems=problems,
        error=error,
        **await _builder_context(page),
    )


async def _count_of(page: Page, raw: dict[str, Any]) -> tuple[int | None, list[str]]:
    try:
        definition = SegmentDefinition.model_validate(raw)
    except ValidationError as exc:
        return None, _problems(exc)
    return await segment_service.count(page.db, page.ws, definition), []


@router.get("/segments/new")
async def new_segment(page: SegmentsManagePage) -> Response:
    return await _editor(page)


@router.get("/segments/{segment_id}")
async def segment(page: SegmentsPage, segment_id: uuid.UUID) -> Response:
    found = (await segment_api.get_segment(page.granted, segment_id, page.db)).data
    match, rows, simple = _from_definition(found.definition)
    return await _editor(
        page,
        segment=found,
        name=found.name,
        description=found.description,
        match=match,
        rows=rows,
        simple=simple,
    )


@router.post("/segments/builder")
async def builder(page: SegmentsPage) -> Response:
    """The condition rows again, after a row was added, removed or changed type."""
    form = await page.form()
    rows = _apply(_rows(form), str(form.get("action") or ""))
    match = "any" if form.get("match") == "any" else "all"
    raw = {"match": match, "conditions": [_condition(row) for row in rows]}
    count, problems = await _count_of(page, raw)
    return page.render(
        "fragments/segment_builder.html",
        rows=rows,
        match=match,
        count=count,
        problems=problems,
        **await _builder_context(page),
    )


@router.post("/segments/count")
async def live_count(page: SegmentsPage) -> Response:
    """The live count of the definition being edited (or why it cannot be counted yet)."""
    form = await page.form()
    _, definition, problems = _definition(form)
    count = None
    if definition is not None:
        count = await segment_service.count(page.db, page.ws, definition)
    return page.render("fragments/segment_count.html", count=count, problems=problems)


def _editor_fields(form: FormData) -> dict[str, Any]:
    return {
        "name": str(form.get("name") or "").strip(),
        "description": str(form.get("description") or "").strip(),
        "match": "any" if form.get("match") == "any" else "all",
        "rows": _rows(form),
    }


@router.post("/segments")
async def create_segment(request: Request, page: SegmentsManagePage) -> Response:
    form = await page.form()
    if form.get("action"):  # the builder's buttons without JavaScript
        return await _rebuild(page, form, None)
    fields = _editor_fields(form)
    _, definition, problems = _definition(form)
    if definition is None or not fields["name"]:
        message = "; ".join(problems) if problems else "The segment needs a name."
        return await _editor(page, status=422, error=message, **fields)
    body = SegmentCreate(
        name=fields["name"], description=fields["description"], definition=definition
    )
    try:
        created = await attempt(
            page.db,
            lambda: segment_api.create_segment(
                page.granted, body, page.db, Auditor(request, page.db)
            ),
        )
    except AppError as exc:
        return await _editor(page, status=exc.status_code, error=exc.message, **fields)
    return page.redirect(page.url(f"segments/{created.data.id}"), "segment_created")


async def _rebuild(page: Page, form: FormData, segment: Any) -> Response:
    fields = _editor_fields(form)
    fields["rows"] = _apply(fields["rows"], str(form.get("action")))
    return await _editor(page, segment=segment, **fields)


@router.post("/segments/{segment_id}")
async def save_segment(
    request: Request, page: SegmentsManagePage, segment_id: uuid.UUID
) -> Response:
    form = await page.form()
    found = (await segment_api.get_segment(page.granted, segment_id, page.db)).data
    if form.get("action"):
        return await _rebuild(page, form, found)
    fields = _editor_fields(form)
    _, definition, problems = _definition(form)
    if definition is None or not fields["name"]:
        message = "; ".join(problems) if problems else "The segment needs a name."
        return await _editor(page, segment=found, status=422, error=message, **fields)
    has_groups = any(isinstance(c, GroupCondition) for c in definition.conditions)
    body = SegmentUpdate(
        name=fields["name"],
        description=fields["description"],
        definition=None if has_groups else definition,
    )
    try:
        await attempt(
            page.db,
            lambda: segment_api.update_segment(
                page.granted, segment_id, body, page.db, Auditor(request, page.db)
            ),
        )
    except AppError as exc:
        return await _editor(
            page, segment=found, status=exc.status_code, error=exc.message, **fields
        )
    return page.redirect(page.url(f"segments/{segment_id}"), "segment_saved")


@router.post("/segments/{segment_id}/delete")
async def delete_segment(
    request: Request, page: SegmentsManagePage, segment_id: uuid.UUID
) -> Response:
    await page.form()
    await segment_api.delete_segment(page.granted, segment_id, page.db, Auditor(request, page.db))
    return page.redirect(page.url("segments"), "segment_deleted")


# --- the contacts' CSV import ----------------------------------------------------------------


@router.post("/contacts/import")
async def import_contacts(request: Request, page: ImportPage) -> Response:
    form = await page.form()
    upload = form.get("file")
    source = str(form.get("consent_source") or "import")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return page.render("app/contacts_import.html", 422, error="Choose a CSV file.")
    try:
        answer = await attempt(
            page.db,
            lambda: segment_api.import_contacts(
                page.granted,
                cast(ApiUploadFile, upload),
                page.db,
                Auditor(request, page.db),
                source,
            ),
        )
    except AppError as exc:
        rows = exc.details if isinstance(exc.details, list) else []
        return page.render(
            "app/contacts_import.html", exc.status_code, error=exc.message, bad_rows=rows
        )
    return page.render("app/contacts_import.html", result=answer.data)
