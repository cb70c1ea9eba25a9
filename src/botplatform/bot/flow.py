"""A flow is a JSON graph: triggers that start it, nodes that act, edges that join a node's
port to the next node.

    {"triggers": [{"type": "keyword", "keywords": ["hi"], "node": "welcome"}],
     "nodes": [{"id": "welcome", "type": "send_text", "text": "Hello {{contact.name}}"}, ...],
     "edges": [{"from": "welcome", "to": "ask_email", "port": "next"}]}

`validate` returns every problem at once, each naming the node, edge or trigger at fault, so
an editor can point at it. A port without an edge ends the run there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ValidationError

from botplatform.bot.conditions import check_rule
from botplatform.message.schemas import MessageBody

MAX_NODES = 300
MAX_EDGES = 1000
MAX_TRIGGERS = 50
NODE_ID = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_DELAY_SECONDS = 30 * 24 * 3600
ANSWER_KINDS = ("text", "email", "number", "phone", "date", "choice")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
# What any node may carry for the editor's sake; never read by the engine.
EDITOR_FIELDS = frozenset({"id", "type", "label", "position"})


@dataclass(frozen=True)
class FlowIssue:
    code: str
    message: str
    node: str | None = None
    edge: int | str | None = None
    trigger: int | None = None
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


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

TRIGGER_TYPES = ("keyword", "regex", "any_message", "new_conversation", "payload", "intent")
TRIGGER_FIELDS = frozenset(
    {"type", "node", "priority", "interrupt", "keywords", "match", "pattern", "payloads"}
    | {"intent", "min_confidence", "label"}
)


@dataclass
class _Check:
    issues: list[FlowIssue] = field(default_factory=list)

    def add(self, code: str, message: str, **where: Any) -> None:
        self.issues.append(FlowIssue(code, message, **where))


def _check_node(check: _Check, index: int, node: object, seen: set[str]) -> str | None:
    if not isinstance(node, dict):
        check.add("invalid_node", f"node #{index} must be an object", node=str(index))
        return None
    node_id = node.get("id")
    if not isinstance(node_id, str) or not NODE_ID.match(node_id):
        check.add(
            "invalid_node_id",
            f"node #{index} needs an `id` of 1-100 letters, digits, _ or -",
            node=str(node_id) if node_id is not None else str(index),
            field="id",
        )
        return None
    if node_id in seen:
        check.add("duplicate_node_id", f"two nodes are called {node_id!r}", node=node_id)
        return None
    seen.add(node_id)
    spec = NODE_TYPES.get(str(node.get("type")))
    if spec is None:
        check.add(
            "unknown_node_type",
            f"node {node_id!r} has unknown type {node.get('type')!r}; known: "
            + ", ".join(NODE_TYPES),
            node=node_id,
            field="type",
        )
        return node_id
    missing = [name for name in spec.required if node.get(name) in (None, "", [], {})]
    for name in missing:
        check.add("missing_field", f"node {node_id!r} needs `{name}`", node=node_id, field=name)
    allowed = set(spec.required) | set(spec.optional) | EDITOR_FIELDS
    for name in sorted(set(node) - allowed):
        check.add(
            "unknown_field", f"node {node_id!r} has no field `{name}`", node=node_id, field=name
        )
    if not missing:
        for name, problem in spec.check(node):
            check.add("invalid_field", f"{name}: {problem}", node=node_id, field=name)
    return node_id


def _check_trigger(check: _Check, index: int, trigger: object, nodes: set[str]) -> str | None:
    if not isinstance(trigger, dict):
        check.add("invalid_trigger", "a trigger must be an object", trigger=index)
        return None
    kind = trigger.get("type")
    if kind not in TRIGGER_TYPES:
        check.add(
            "unknown_trigger_type",
            f"unknown trigger type {kind!r}; known: {', '.join(TRIGGER_TYPES)}",
            trigger=index,
            field="type",
        )
        return None
    for name in sorted(set(trigger) - TRIGGER_FIELDS):
        check.add("unknown_field", f"a trigger has no `{name}`", trigger=index, field=name)
    for name, problem in _trigger_problems(trigger):
        code = "missing_field" if problem == "required" else "invalid_field"
        message = f"a {kind} trigger needs `{name}`" if code == "missing_field" else problem
        check.add(code, message, trigger=index, field=name)
    target = trigger.get("node")
    if not isinstance(target, str) or not target:
        check.add(
            "missing_field", "a trigger needs the `node` it starts", trigger=index, field="node"
        )
        return None
    if target not in nodes:
        check.add(
            "dangling_trigger",
            f"the trigger starts node {target!r}, which does not exist",
            trigger=index,
            field="node",
        )
        return None
    return target


def _trigger_problems(trigger: dict[str, Any]) -> Problems:
    kind = trigger["type"]
    problems: Problems = []
    priority = trigger.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool) or not -1000 <= priority <= 1000:
        problems.append(("priority", "must be a whole number from -1000 to 1000"))
    if kind == "keyword":
        words = trigger.get("keywords")
        if not words:
            problems.append(("keywords", "required"))
        elif not isinstance(words, list) or not all(
            isinstance(w, str) and 0 < len(w.strip()) <= 100 for w in words
        ):
            problems.append(("keywords", "must be a list of words or phrases"))
        if trigger.get("match", "exact") not in ("exact", "contains", "starts_with"):
            problems.append(("match", "must be `exact`, `contains` or `starts_with`"))
    elif kind == "regex":
        pattern = trigger.get("pattern")
        if not pattern:
            problems.append(("pattern", "required"))
        elif not isinstance(pattern, str) or len(pattern) > 500:
            problems.append(("pattern", "must be a regular expression of at most 500 characters"))
        else:
            try:
                re.compile(pattern)
            except re.error as exc:
                problems.append(("pattern", f"not a valid regular expression: {exc}"))
    elif kind == "payload":
        payloads = trigger.get("payloads")
        if not payloads:
            problems.append(("payloads", "required"))
        elif not isinstance(payloads, list) or not all(isinstance(p, str) and p for p in payloads):
            problems.append(("payloads", "must be a list of button or list-row ids"))
    elif kind == "intent":
        if not isinstance(trigger.get("intent"), str) or not trigger.get("intent"):
            problems.append(("intent", "required"))
        confidence = trigger.get("min_confidence", 0.6)
        if not isinstance(confidence, int | float) or not 0 <= confidence <= 1:
            problems.append(("min_confidence", "must be between 0 and 1"))
    return problems


def _check_edges(
    check: _Check, edges: list[Any], nodes: dict[str, dict[str, Any]]
) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {node_id: set() for node_id in nodes}
    used: set[tuple[str, str]] = set()
    for index, edge in enumerate(edges):
        where: int | str = index
        if not isinstance(edge, dict):
            check.add("invalid_edge", "an edge must be an object", edge=where)
            continue
        if isinstance(edge.get("id"), str):
            where = edge["id"]
        source, target, port = edge.get("from"), edge.get("to"), edge.get("port", "next")
        for name in sorted(set(edge) - {"id", "from", "to", "port", "label"}):
            check.add("unknown_field", f"an edge has no `{name}`", edge=where, field=name)
        for end, value in (("from", source), ("to", target)):
            if not isinstance(value, str) or value not in nodes:
                check.add(
                    "dangling_edge",
                    f"the edge's `{end}` names node {value!r}, which does not exist",
                    edge=where,
                    field=end,
                )
        if not isinstance(source, str) or source not in nodes:
            continue
        if not isinstance(port, str):
            check.add("invalid_edge", "an edge's `port` is a name", edge=where, field="port")
            continue
        spec = NODE_TYPES.get(str(nodes[source].get("type")))
        ports = spec.ports(nodes[source]) if spec else set()
        if spec is not None and port not in ports:
            allowed = ", ".join(sorted(ports)) or "none (it ends the run)"
            check.add(
                "unknown_port",
                f"node {source!r} has no port {port!r}; its ports: {allowed}",
                edge=where,
                node=source,
                field="port",
            )
            continue
        if (source, str(port)) in used:
            check.add(
                "duplicate_edge",
                f"node {source!r} already has an edge from port {port!r}",
                edge=where,
                node=source,
            )
            continue
        used.add((source, str(port)))
        if isinstance(target, str) and target in nodes:
            graph[source].add(target)
    return graph


def _reachable(graph: dict[str, set[str]], starts: set[str]) -> set[str]:
    seen, todo = set(starts), list(starts)
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def validate(flow: object) -> list[FlowIssue]:
    """Every problem of a flow; an empty list means it can be saved and published."""
    check = _Check()
    if not isinstance(flow, dict):
        return [FlowIssue("invalid_flow", "a flow is an object with triggers, nodes and edges")]
    for name in sorted(set(flow) - {"triggers", "nodes", "edges", "layout"}):
        check.add("unknown_field", f"a flow has no `{name}`", field=name)
    raw_nodes, edges, triggers = (flow.get(k, []) for k in ("nodes", "edges", "triggers"))
    for name, value, limit in (
        ("nodes", raw_nodes, MAX_NODES),
        ("edges", edges, MAX_EDGES),
        ("triggers", triggers, MAX_TRIGGERS),
    ):
        if not isinstance(value, list):
            return [FlowIssue("invalid_flow", f"`{name}` must be a list", field=name)]
        if len(value) > limit:
            return [FlowIssue("too_large", f"at most {limit} {name}", field=name)]
    seen: set[str] = set()
    nodes: dict[str, dict[str, Any]] = {}
    for index, node in enumerate(raw_nodes):
        node_id = _check_node(check, index, node, seen)
        if node_id is not None and isinstance(node, dict):
            nodes[node_id] = node
    starts = {
        target
        for index, trigger in enumerate(triggers)
        if (target := _check_trigger(check, index, trigger, set(nodes))) is not None
    }
    graph = _check_edges(check, edges, nodes)
    reachable = _reachable(graph, starts)
    for node_id in nodes:
        if node_id not in reachable:
            check.add(
                "unreachable_node",
                f"node {node_id!r} cannot be reached from any trigger",
                node=node_id,
            )
    return check.issues


@dataclass(frozen=True)
class Flow:
    """A validated flow, indexed for running."""

    triggers: list[dict[str, Any]]
    nodes: dict[str, dict[str, Any]]
    next: dict[tuple[str, str], str]

    @classmethod
    def load(cls, flow: dict[str, Any]) -> Flow:
        edges = {
            (str(e["from"]), str(e.get("port", "next"))): str(e["to"])
            for e in flow.get("edges", [])
        }
        nodes = {str(n["id"]): n for n in flow.get("nodes", [])}
        return cls(list(flow.get("triggers", [])), nodes, edges)

    def follow(self, node_id: str, port: str) -> str | None:
        return self.next.get((node_id, port))
