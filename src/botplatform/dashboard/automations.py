"""Automation rules: the list (run order), create and edit with the conditions and actions as
forms (AND/OR groups, every condition and action type; the JSON as an advanced view; the
API's own validation errors shown in the card they concern), enable/disable, delete, and each
rule's runs. Reading follows the API (`conversations:read`); changes need
`automations:manage`. Every action is the API's own endpoint function."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from botplatform.audit.dependencies import Auditor
from botplatform.authz.permissions import Permission
from botplatform.automation import endpoints as automation_api
from botplatform.automation.schemas import RuleCreate, RuleOut, RuleUpdate
from botplatform.channel import endpoints as channel_api
from botplatform.dashboard import automation_form, flow_form
from botplatform.dashboard.flow_form import EditorError
from botplatform.dashboard.web import NOTICES, Page, PageRoute, attempt, templates, ws_page
from botplatform.events.catalog import AUTOMATION_TRIGGERS, MESSAGE_RECEIVED
from botplatform.kit.errors import AppError, Unprocessable
from botplatform.kit.handlers import plain_message
from botplatform.kit.pagination import PageParams
from botplatform.member import endpoints as member_api
from botplatform.team import endpoints as team_api

router = APIRouter(prefix="/app/w/{ws}", route_class=PageRoute, include_in_schema=False)

ReadPage = Annotated[Page, ws_page(Permission.CONVERSATIONS_READ)]
ManagePage = Annotated[Page, ws_page(Permission.AUTOMATIONS_MANAGE)]
ALL_RULES = PageParams(200, None)
RUNS_PER_PAGE = 50
EVENTS: tuple[str, ...] = AUTOMATION_TRIGGERS
JSON_LIMIT = 20_000  # characters per textarea (the API body limit is larger)

NOTICES.setdefault("rule_created", "Automation rule created.")
NOTICES.setdefault("rule_deleted", "Automation rule deleted with its runs.")

EXAMPLE_CONDITIONS = {
    "all": [{"type": "message_content", "operator": "contains", "value": "refund"}]
}
EXAMPLE_ACTIONS = [{"type": "add_label", "labels": ["billing"]}]

templates.env.globals.update(
    CONDITION_LABELS=automation_form.CONDITION_LABELS,
    ACTION_LABELS=automation_form.ACTION_LABELS,
    CONDITION_OPERATORS=automation_form.OPERATORS,
    rule_group_of=automation_form.group_of,
    rule_shown=flow_form.shown,
    rule_pairs=automation_form.pairs_of,
)


class RuleFormError(Exception):
    """What is wrong with a submitted rule, per field (`actions.0.user_id`: message)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("invalid rule form")
        self.problems = problems


def _json_field(form: FormData, name: str, problems: list[tuple[str, str]]) -> Any:
    raw = str(form.get(name) or "").strip()
    if not raw:
        return None
    if len(raw) > JSON_LIMIT:
        problems.append((name, f"at most {JSON_LIMIT:,} characters"))
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        problems.append(
            (name, f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
        )
        return None


def _base(form: FormData) -> dict[str, Any] | None:
    """The rule the forms were drawn from (None: a form without them, JSON only)."""
    raw = form.get("rule_base")
    if raw is None:
        return None
    try:
        base = json.loads(str(raw))
    except json.JSONDecodeError:
        base = None
    if not isinstance(base, dict):
        raise Unprocessable("The editor's form is damaged; reload the page.", code="bad_form")
    return base


def _parts(form: FormData, problems: list[tuple[str, str]]) -> dict[str, Any]:
    """Conditions and actions: from the JSON view when it was changed (or is all there is),
    else the forms laid over the rule they were drawn from. `from_json` says which."""
    typed = {
        "conditions": _json_field(form, "conditions", problems),
        "actions": _json_field(form, "actions", problems),
    }
    base = _base(form)
    if base is None or problems:
        return {**typed, "from_json": True}
    drawn = {"conditions": base.get("conditions"), "actions": base.get("actions")}
    if typed != drawn:
        return {**typed, "from_json": True}
    return {**automation_form.read_form(form, drawn), "from_json": False}


def _fields(form: FormData) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    problems: list[tuple[str, str]] = []
    position = str(form.get("position") or "0").strip()
    fields: dict[str, Any] = {
        "name": str(form.get("name") or ""),
        "description": str(form.get("description") or ""),
        "event": str(form.get("event") or ""),
        "enabled": form.get("enabled") == "on",
        "position": position,
        **_parts(form, problems),
    }
    if fields["actions"] is None and not any(n == "actions" for n, _ in problems):
        problems.append(("actions", "give at least one action"))
    return fields, problems


def _model(model: type[RuleCreate] | type[RuleUpdate], fields: dict[str, Any]) -> Any:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        problems = [
            (
                ".".join(str(part) for part in error["loc"]) or "rule",
                plain_message(error),
            )
            for error in exc.errors()
        ]
        raise RuleFormError(problems[:30]) from exc


def _api_problems(exc: AppError) -> list[tuple[str, str]]:
    details = exc.details if isinstance(exc.details, list) else []
    found = [
        (str(d.get("field", "rule")), str(d.get("message", "")))
        for d in details
        if isinstance(d, dict)
    ]
    return found or [("rule", exc.message)]


def _text(value: Any) -> str:
    return "" if value is None else json.dumps(value, indent=2, ensure_ascii=False)


def _values(rule: RuleOut | None, form: FormData | None = None) -> dict[str, Any]:
    """What the form shows: what was submitted (to fix it), the rule, or a starting example."""
    if form is not None:
        return {
            "name": form.get("name") or "",
            "description": form.get("description") or "",
            "event": form.get("event") or "",
            "enabled": form.get("enabled") == "on",
            "position": form.get("position") or "0",
            "conditions": str(form.get("conditions") or "")[:JSON_LIMIT],
            "actions": str(form.get("actions") or "")[:JSON_LIMIT],
        }
    if rule is None:
        return {
            "name": "",
            "description": "",
            "event": MESSAGE_RECEIVED,
            "enabled": True,
            "position": "0",
            "conditions": _text(EXAMPLE_CONDITIONS),
            "actions": _text(EXAMPLE_ACTIONS),
        }
    return {
        "name": rule.name,
        "description": rule.description,
        "event": rule.event,
        "enabled": rule.enabled,
        "position": str(rule.position),
        "conditions": _text(rule.conditions),
        "actions": _text(rule.actions),
    }


@router.get("/automations")
async def automations(page: ReadPage) -> Response:
    answer = await automation_api.list_rules(page.granted, page.db, ALL_RULES, None)
    rules = sorted(answer.data.items, key=lambda r: (r.position, r.created_at))
    return page.render(
        "app/automations.html", rules=rules, may_manage=page.can(Permission.AUTOMATIONS_MANAGE)
    )


async def _editor(
    page: Page,
    rule: RuleOut | None,
    drawn: dict[str, Any],
    values: dict[str, Any],
    *,
    json_typed: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """What the rule form shows: `drawn` in the forms (and, unless the typed JSON did not
    parse, as the JSON view too), with the workspace's agents, teams and channels to pick."""
    if not json_typed:
        values = {
            **values,
            "conditions": _text(drawn["conditions"]),
            "actions": _text(drawn["actions"]),
        }
    members = (await member_api.list_members(page.granted, page.db, ALL_RULES)).data.items
    teams = (await team_api.list_teams(page.granted, page.db, ALL_RULES)).data.items
    channels = None
    if page.can(Permission.CHANNELS_READ):
        listed = await channel_api.list_channels(page.granted, page.db, ALL_RULES, page.runtime)
        channels = listed.data.items
    return {
        "rule": rule,
        "values": values,
        "events": EVENTS,
        "drawn": drawn,
        "rule_base": json.dumps(drawn, ensure_ascii=False),
        "form_action": page.url(f"automations/{rule.id}" if rule else "automations"),
        "members": [(str(m.user_id), f"{m.name} ({m.email})") for m in members],
        "teams": [(str(t.id), t.name) for t in teams],
        "channels": channels,
        "advanced_open": json_typed,
        **extra,
    }


def _drawn_of(rule: RuleOut | None) -> dict[str, Any]:
    if rule is None:
        return {"conditions": EXAMPLE_CONDITIONS, "actions": EXAMPLE_ACTIONS}
    return {"conditions": rule.conditions, "actions": rule.actions}


@router.get("/automations/new")
async def new_rule(page: ManagePage) -> Response:
    context = await _editor(page, None, _drawn_of(None), _values(None))
    return page.render("app/automation.html", **context)


async def _submitted(
    request: Request, page: Page, rule: RuleOut | None, runs: dict[str, Any]
) -> Response | uuid.UUID:
    """An editing action answers the page with the change made (nothing saved); bad JSON or
    a rule the API refuses answers the page with the problems. Saved: the rule's id."""
    await request.form(max_fields=automation_form.MAX_FORM_FIELDS)  # kept for page.form()
    form = await page.form()
    op = str(form.get("op") or "save")
    fields, problems = _fields(form)
    from_json = bool(fields.pop("from_json", False))
    json_broken = any(where in ("conditions", "actions") for where, _ in problems)
    if json_broken:
        base = _base(form)
        drawn = base if base is not None else _drawn_of(rule)
    else:
        drawn = {"conditions": fields["conditions"], "actions": fields["actions"]}
    if op != "save" and not json_broken:
        error = None
        try:
            automation_form.apply(drawn, op, form)
        except EditorError as exc:
            error = str(exc)
        context = await _editor(
            page, rule, drawn, _values(rule, form), unsaved=True, error=error, **runs
        )
        return page.render("app/automation.html", 422 if error else 200, **context)
    try:
        if problems:
            raise RuleFormError(problems)
        body = _model(RuleUpdate if rule else RuleCreate, fields)
        if rule is None:
            answer = await attempt(
                page.db,
                lambda: automation_api.create_rule(
                    page.granted, body, page.db, Auditor(request, page.db)
                ),
            )
            return answer.data.id
        rule_id = rule.id
        await attempt(
            page.db,
            lambda: automation_api.update_rule(
                page.granted, rule_id, body, page.db, Auditor(request, page.db)
            ),
        )
        return rule_id
    except RuleFormError as exc:
        status, found, message = 422, exc.problems, "The rule is not valid; see the problems below."
    except AppError as exc:
        status, found, message = exc.status_code, _api_problems(exc), exc.message
    context = await _editor(
        page,
        rule,
        drawn,
        _values(rule, form),
        json_typed=json_broken,
        advanced_open=from_json,
        problems=found,
        placed=automation_form.place(found),
        error=message,
        unsaved=True,
        **runs,
    )
    return page.render("app/automation.html", status, **context)


@router.post("/automations")
async def create_rule(request: Request, page: ManagePage) -> Response:
    answered = await _submitted(request, page, None, {})
    if isinstance(answered, Response):
        return answered
    return page.redirect(page.url(f"automations/{answered}"), "rule_created")


async def _runs_context(
    page: Page, rule_id: uuid.UUID, matched: str, cursor: str
) -> dict[str, Any]:
    chosen = {"yes": True, "no": False}.get(matched)
    try:
        answer = await automation_api.list_runs(
            page.granted, rule_id, page.db, PageParams(RUNS_PER_PAGE, cursor or None), chosen
        )
        problem = None
    except AppError as exc:
        if exc.code != "invalid_cursor":
            raise
        answer = await automation_api.list_runs(
            page.granted, rule_id, page.db, PageParams(RUNS_PER_PAGE, None), chosen
        )
        problem = "That page link is no longer valid; back to the newest runs."
    more = urlencode(
        {
            **({"matched": matched} if chosen is not None else {}),
            "cursor": answer.data.next_cursor or "",
        }
    )
    return {
        "runs": answer.data.items,
        "matched": matched if chosen is not None else "",
        "runs_problem": problem,
        "next_page": f"?{more}" if answer.data.next_cursor else None,
    }


@router.get("/automations/{rule_id}")
async def rule_page(
    page: ReadPage,
    rule_id: uuid.UUID,
    matched: Annotated[str, Query(max_length=10)] = "",
    cursor: Annotated[str, Query(max_length=500)] = "",
) -> Response:
    rule = (await automation_api.get_rule(page.granted, rule_id, page.db)).data
    runs = await _runs_context(page, rule_id, matched, cursor)
    if not page.can(Permission.AUTOMATIONS_MANAGE):
        return page.render(
            "app/automation.html", rule=rule, values=_values(rule), events=EVENTS, **runs
        )
    context = await _editor(page, rule, _drawn_of(rule), _values(rule), **runs)
    return page.render("app/automation.html", **context)


@router.post("/automations/{rule_id}")
async def edit_rule(request: Request, page: ManagePage, rule_id: uuid.UUID) -> Response:
    rule = (await automation_api.get_rule(page.granted, rule_id, page.db)).data
    runs = await _runs_context(page, rule_id, "", "")
    answered = await _submitted(request, page, rule, runs)
    if isinstance(answered, Response):
        return answered
    return page.redirect(page.url(f"automations/{rule_id}"), "saved")


@router.post("/automations/{rule_id}/enabled")
async def set_enabled(request: Request, page: ManagePage, rule_id: uuid.UUID) -> Response:
    form = await page.form()
    choice = str(form.get("enabled") or "")
    if choice not in ("true", "false"):
        raise Unprocessable("Choose enable or disable.", code="validation_error")
    body = RuleUpdate.model_validate({"enabled": choice == "true"})
    await automation_api.update_rule(
        page.granted, rule_id, body, page.db, Auditor(request, page.db)
    )
    back = "automations" if form.get("back") == "list" else f"automations/{rule_id}"
    return page.redirect(page.url(back), "saved")


@router.post("/automations/{rule_id}/delete")
async def delete_rule(request: Request, page: ManagePage, rule_id: uuid.UUID) -> Response:
    await page.form()
    await automation_api.delete_rule(page.granted, rule_id, page.db, Auditor(request, page.db))
    return page.redirect(page.url("automations"), "rule_deleted")
