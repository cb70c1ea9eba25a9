"""Message templates in the fake Graph API (the WhatsApp Business Management API's
`/{waba_id}/message_templates`): create, list page by page, delete.

A new template is `PENDING`; after `FakeGraph.template_approval_delay` seconds it is reviewed
and the signed `message_template_status_update` webhook goes to every number of its business
account: `APPROVED`, or `REJECTED` with `INVALID_FORMAT` when its body starts or ends with a
variable or puts two variables side by side (rules Meta rejects on too).

Errors look like Meta's: code 100 (`Invalid parameter`) with `error_user_title` and
`error_user_msg`; a name and language that already exist: subcode 2388024; a name and language
deleted in this sandbox's life (Meta blocks them for four weeks): subcode 2388023; an unknown
business account: subcode 33."""

from __future__ import annotations

import base64
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from botplatform.sandbox import payloads
from botplatform.sandbox.routes import _api_call, _control_body, _control_error, _unknown_object

if TYPE_CHECKING:
    from botplatform.sandbox.whatsapp import FakeGraph

NAME = re.compile(r"[a-z0-9_]{1,512}")
LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?")
CATEGORIES = ("MARKETING", "UTILITY", "AUTHENTICATION")
COMPONENT_TYPES = ("HEADER", "BODY", "FOOTER", "BUTTONS")
VARIABLE = r"\{\{\s*[A-Za-z0-9_]+\s*\}\}"
DEFAULT_LIMIT, MAX_LIMIT = 25, 100
DUPLICATE, BEING_DELETED, UNKNOWN_OBJECT = 2388024, 2388023, 33


class TemplateError(Exception):
    def __init__(self, title: str, message: str, subcode: int | None = None) -> None:
        super().__init__(message)
        self.title, self.message, self.subcode = title, message, subcode


@dataclass
class TemplateStore:
    """Every business account's templates, in creation order."""

    by_waba: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    deleted: set[tuple[str, str, str]] = field(default_factory=set)

    def of(self, waba_id: str) -> list[dict[str, Any]]:
        return self.by_waba.setdefault(waba_id, [])

    def find(self, template_id: str) -> tuple[str, dict[str, Any]] | None:
        for waba_id, templates in self.by_waba.items():
            for template in templates:
                if template["id"] == template_id:
                    return waba_id, template
        return None

    def create(self, waba_id: str, body: Any) -> dict[str, Any]:
        checked = check(body)
        key = (waba_id, checked["name"], checked["language"])
        if any((t["name"], t["language"]) == key[1:] for t in self.of(waba_id)):
            raise TemplateError(
                "Content in This Language Already Exists",
                f"There is already {checked['language']} content for this template. Create a "
                "new template and try again.",
                DUPLICATE,
            )
        if key in self.deleted:
            raise TemplateError(
                "Message Template Language Is Being Deleted",
                f"New {checked['language']} content can't be added while the existing content "
                "is being deleted. Try again in 4 weeks or create a new message template.",
                BEING_DELETED,
            )
        template = {
            "id": str(10**15 + secrets.randbelow(9 * 10**15)),
            "status": "PENDING",
            "quality_score": {"score": "UNKNOWN"},
            "rejected_reason": "NONE",
            **checked,
        }
        self.of(waba_id).append(template)
        return template

    def delete(self, waba_id: str, name: str, hsm_id: str | None) -> int:
        kept: list[dict[str, Any]] = []
        gone: list[dict[str, Any]] = []
        for template in self.of(waba_id):
            match = template["name"] == name and (hsm_id is None or template["id"] == hsm_id)
            (gone if match else kept).append(template)
        self.by_waba[waba_id] = kept
        self.deleted.update((waba_id, t["name"], t["language"]) for t in gone)
        return len(gone)


def _invalid(message: str) -> TemplateError:
    return TemplateError("Invalid parameter", message)


def check(body: Any) -> dict[str, Any]:
    """The template as Meta stores it, or the first rule it breaks."""
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.")
    name, language, category = body.get("name"), body.get("language"), body.get("category")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise _invalid("Param name must be lower-case letters, digits and underscores.")
    if not isinstance(language, str) or not LANGUAGE.fullmatch(language):
        raise _invalid("Param language must be a language code such as en_US.")
    if category not in CATEGORIES:
        raise _invalid(f"Param category must be one of {', '.join(CATEGORIES)}.")
    components = body.get("components")
    if not isinstance(components, list) or not components:
        raise _invalid("Param components is required and must be a non-empty array.")
    kinds = [c.get("type") if isinstance(c, dict) else None for c in components]
    if any(kind not in COMPONENT_TYPES for kind in kinds) or kinds.count("BODY") != 1:
        raise _invalid(
            "Param components must hold one BODY and at most one HEADER, FOOTER, BUTTONS."
        )
    for component in components:
        _check_component(component)
    return {
        "name": name,
        "language": language,
        "category": category,
        "parameter_format": body.get("parameter_format") or "POSITIONAL",
        "components": components,
    }


def _check_component(component: dict[str, Any]) -> None:
    kind, text = component["type"], component.get("text")
    if kind in ("BODY", "FOOTER") and not isinstance(text, str):
        raise _invalid(f"Param components[{kind}].text is required.")
    text = text if isinstance(text, str) else ""
    if kind == "BODY" and len(text) > 1024:
        raise _invalid("Message template body can have at most 1024 characters.")
    if kind == "FOOTER" and re.search(VARIABLE, text):
        raise _invalid("A footer can't have variables.")
    has_vars = re.search(VARIABLE, text)
    if kind in ("HEADER", "BODY") and has_vars and not component.get("example"):
        raise TemplateError(
            "Message template variables are missing sample values",
            "Add a sample for each variable in the `example` of the component.",
        )
    media = component.get("format", "TEXT") in ("IMAGE", "VIDEO", "DOCUMENT")
    if kind == "HEADER" and media and not (component.get("example") or {}).get("header_handle"):
        raise _invalid("A media header needs example.header_handle.")
    if kind == "BUTTONS":
        buttons = component.get("buttons")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 10:
            raise _invalid("Param buttons must have 1 to 10 buttons.")


def review(template: dict[str, Any]) -> tuple[str, str]:
    """Meta's verdict on a pending template: (status, reason)."""
    body = next(c for c in template["components"] if c.get("type") == "BODY")
    text = str(body.get("text", "")).strip()
    if (
        re.match(VARIABLE, text)
        or re.search(VARIABLE + "$", text)
        or re.search(VARIABLE + r"\s*" + VARIABLE, text)
    ):
        return "REJECTED", "INVALID_FORMAT"
    return "APPROVED", "NONE"


def status_value(template: dict[str, Any], event: str, reason: str) -> dict[str, Any]:
    return {
        "event": event,
        "message_template_id": int(template["id"]),
        "message_template_name": template["name"],
        "message_template_language": template["language"],
        "reason": reason,
        "message_template_category": template["category"],
    }


# -- routes ----------------------------------------------------------------------------------


def _graph(request: Request) -> FakeGraph:
    return cast("FakeGraph", request.app.state.graph)


def _error(exc: TemplateError, status: int = 400) -> JSONResponse:
    body = payloads.graph_error(100, "Invalid parameter", subcode=exc.subcode)
    body["error"].update(
        {"is_transient": False, "error_user_title": exc.title, "error_user_msg": exc.message}
    )
    return JSONResponse(body, status_code=status)


def _cursor(index: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"i": index}).encode()).decode()


def _index(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(cursor.encode()))["i"])
    except (ValueError, KeyError, TypeError) as exc:
        raise _invalid("Param after is not a valid cursor.") from exc


async def message_templates(request: Request) -> Response:
    """`GET`, `POST` or `DELETE /{version}/{waba_id}/message_templates`."""
    graph = _graph(request)
    body: Any = None
    if request.method == "POST":
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
    if (error := await _api_call(request, json_body=body)) is not None:
        return error
    waba_id = request.path_params["waba_id"]
    if waba_id not in graph.waba_ids():
        return _unknown_object(request.method.lower(), waba_id)
    try:
        if request.method == "POST":
            template = graph.templates.create(waba_id, body)
            graph.schedule_review(waba_id, template)
            return JSONResponse(
                {"id": template["id"], "status": "PENDING", "category": template["category"]}
            )
        if request.method == "DELETE":
            return _delete(graph, waba_id, request)
        return _list(graph, waba_id, request)
    except TemplateError as exc:
        return _error(exc)


def _delete(graph: FakeGraph, waba_id: str, request: Request) -> Response:
    name = request.query_params.get("name")
    if not name:
        raise _invalid("Param name is required.")
    if not graph.templates.delete(waba_id, name, request.query_params.get("hsm_id")):
        raise TemplateError("Message template not found", f"No message template {name!r}.")
    return JSONResponse({"success": True})


def _list(graph: FakeGraph, waba_id: str, request: Request) -> Response:
    try:
        limit = int(request.query_params.get("limit", DEFAULT_LIMIT))
    except ValueError as exc:
        raise _invalid("Param limit must be a number.") from exc
    limit = max(1, min(limit, MAX_LIMIT))
    start = _index(request.query_params.get("after"))
    templates = graph.templates.of(waba_id)
    page = templates[start : start + limit]
    answer: dict[str, Any] = {"data": page}
    if page:
        end = start + len(page)
        answer["paging"] = {"cursors": {"before": _cursor(start), "after": _cursor(end)}}
        if end < len(templates):
            params = {**request.query_params, "after": _cursor(end), "limit": str(limit)}
            query = "&".join(f"{k}={v}" for k, v in params.items())
            answer["paging"]["next"] = f"{str(request.url).split('?')[0]}?{query}"
    return JSONResponse(answer)


async def sandbox_template_status(request: Request) -> Response:
    """Be Meta's review: ``{"id": template id, "event": "PAUSED", "reason"?}`` sets the status
    and posts the status webhook."""
    body = await _control_body(request)
    template_id, event = body.get("id"), body.get("event")
    if not isinstance(template_id, str) or not isinstance(event, str):
        return _control_error('"id" (the template id) and "event" (e.g. PAUSED) are required')
    if not await _graph(request).set_template_status(
        template_id, event, str(body.get("reason") or "NONE")
    ):
        return _control_error(f"no template {template_id}")
    return JSONResponse({"ok": True})


def template_routes() -> list[Route]:
    return [
        Route("/_sandbox/templates/status", sandbox_template_status, methods=["POST"]),
        Route(
            "/{version}/{waba_id}/message_templates",
            message_templates,
            methods=["GET", "POST", "DELETE"],
        ),
    ]
