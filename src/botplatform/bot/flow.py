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
from dataclasses import asdict, dataclass, field
from typing import Any

from botplatform.bot.nodes import EDITOR_FIELDS, NODE_TYPES, Problems

MAX_NODES = 300
MAX_EDGES = 1000
MAX_TRIGGERS = 50
NODE_ID = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")


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
