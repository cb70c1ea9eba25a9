"""The node types a flow may use: the fields each needs and allows, the ports it leaves by,
and the checks of its fields (the message a send node would send is validated with the same
limits an API send has)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from botplatform.bot.conditions import check_rule
from botplatform.message.schemas import MessageBody

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_DELAY_SECONDS = 30 * 24 * 3600
ANSWER_KINDS = ("text", "email", "number", "phone", "date", "choice")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
# What any node may carry for the editor's sake; never read by the engine.
EDITOR_FIELDS = frozenset({"id", "type", "label", "position"})


Problems = list[tuple[str, str]]  # (field, message)


@dataclass(frozen=True)
class NodeSpec:
    required: tuple[str, ...]
    optional: tuple[str, ...]
    ports: Callable[[dict[str, Any]], set[str]]
    check: Callable[[dict[str, Any]], Problems]
    waits_for_input: bool = False


def _fixed(*ports: str) -> Callable[[dict[str, Any]], set[str]]:
    return lambda _node: set(ports)


def _options(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The choices a buttons or list node (or a choice question) offers, as {id, title}."""
    if node.get("type") == "send_buttons":
        items = node.get("buttons")
        if not isinstance(items, list):
            return []
        return [b for b in items if isinstance(b, dict)]
    if node.get("type") == "send_list":
        raw = node.get("sections")
        sections: list[Any] = raw if isinstance(raw, list) else []
        return [
            row
            for section in sections
            if isinstance(section, dict) and isinstance(section.get("rows"), list)
            for row in section["rows"]
            if isinstance(row, dict)
        ]
    raw_choices = node.get("choices")
    choices: list[Any] = raw_choices if isinstance(raw_choices, list) else []
    return [c if isinstance(c, dict) else {"id": str(c), "title": str(c)} for c in choices]


def options(node: dict[str, Any]) -> list[dict[str, Any]]:
    return _options(node)


def _option_ports(node: dict[str, Any]) -> set[str]:
    return {str(o.get("id")) for o in _options(node)} | {"other", "invalid"}


def _body_problems(body: dict[str, Any], names: dict[str, str]) -> Problems:
    """Builds the message a send node would send (placeholders and all) to apply the same
    limits an API send has; errors are reported under the node's own field names."""
    try:
        MessageBody.model_validate(body)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            top = str(error["loc"][0]) if error["loc"] else ""
            where = ".".join(str(part) for part in error["loc"][1:])
            name = names.get(top, top or "node")
            problems.append((f"{name}.{where}" if where else name, str(error["msg"])))
        return problems
    return []


def _check_text(node: dict[str, Any]) -> Problems:
    return _body_problems({"type": "text", "text": node.get("text")}, {"text": "text"})


def _check_media(node: dict[str, Any]) -> Problems:
    kind = node.get("media_type")
    if kind not in MEDIA_KINDS:
        return [("media_type", f"must be one of {', '.join(MEDIA_KINDS)}")]
    media = {
        "link": node.get("url"),
        "id": node.get("media_id"),
        "caption": node.get("caption"),
        "filename": node.get("filename"),
    }
    body = {"type": kind, "media": {k: v for k, v in media.items() if v is not None}}
    return _body_problems(body, {"media": "media"})


def _unique_ids(node: dict[str, Any], field_name: str) -> Problems:
    ids = [str(o.get("id")) for o in _options(node)]
    if len(ids) != len(set(ids)):
        return [(field_name, "option ids must be unique")]
    if {"other", "invalid"} & set(ids):
        return [(field_name, "`other` and `invalid` are reserved port names")]
    return []


def _check_buttons(node: dict[str, Any]) -> Problems:
    body = {
        "type": "interactive",
        "text": node.get("text"),
        "buttons": node.get("buttons"),
        "header": node.get("header"),
        "footer": node.get("footer"),
    }
    names = {"text": "text", "buttons": "buttons", "header": "header", "footer": "footer"}
    problems = _body_problems({k: v for k, v in body.items() if v is not None}, names)
    if not node.get("buttons"):
        problems.append(("buttons", "at least one button is needed"))
    return problems + _unique_ids(node, "buttons") + _check_attempts(node)


def _check_list(node: dict[str, Any]) -> Problems:
    body = {
        "type": "interactive",
        "text": node.get("text"),
        "list_button": node.get("button"),
        "sections": node.get("sections"),
        "header": node.get("header"),
        "footer": node.get("footer"),
    }
    names = {"list_button": "button", "sections": "sections", "text": "text"}
    problems = _body_problems({k: v for k, v in body.items() if v is not None}, names)
    if not node.get("sections"):
        problems.append(("sections", "at least one section is needed"))
    if len(_options(node)) > 10:
        problems.append(("sections", "a list offers at most 10 rows in all"))
    return problems + _unique_ids(node, "sections") + _check_attempts(node)


def _check_template(node: dict[str, Any]) -> Problems:
    template = {k: node.get(k) for k in ("name", "language", "components") if k in node}
    return _body_problems({"type": "template", "template": template}, {"template": "template"})


def _check_attempts(node: dict[str, Any]) -> Problems:
    attempts = node.get("max_attempts", 3)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= 10:
        return [("max_attempts", "must be a whole number from 1 to 10")]
    retry = node.get("retry_message")
    if retry is not None and (not isinstance(retry, str) or not 0 < len(retry) <= 1000):
        return [("retry_message", "must be text of at most 1,000 characters")]
    return []


def _check_ask(node: dict[str, Any]) -> Problems:
    problems = _body_problems({"type": "text", "text": node.get("question")}, {"text": "question"})
    if not isinstance(node.get("attribute"), str) or not NAME.match(node["attribute"]):
        problems.append(("attribute", "must be a name of letters, digits and _"))
    kind = node.get("validation", "text")
    if kind not in ANSWER_KINDS:
        problems.append(("validation", f"must be one of {', '.join(ANSWER_KINDS)}"))
    if kind == "choice":
        choices = node.get("choices")
        if not isinstance(choices, list) or not 1 <= len(choices) <= 20:
            problems.append(("choices", "a choice question needs 1 to 20 choices"))
        elif not all(isinstance(c, str) and c.strip() for c in choices):
            problems.append(("choices", "each choice is a non-empty text"))
    return problems + _check_attempts(node)


def _check_condition(node: dict[str, Any]) -> Problems:
    rules = node.get("rules")
    if not isinstance(rules, list) or not 1 <= len(rules) <= 20:
        return [("rules", "give 1 to 20 rules")]
    if node.get("match", "all") not in ("all", "any"):
        return [("match", "must be `all` or `any`")]
    problems = []
    for index, rule in enumerate(rules):
        problem = check_rule(rule)
        if problem:
            problems.append((f"rules.{index}", problem))
    return problems


def _check_set_variable(node: dict[str, Any]) -> Problems:
    if not isinstance(node.get("name"), str) or not NAME.match(node["name"]):
        return [("name", "must be a name of letters, digits and _")]
    return []


def _check_http(node: dict[str, Any]) -> Problems:
    problems: Problems = []
    url = node.get("url")
    if not isinstance(url, str) or not re.match(r"^https?://", url) or len(url) > 2000:
        problems.append(("url", "must be an http(s) URL of at most 2,000 characters"))
    if node.get("method", "GET") not in HTTP_METHODS:
        problems.append(("method", f"must be one of {', '.join(HTTP_METHODS)}"))
    headers = node.get("headers", {})
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        problems.append(("headers", "must map header names to text"))
    timeout = node.get("timeout_seconds", 10)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= 30:
        problems.append(("timeout_seconds", "must be more than 0 and at most 30"))
    save = node.get("save", {})
    if not isinstance(save, dict) or not all(
        isinstance(k, str) and NAME.match(k) and isinstance(v, str) for k, v in save.items()
    ):
        problems.append(("save", "must map variable names to JSON paths such as `data.id`"))
    return problems


def _check_ai(node: dict[str, Any]) -> Problems:
    for name in ("question", "instructions"):
        value = node.get(name)
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 4000):
            return [(name, "must be text of at most 4,000 characters")]
    save_as = node.get("save_as")
    if save_as is not None and (not isinstance(save_as, str) or not NAME.match(save_as)):
        return [("save_as", "must be a name of letters, digits and _")]
    return []


def _check_delay(node: dict[str, Any]) -> Problems:
    seconds = node.get("seconds")
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        return [("seconds", "must be a whole number of seconds")]
    if not 1 <= seconds <= MAX_DELAY_SECONDS:
        return [("seconds", f"must be from 1 to {MAX_DELAY_SECONDS} (30 days)")]
    return []


def _check_optional_text(node: dict[str, Any]) -> Problems:
    for name in ("message", "note"):
        value = node.get(name)
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 4096):
            return [(name, "must be text of at most 4,096 characters")]
    return []


NODE_TYPES: dict[str, NodeSpec] = {
    "send_text": NodeSpec(("text",), ("preview_url",), _fixed("next"), _check_text),
    "send_media": NodeSpec(
        ("media_type",), ("url", "media_id", "caption", "filename"), _fixed("next"), _check_media
    ),
    "send_buttons": NodeSpec(
        ("text", "buttons"),
        ("header", "footer", "retry_message", "max_attempts", "save_as"),
        _option_ports,
        _check_buttons,
        waits_for_input=True,
    ),
    "send_list": NodeSpec(
        ("text", "button", "sections"),
        ("header", "footer", "retry_message", "max_attempts", "save_as"),
        _option_ports,
        _check_list,
        waits_for_input=True,
    ),
    "send_template": NodeSpec(
        ("name", "language"), ("components",), _fixed("next"), _check_template
    ),
    "ask": NodeSpec(
        ("question", "attribute"),
        ("validation", "choices", "retry_message", "max_attempts"),
        _fixed("next", "invalid"),
        _check_ask,
        waits_for_input=True,
    ),
    "condition": NodeSpec(("rules",), ("match",), _fixed("true", "false"), _check_condition),
    "set_variable": NodeSpec(("name", "value"), (), _fixed("next"), _check_set_variable),
    "http_request": NodeSpec(
        ("url",),
        ("method", "headers", "body", "timeout_seconds", "save"),
        _fixed("next", "error"),
        _check_http,
    ),
    "ai_answer": NodeSpec(
        (), ("question", "instructions", "save_as"), _fixed("next", "fallback"), _check_ai
    ),
    "delay": NodeSpec(("seconds",), (), _fixed("next"), _check_delay),
    "handoff": NodeSpec((), ("message", "note"), _fixed(), _check_optional_text),
    "end": NodeSpec((), ("message",), _fixed(), _check_optional_text),
}
