"""Bots: the list, a bot's page with the flow editor (forms for every trigger, node and port,
the JSON as an advanced view; validation problems listed next to the node, edge or trigger
they are about), publishing with its versions, and the simulator as a chat panel. Every action
is the bots API's own endpoint function."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from botplatform.audit.dependencies import Auditor
from botplatform.authz.permissions import Permission
from botplatform.bot import endpoints as bot_api
from botplatform.bot.schemas import (
    BotCreate,
    BotOut,
    BotUpdate,
    PublishIn,
    SimulatedContact,
    SimulatedState,
    SimulateIn,
    SimulateOut,
)
from botplatform.dashboard import flow_form
from botplatform.dashboard.web import (
    NOTICES,
    Page,
    PageRoute,
    attempt,
    is_htmx,
    parse_form,
    templates,
    ws_page,
)
from botplatform.kit.errors import AppError, Unprocessable
from botplatform.kit.pagination import PageParams

router = APIRouter(prefix="/app/w/{ws}", route_class=PageRoute, include_in_schema=False)

ReadPage = Annotated[Page, ws_page(Permission.BOTS_READ)]
ManagePage = Annotated[Page, ws_page(Permission.BOTS_MANAGE)]
ALL = PageParams(200, None)
MAX_FLOW_CHARS = 500_000

NOTICES.update(
    {
        "bot_created": "Bot created. Edit its flow below, try it in the simulator, then publish.",
        "bot_saved": "Flow saved as a new draft; the live version changes when you publish.",
        "bot_published": "Published: new conversations start on this version.",
        "bot_deleted": "Bot deleted.",
    }
)
templates.env.globals.update(flow_form.EDITOR_GLOBALS)
templates.env.globals.update(
    flow_shown=flow_form.shown,
    flow_lines=flow_form.lines,
    flow_pairs=flow_form.pairs,
    flow_json=flow_form.json_text,
    flow_body_params=flow_form.body_params,
    flow_open_ports=flow_form.open_ports,
)
templates.env.filters["flow_head"] = lambda where: str(where or "").split(".")[0]

STARTER_FLOW: dict[str, Any] = {
    "triggers": [{"type": "keyword", "keywords": ["hi", "hello"], "node": "welcome"}],
    "nodes": [
        {"id": "welcome", "type": "send_text", "text": "Hello {{contact.name}}! How can we help?"}
    ],
    "edges": [],
}


def pretty(flow: Any) -> str:
    return json.dumps(flow, indent=2, ensure_ascii=False)


@dataclass
class Problems:
    """The API's `flow_invalid` details, grouped by what they are about."""

    nodes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    edges: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    triggers: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    general: list[dict[str, Any]] = field(default_factory=list)
    # The same problems as the editor's forms place them: by trigger, by (node, port).
    trigger_issues: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    port_issues: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.nodes or self.edges or self.triggers or self.general)

    @property
    def count(self) -> int:
        listed = sum(len(items) for items in self.nodes.values())
        return listed + len(self.edges) + len(self.triggers) + len(self.general)


def _edge(flow: dict[str, Any], where: Any) -> Any:
    listed = flow.get("edges")
    edges: list[Any] = listed if isinstance(listed, list) else []
    if isinstance(where, str):  # an edge with an `id` is named by it
        return next((e for e in edges if isinstance(e, dict) and e.get("id") == where), None)
    return edges[where] if isinstance(where, int) and 0 <= where < len(edges) else None


def _edge_label(flow: dict[str, Any], where: Any) -> str:
    edge = _edge(flow, where)
    if isinstance(edge, dict):
        port = f" ({edge.get('port')})" if edge.get("port") else ""
        return f"Edge #{where}: {edge.get('from')} → {edge.get('to')}{port}"
    return f"Edge {where}"


def group_problems(flow: dict[str, Any], details: Any) -> Problems:
    problems = Problems()
    for issue in details if isinstance(details, list) else []:
        if not isinstance(issue, dict):
            continue
        if "edge" in issue:
            edge = _edge(flow, issue["edge"])
            if isinstance(edge, dict):
                port = (str(edge.get("from")), str(edge.get("port", "next")))
                problems.port_issues.setdefault(port, []).append(issue)
        if "node" in issue:
            problems.nodes.setdefault(str(issue["node"]), []).append(issue)
        elif "edge" in issue:
            problems.edges.append((_edge_label(flow, issue["edge"]), issue))
        elif "trigger" in issue:
            problems.triggers.append((f"Trigger #{issue['trigger']}", issue))
            if isinstance(issue["trigger"], int):
                problems.trigger_issues.setdefault(issue["trigger"], []).append(issue)
        else:
            problems.general.append(issue)
    return problems


def outline(flow: Any) -> list[dict[str, str]]:
    """The nodes of a flow as the editor lists them (id, type, a short summary)."""
    nodes = flow.get("nodes") if isinstance(flow, dict) else None
    rows: list[dict[str, str]] = []
    for index, node in enumerate(nodes if isinstance(nodes, list) else []):
        if not isinstance(node, dict):
            rows.append({"id": str(index), "type": "?", "summary": ""})
            continue
        summary = next(
            (str(node[k]) for k in ("text", "question", "message", "label") if node.get(k)), ""
        )
        node_id = node.get("id")
        rows.append(
            {
                "id": str(node_id) if node_id is not None else str(index),
                "type": str(node.get("type", "?")),
                "summary": summary[:80],
            }
        )
    return rows


def parse_flow(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """The flow from the editor's text, or why it is not a JSON object."""
    if len(text) > MAX_FLOW_CHARS:
        return None, f"The flow is too long (at most {MAX_FLOW_CHARS:,} characters)."
    if not text.strip():
        return {}, None
    try:
        flow = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"Not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
    if not isinstance(flow, dict):
        return None, "The flow must be a JSON object with `triggers`, `nodes` and `edges`."
    return flow, None


async def _bot(page: Page, bot_id: uuid.UUID) -> BotOut:
    return (await bot_api.get_bot(page.granted, bot_id, page.db)).data


async def _bot_context(
    page: Page, bot: BotOut, flow: dict[str, Any] | None = None, **overrides: Any
) -> dict[str, Any]:
    """What the bot page shows; `flow` is the one its forms draw (by default the saved draft,
    else an unsaved edit)."""
    versions = await bot_api.list_versions(page.granted, bot.id, page.db, ALL)
    drawn = bot.flow if flow is None else flow
    context: dict[str, Any] = {
        "bot": bot,
        "versions": versions.data.items,
        "flow_text": pretty(drawn),
        "flow_base": json.dumps(drawn, ensure_ascii=False),
        "views": flow_form.node_views(drawn),
        "triggers": _listed(drawn, "triggers"),
        "nodes": outline(drawn),
        "edit_url": page.url(f"bots/{bot.id}"),
        "problems": Problems(),
        "may_manage": page.can(Permission.BOTS_MANAGE),
        "sim_state": "",
        "sim_contact": "",
        "sim_turn": None,
        "values": {"name": bot.name, "description": bot.description, "enabled": bot.enabled},
    }
    return {**context, **overrides}


def _listed(flow: Any, key: str) -> list[Any]:
    items = flow.get(key) if isinstance(flow, dict) else None
    return items if isinstance(items, list) else []


def _submitted(form: Any) -> tuple[dict[str, Any] | None, str, str | None]:
    """The flow of a submitted editor: the JSON view when it was changed (or the only one
    sent), else the forms laid over the flow they were drawn from. Also the JSON text to show
    again and why it is not a flow."""
    text = str(form.get("flow") or "").replace("\r\n", "\n")
    typed, error = parse_flow(text)
    raw_base = form.get("flow_base")
    if error or raw_base is None:
        return typed, text, error
    base, base_error = parse_flow(str(raw_base))
    if base_error or base is None:
        return None, text, "The editor's form is damaged; reload the page."
    if typed != base:
        return typed, text, None
    flow = flow_form.read_form(form, base)
    if flow == base:
        return flow, text, None  # the JSON shows it already, as it was typed
    return flow, pretty(flow), None


@router.get("/bots")
async def bots(page: ReadPage) -> Response:
    answer = await bot_api.list_bots(page.granted, page.db, ALL)
    return page.render(
        "app/bots.html",
        bots=answer.data.items,
        may_manage=page.can(Permission.BOTS_MANAGE),
        values={"flow": pretty(STARTER_FLOW)},
    )


@router.post("/bots")
async def create_bot(request: Request, page: ManagePage) -> Response:
    form = await page.form()
    values = {k: str(form.get(k) or "") for k in ("name", "description", "flow")}
    flow, flow_error = parse_flow(values["flow"])
    fields = {"name": values["name"], "description": values["description"], "flow": flow or {}}
    body, errors = parse_form(BotCreate, fields)
    if flow_error:
        errors["flow"] = flow_error
    listed = (await bot_api.list_bots(page.granted, page.db, ALL)).data.items
    context = {"bots": listed, "may_manage": True, "values": values}
    try:
        if body is None or flow_error:
            return page.render("app/bots.html", 422, errors=errors, **context)
        answer = await attempt(
            page.db,
            lambda: bot_api.create_bot(page.granted, body, page.db, Auditor(request, page.db)),
        )
    except AppError as exc:
        problems = group_problems(flow or {}, exc.details) if exc.code == "flow_invalid" else None
        return page.render(
            "app/bots.html",
            exc.status_code,
            error=exc.message,
            problems=problems,
            nodes=outline(flow),
            **context,
        )
    return page.redirect(page.url(f"bots/{answer.data.id}"), "bot_created")


@router.get("/bots/{bot_id}")
async def bot_page(page: ReadPage, bot_id: uuid.UUID) -> Response:
    bot = await _bot(page, bot_id)
    return page.render("app/bot.html", **await _bot_context(page, bot))


@router.post("/bots/{bot_id}")
async def save_bot(request: Request, page: ManagePage, bot_id: uuid.UUID) -> Response:
    """The editor's form: an editing action (`op`: add a node, remove a button…) answers the
    page again with the change made and nothing saved; "Save draft" saves name, description,
    enabled and the flow through the API's update (which validates the flow). Problems are
    listed next to their node; what was typed is kept. JSON that does not parse is shown
    again with its error while the forms and the nodes list show the saved draft."""
    bot = await _bot(page, bot_id)
    await request.form(max_fields=flow_form.MAX_FORM_FIELDS)  # kept for page.form() below
    form = await page.form()
    op = str(form.get("op") or "save")
    values = {
        "name": str(form.get("name") or ""),
        "description": str(form.get("description") or ""),
        "enabled": form.get("enabled") == "on",
    }
    flow, flow_text, flow_error = _submitted(form)
    if flow_error or flow is None:
        context = await _bot_context(
            page,
            bot,
            errors={"flow": flow_error},
            error="Nothing was saved: the flow's JSON (Advanced, below) does not parse.",
            flow_text=flow_text,
            values=values,
            showing_saved=True,
            advanced_open=True,
        )
        return page.render("app/bot.html", 422, **context)
    if op != "save":
        return await _edited(page, bot, flow, op, form, values)
    body, errors = parse_form(BotUpdate, {**values, "flow": flow})
    from_json = form.get("flow_base") is None or flow_text != pretty(flow)
    keep = {
        "flow_text": flow_text,
        "values": values,
        "unsaved": True,
        "advanced_open": from_json and op == "save",
    }
    if body is None:
        context = await _bot_context(page, bot, flow, errors=errors, **keep)
        return page.render("app/bot.html", 422, **context)
    try:
        await attempt(
            page.db,
            lambda: bot_api.update_bot(
                page.granted, bot_id, body, page.db, Auditor(request, page.db)
            ),
        )
    except AppError as exc:
        problems = group_problems(flow, exc.details) if exc.code == "flow_invalid" else None
        context = await _bot_context(page, bot, flow, error=exc.message, **keep)
        if problems is not None:
            context["problems"] = problems
        return page.render("app/bot.html", exc.status_code, **context)
    return page.redirect(page.url(f"bots/{bot_id}"), "bot_saved")


async def _edited(
    page: Page, bot: BotOut, flow: dict[str, Any], op: str, form: Any, values: dict[str, Any]
) -> Response:
    """One editing action done on the submitted flow, answered as the page (not saved)."""
    error = None
    try:
        flow_form.apply(flow, op, form)
    except flow_form.EditorError as exc:
        error = str(exc)
    context = await _bot_context(page, bot, flow, values=values, unsaved=True, error=error)
    return page.render("app/bot.html", 422 if error else 200, **context)


@router.post("/bots/{bot_id}/publish")
async def publish_bot(request: Request, page: ManagePage, bot_id: uuid.UUID) -> Response:
    bot = await _bot(page, bot_id)
    form = await page.form()
    body, errors = parse_form(PublishIn, {"note": str(form.get("note") or "")})
    try:
        if body is None:
            raise Unprocessable(errors.get("note", "The note is too long."), code="invalid_note")
        await attempt(
            page.db,
            lambda: bot_api.publish_bot(
                page.granted, bot_id, body, page.db, Auditor(request, page.db)
            ),
        )
    except AppError as exc:
        problems = group_problems(bot.flow, exc.details) if exc.code == "flow_invalid" else None
        context = await _bot_context(page, bot, error=exc.message)
        if problems is not None:
            context["problems"] = problems
        return page.render("app/bot.html", exc.status_code, **context)
    return page.redirect(page.url(f"bots/{bot_id}"), "bot_published")


@router.post("/bots/{bot_id}/delete")
async def delete_bot(request: Request, page: ManagePage, bot_id: uuid.UUID) -> Response:
    """Deletes the bot and its versions (the API's delete; its conversations stop running it)."""
    await page.form()
    await bot_api.delete_bot(page.granted, bot_id, page.db, Auditor(request, page.db))
    return page.redirect(page.url("bots"), "bot_deleted")


def _carried(model: type[SimulatedState] | type[SimulatedContact], text: str) -> Any:
    """The state or contact the previous turn answered (a hidden field), checked again."""
    if not text:
        return None
    try:
        return model.model_validate_json(text)
    except ValidationError:
        raise Unprocessable(
            "The simulator's conversation state is not valid; start over.", code="invalid_state"
        ) from None


@router.post("/bots/{bot_id}/simulate")
async def simulate(request: Request, page: ManagePage, bot_id: uuid.UUID) -> Response:
    """One turn of the simulator: the typed message (or a tapped button's payload) in, what
    the bot would send and the state it reaches out; the state rides along in a hidden field
    so the next turn continues the same conversation."""
    form = await page.form()
    text = str(form.get("text") or "").strip()
    payload = str(form.get("payload") or "").strip()
    state = _carried(SimulatedState, str(form.get("state") or ""))
    contact = _carried(SimulatedContact, str(form.get("contact") or ""))
    version = str(form.get("version") or "draft")
    message = {"payload": payload} if payload else {"text": text}
    fields: dict[str, Any] = {
        "messages": [message],
        "version": version if version in ("draft", "published") else "draft",
        "state": state,
        "new_conversation": state is None,
    }
    if contact is not None:
        fields["contact"] = contact
    try:
        body = SimulateIn.model_validate(fields)
    except ValidationError:
        raise Unprocessable(
            "Type a message for the bot (up to 4,096 characters).", code="empty_message"
        ) from None
    answer = await bot_api.simulate_bot(
        page.granted, bot_id, body, page.db, page.runtime, Auditor(request, page.db)
    )
    turn = _turn(text, payload, answer.data)
    sim: dict[str, Any] = {
        "sim_turn": turn,
        "sim_state": answer.data.state.model_dump_json(),
        "sim_contact": answer.data.contact.model_dump_json(),
        "sim_version": body.version,
    }
    if is_htmx(request):
        return page.render("fragments/sim_turn.html", bot_id=bot_id, oob=True, **sim)
    bot = await _bot(page, bot_id)
    return page.render("app/bot.html", **await _bot_context(page, bot, **sim))


def _turn(text: str, payload: str, result: SimulateOut) -> dict[str, Any]:
    """What one simulated turn shows: the customer's bubble, the bot's, and the other events
    (attributes saved, handoff, errors) as small notes."""
    said: list[dict[str, Any]] = []
    notes: list[str] = []
    for event in result.events:
        data = event.data
        if event.kind == "send":
            message = data.get("message") or {}
            said.append(
                {
                    "text": message.get("text") or message.get("caption") or "",
                    "type": message.get("type", "text"),
                    "buttons": [
                        (str(b.get("id", "")), str(b.get("title", "")))
                        for b in message.get("buttons") or []
                        if isinstance(b, dict)
                    ],
                    "rows": [
                        str(r.get("title", ""))
                        for section in message.get("sections") or []
                        if isinstance(section, dict)
                        for r in section.get("rows") or []
                        if isinstance(r, dict)
                    ],
                }
            )
        elif event.kind == "attribute":
            notes.append(f"saved {data.get('name')} = {data.get('value')!r}")
        elif event.kind == "intent":
            notes.append(f"intent {data.get('name')} ({data.get('confidence')})")
        elif event.kind == "delay":
            notes.append(f"waits {data.get('seconds')} s")
        elif event.kind == "call":
            notes.append(f"call from {data.get('node')} → port {data.get('port')}")
        elif event.kind in ("handoff", "error", "paused", "no_match"):
            detail = data.get("message") or data.get("reason") or data.get("note") or ""
            notes.append(f"{event.kind.replace('_', ' ')}{': ' + str(detail) if detail else ''}")
    state = result.state
    return {
        "typed": text or f"[tapped {payload}]",
        "said": said,
        "notes": notes,
        "status": state.status,
        "node": state.node_id,
        "waiting": state.waiting,
        "variables": state.variables,
    }
