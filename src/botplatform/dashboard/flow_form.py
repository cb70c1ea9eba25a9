"""The flow editor's forms: a flow as one form (each node's fields, each output port's target,
each trigger), and back. The form carries the flow it was drawn from (`flow_base`); reading a
submission starts from that flow and lays the typed fields over it, so what the forms do not
show (an editor's `position`, a template's other components, a field the validator will
refuse) is kept as it was, and a flow that goes through the forms unchanged comes back equal.
Editing actions (add a node, remove a button, add a rule…) change the read flow; nothing is
saved until the draft is."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Undefined

from botplatform.bot.conditions import DAYS, KINDS, OPERATORS
from botplatform.bot.flow import TRIGGER_TYPES
from botplatform.bot.nodes import ANSWER_KINDS, HTTP_METHODS, MEDIA_KINDS, NODE_TYPES, options

Form = Mapping[str, Any]

NODE_LABELS = {
    "send_text": "Send text",
    "send_media": "Send media",
    "send_buttons": "Buttons",
    "send_list": "List menu",
    "send_template": "Template",
    "ask": "Ask a question",
    "condition": "Condition",
    "set_variable": "Set variable",
    "http_request": "HTTP request",
    "ai_answer": "AI answer",
    "delay": "Delay",
    "handoff": "Hand off to an agent",
    "end": "End",
}
TRIGGER_LABELS = {
    "keyword": "Keyword",
    "regex": "Regular expression",
    "any_message": "Any message",
    "new_conversation": "New conversation",
    "payload": "Button or row id",
    "intent": "Intent (AI)",
}
PORT_LABELS = {
    "next": "Next",
    "invalid": "Invalid answer (after the attempts)",
    "other": "Anything else typed",
    "true": "When true",
    "false": "When false",
    "error": "On error",
    "fallback": "When the AI has no answer",
}
RULE_LABELS = {
    "attribute": "Contact attribute",
    "variable": "Variable",
    "time_of_day": "Time of day",
    "business_hours": "Business hours",
}
# What a new node starts with: enough for its fields to show, the rest is typed in the form.
NEW_NODE: dict[str, dict[str, Any]] = {
    "send_buttons": {"text": "", "buttons": [{"id": "option_1", "title": ""}]},
    "send_list": {
        "text": "",
        "button": "Menu",
        "sections": [{"title": "", "rows": [{"id": "row_1", "title": ""}]}],
    },
    "ask": {"question": "", "attribute": "", "validation": "text"},
    "condition": {"match": "all", "rules": [{"kind": "variable", "name": "", "op": "equals"}]},
    "send_media": {"media_type": "image"},
    "http_request": {"url": "", "method": "GET"},
    "delay": {"seconds": 60},
    "send_template": {"name": "", "language": "en"},
    "set_variable": {"name": "", "value": ""},
}
NEW_RULE: dict[str, dict[str, Any]] = {
    "attribute": {"kind": "attribute", "name": "", "op": "exists"},
    "variable": {"kind": "variable", "name": "", "op": "equals", "value": ""},
    "time_of_day": {"kind": "time_of_day", "from": "09:00", "to": "17:00", "timezone": "UTC"},
    "business_hours": {
        "kind": "business_hours",
        "timezone": "UTC",
        "hours": {day: ["09:00", "17:00"] for day in DAYS[:5]},
    },
}
MAX_BUTTONS = 3
# A flow of 300 nodes is a form of a few thousand fields (Starlette stops at 1,000 by default).
MAX_FORM_FIELDS = 20_000
MAX_ROWS = 10


class EditorError(Exception):
    """An editing action that cannot be done (a message for the user)."""


# --- reading the form ----------------------------------------------------------------------


def _text(form: Form, name: str) -> str | None:
    value = form.get(name)
    return None if value is None else str(value).replace("\r\n", "\n")


def _render(value: Any) -> str:
    """How a value shows in a text field."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    return json.dumps(value, ensure_ascii=False)


def _lines_of(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return _render(value)


def _pairs_of(value: Any, sep: str) -> str:
    if isinstance(value, dict):
        return "\n".join(f"{k}{sep}{_render(v)}" for k, v in value.items())
    return _render(value)


def words(text: str) -> list[str]:
    """Comma-separated words, as a list."""
    return [w.strip() for w in text.split(",") if w.strip()]


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def text_pairs(text: str, sep: str) -> dict[str, str] | str:
    """`key<sep>value` lines as a dict, or the text itself when a line is not one."""
    found: dict[str, str] = {}
    for line in _lines(text):
        if sep.strip() not in line:
            return text  # kept as typed: the validator says what is wrong
        key, _, value = line.partition(sep.strip())
        found[key.strip()] = value.strip()
    return found


def number(text: str) -> int | float | str:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text  # the validator names the field


def _json_or_text(text: str) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value if isinstance(value, dict | list) else text


@dataclass
class Reader:
    """Lays one object's form fields (named `prefix.key`) over a copy of what it was."""

    form: Form
    prefix: str
    target: dict[str, Any]

    def set(
        self,
        key: str,
        parse: Callable[[str], Any] = str,
        show: Callable[[Any], str] = _render,
        *,
        keep_empty: bool = False,
        default: str | None = None,
    ) -> None:
        typed = _text(self.form, f"{self.prefix}.{key}")
        if typed is None:
            return  # not on the form: unchanged
        if key in self.target and show(self.target[key]) == typed:
            return  # unchanged, whatever its JSON type
        if key not in self.target and typed == default:
            return  # a select showing the default of a field left out
        if typed.strip() == "" and not keep_empty:
            self.target.pop(key, None)
        else:
            self.target[key] = parse(typed) if typed.strip() else typed

    def check(self, key: str, default: bool = False) -> None:
        """A checkbox; the hidden `prefix.key.shown` says it was on the form."""
        if _text(self.form, f"{self.prefix}.{key}.shown") is None:
            return
        on = self.form.get(f"{self.prefix}.{key}") == "on"
        if bool(self.target.get(key, default)) == on:
            return
        if on == default:
            self.target.pop(key, None)
        else:
            self.target[key] = on


def _read_options(form: Form, prefix: str, items: Any, keys: tuple[str, ...]) -> Any:
    if not isinstance(items, list):
        return items
    read = []
    for j, item in enumerate(items):
        if isinstance(item, dict):
            item = copy.deepcopy(item)
            reader = Reader(form, f"{prefix}.{j}", item)
            for key in keys:
                reader.set(key)
        read.append(item)
    return read


def _read_rule(form: Form, prefix: str, rule: Any) -> Any:
    if not isinstance(rule, dict):
        return rule
    rule = copy.deepcopy(rule)
    reader = Reader(form, prefix, rule)
    if rule.get("kind") in ("attribute", "variable"):
        reader.set("name")
        reader.set("op")
        op = _text(form, f"{prefix}.op") or rule.get("op")
        if op == "in":
            reader.set("value", words)
        elif op in ("exists", "not_exists"):
            if _text(form, f"{prefix}.value") is not None:
                rule.pop("value", None)
        else:
            reader.set("value", keep_empty=True)
    elif rule.get("kind") == "time_of_day":
        for key in ("from", "to", "timezone"):
            reader.set(key)
        if _text(form, f"{prefix}.days.shown") is not None:
            days = [d for d in DAYS if form.get(f"{prefix}.days.{d}") == "on"]
            if days != rule.get("days", list(DAYS)):
                rule["days"] = days
    elif rule.get("kind") == "business_hours":
        reader.set("timezone")
        if _text(form, f"{prefix}.hours.shown") is not None:
            hours: dict[str, list[str]] = {}
            for day in DAYS:
                opens = str(form.get(f"{prefix}.hours.{day}.opens") or "")
                closes = str(form.get(f"{prefix}.hours.{day}.closes") or "")
                if opens or closes:
                    hours[day] = [opens, closes]
            old = rule.get("hours")
            if not (isinstance(old, dict) and old == hours):
                rule["hours"] = hours
    return rule


def _read_template(form: Form, prefix: str, node: dict[str, Any]) -> None:
    """Body parameters, one per line; other components are kept."""
    typed = _text(form, f"{prefix}.body_params")
    if typed is None:
        return
    components = node.get("components")
    listed: list[Any] = components if isinstance(components, list) else []
    if body_params(node) == _lines(typed):
        return
    others = [c for c in listed if not (isinstance(c, dict) and c.get("type") == "body")]
    params = [{"type": "text", "text": p} for p in _lines(typed)]
    rebuilt = others + ([{"type": "body", "parameters": params}] if params else [])
    if rebuilt:
        node["components"] = rebuilt
    else:
        node.pop("components", None)


def body_params(node: dict[str, Any]) -> list[str]:
    components = node.get("components")
    for component in components if isinstance(components, list) else []:
        if isinstance(component, dict) and component.get("type") == "body":
            params = component.get("parameters")
            return [str(p.get("text", "")) for p in params or [] if isinstance(p, dict)]
    return []


def _read_node(form: Form, i: int, node: dict[str, Any]) -> dict[str, Any]:
    node = copy.deepcopy(node)
    prefix = f"n{i}"
    reader = Reader(form, prefix, node)
    reader.set("id", keep_empty=True)
    reader.set("label")
    kind = node.get("type")
    if kind == "send_text":
        reader.set("text")
        reader.check("preview_url")
    elif kind == "send_media":
        for key in ("media_type", "url", "media_id", "caption", "filename"):
            reader.set(key)
    elif kind in ("send_buttons", "send_list"):
        for key in ("text", "header", "footer", "save_as", "retry_message"):
            reader.set(key)
        reader.set("max_attempts", number)
        if kind == "send_buttons":
            node["buttons"] = _read_options(
                form, f"{prefix}.b", node.get("buttons"), ("id", "title")
            )
        else:
            reader.set("button")
            sections = node.get("sections")
            if isinstance(sections, list):
                read = _read_options(form, f"{prefix}.s", sections, ("title",))
                for k, section in enumerate(read):
                    if isinstance(section, dict):
                        section["rows"] = _read_options(
                            form, f"{prefix}.s.{k}.r", section.get("rows"),
                            ("id", "title", "description"),
                        )  # fmt: skip
                node["sections"] = read
    elif kind == "send_template":
        reader.set("name")
        reader.set("language")
        _read_template(form, prefix, node)
    elif kind == "ask":
        for key in ("question", "attribute", "retry_message"):
            reader.set(key)
        reader.set("validation", default="text")
        reader.set("max_attempts", number)
        reader.set("choices", _lines, _lines_of)
    elif kind == "condition":
        reader.set("match", default="all")
        rules = node.get("rules")
        if isinstance(rules, list):
            node["rules"] = [_read_rule(form, f"{prefix}.r.{k}", r) for k, r in enumerate(rules)]
    elif kind == "set_variable":
        reader.set("name")
        reader.set("value", show=json_text, keep_empty=True)
    elif kind == "http_request":
        reader.set("url")
        reader.set("method", default="GET")
        reader.set("headers", lambda t: text_pairs(t, ": "), lambda v: _pairs_of(v, ": "))
        reader.set("body", _json_or_text, json_text)
        reader.set("timeout_seconds", number)
        reader.set("save", lambda t: text_pairs(t, " = "), lambda v: _pairs_of(v, " = "))
    elif kind == "ai_answer":
        for key in ("question", "instructions", "save_as"):
            reader.set(key)
    elif kind == "delay":
        reader.set("seconds", number)
    elif kind in ("handoff", "end"):
        reader.set("message")
        if kind == "handoff":
            reader.set("note")
    return node


def _read_trigger(form: Form, k: int, trigger: dict[str, Any]) -> dict[str, Any]:
    trigger = copy.deepcopy(trigger)
    reader = Reader(form, f"t{k}", trigger)
    reader.set("node", keep_empty=True)
    reader.set("priority", number)
    reader.check("interrupt")
    kind = trigger.get("type")
    if kind == "keyword":
        reader.set("keywords", words)
        reader.set("match", default="exact")
    elif kind == "regex":
        reader.set("pattern")
    elif kind == "payload":
        reader.set("payloads", words)
    elif kind == "intent":
        reader.set("intent")
        reader.set("min_confidence", number)
    return trigger


# --- ports -------------------------------------------------------------------------------


@dataclass
class Port:
    name: str  # the port's name in the flow (a button id, `next`, `true`…)
    field: str  # the form field that picks its target
    label: str
    target: str = ""
    known: bool = True


def ports_of(node: dict[str, Any], i: int, edges: list[Any]) -> list[Port]:
    """The node's output ports, each with the form field for its target: a button's or a row's
    port is named by its position, so renaming the option keeps its edge."""
    spec = NODE_TYPES.get(str(node.get("type")))
    listed: list[Port] = []
    if spec is not None:
        names = spec.ports(node)
        if node.get("type") in ("send_buttons", "send_list"):
            for j, option in enumerate(options(node)):
                title = option.get("title") or option.get("id")
                listed.append(Port(str(option.get("id")), f"n{i}.po.{j}", f"“{title}” tapped"))
            names = names - {p.name for p in listed}
        order = ("next", "true", "false", "other", "invalid", "error", "fallback")
        for name in sorted(names, key=lambda n: order.index(n) if n in order else 99):
            listed.append(Port(name, f"n{i}.port.{name}", PORT_LABELS.get(name, name)))
    shown = {p.name for p in listed}
    for edge in edges:
        if isinstance(edge, dict) and edge.get("from") == node.get("id"):
            name = str(edge.get("port", "next"))
            if name not in shown:
                shown.add(name)
                listed.append(Port(name, f"n{i}.port.{name}", f"{name} (not a port)", known=False))
    for port in listed:
        port.target = next(
            (
                str(e.get("to", ""))
                for e in edges
                if isinstance(e, dict)
                and e.get("from") == node.get("id")
                and str(e.get("port", "next")) == port.name
            ),
            "",
        )
    return listed


def _read_edges(
    form: Form, base: dict[str, Any], nodes: list[Any], renamed: dict[str, str]
) -> list[Any]:
    """The edges the port selects give, in the order of the edges they replace (new ones
    last); an edge from a port the form did not show is kept."""
    raw_edges = base.get("edges")
    edges: list[Any] = raw_edges if isinstance(raw_edges, list) else []
    chosen: dict[tuple[str, str], str] = {}  # (old from, old port) -> new target
    names: dict[tuple[str, str], tuple[str, str]] = {}  # old (from, port) -> new (from, port)
    base_nodes = base.get("nodes") if isinstance(base.get("nodes"), list) else []
    for i, old in enumerate(base_nodes or []):
        if not isinstance(old, dict) or i >= len(nodes) or not isinstance(nodes[i], dict):
            continue
        new_ports = {p.field: p.name for p in ports_of(nodes[i], i, [])}
        for port in ports_of(old, i, edges):
            typed = _text(form, port.field)
            if typed is None:
                continue
            key = (str(old.get("id")), port.name)
            chosen[key] = renamed.get(typed, typed)
            names[key] = (str(nodes[i].get("id")), new_ports.get(port.field, port.name))
    read: list[Any] = []
    done: set[tuple[str, str]] = set()
    for edge in edges:
        if not isinstance(edge, dict):
            read.append(edge)
            continue
        key = (str(edge.get("from")), str(edge.get("port", "next")))
        if key not in chosen:
            moved = dict(edge)
            for end in ("from", "to"):
                if isinstance(moved.get(end), str):
                    moved[end] = renamed.get(moved[end], moved[end])
            read.append(moved)
            continue
        done.add(key)
        if not chosen[key]:
            continue
        source, port_name = names[key]
        if edge.get("to") == chosen[key] and edge.get("from") == source and port_name == key[1]:
            read.append(edge)  # untouched, as it was written
            continue
        moved = {**edge, "from": source, "to": chosen[key]}
        if port_name != key[1] or "port" in edge:
            moved["port"] = port_name
        read.append(moved)
    for key, target in chosen.items():
        if key not in done and target:
            source, port_name = names[key]
            read.append(_new_edge(source, target, port_name))
    return read


def _new_edge(source: str, target: str, port: str) -> dict[str, str]:
    edge = {"from": source, "to": target}
    return edge if port == "next" else {**edge, "port": port}


def read_form(form: Form, base: dict[str, Any]) -> dict[str, Any]:
    """The flow the editor's forms describe, laid over `base` (the flow they were drawn from)."""
    flow = copy.deepcopy(base)
    raw_nodes = base.get("nodes")
    if isinstance(raw_nodes, list):
        nodes = [
            _read_node(form, i, n) if isinstance(n, dict) else n for i, n in enumerate(raw_nodes)
        ]
        renamed = {
            str(old.get("id")): str(new.get("id"))
            for old, new in zip(raw_nodes, nodes, strict=True)
            if isinstance(old, dict) and isinstance(new, dict) and old.get("id") != new.get("id")
        }
        flow["nodes"] = nodes
        if isinstance(base.get("edges", []), list):
            flow["edges"] = _read_edges(form, base, nodes, renamed)
            if not flow["edges"] and "edges" not in base:
                del flow["edges"]
    else:
        renamed = {}
    raw_triggers = base.get("triggers")
    if isinstance(raw_triggers, list):
        triggers = []
        for k, trigger in enumerate(raw_triggers):
            if isinstance(trigger, dict):
                trigger = _read_trigger(form, k, trigger)
                target = trigger.get("node")
                if isinstance(target, str) and target in renamed:
                    trigger["node"] = renamed[target]
            triggers.append(trigger)
        flow["triggers"] = triggers
    return flow


# --- editing actions ---------------------------------------------------------------------


def _nodes(flow: dict[str, Any]) -> list[Any]:
    nodes = flow.setdefault("nodes", [])
    if not isinstance(nodes, list):
        raise EditorError("The flow's `nodes` is not a list; fix it in the JSON view.")
    return nodes


def _node(flow: dict[str, Any], index: str) -> dict[str, Any]:
    nodes = _nodes(flow)
    if not index.isdigit() or int(index) >= len(nodes) or not isinstance(nodes[int(index)], dict):
        raise EditorError("That node is no longer in the flow.")
    node: dict[str, Any] = nodes[int(index)]
    return node


def _list_in(holder: dict[str, Any], key: str) -> list[Any]:
    items = holder.setdefault(key, [])
    if not isinstance(items, list):
        raise EditorError(f"`{key}` is not a list; fix it in the JSON view.")
    return items


def _at(items: list[Any], index: str) -> int:
    if not index.isdigit() or int(index) >= len(items):
        raise EditorError("That item is no longer in the flow.")
    return int(index)


def _fresh_id(taken: set[str], stem: str) -> str:
    n = 1
    while f"{stem}_{n}" in taken:
        n += 1
    return f"{stem}_{n}"


def _add_node(flow: dict[str, Any], form: Form) -> str:
    kind = str(form.get("new_type") or "")
    if kind not in NODE_TYPES:
        raise EditorError("Choose the type of the new node.")
    nodes = _nodes(flow)
    taken = {str(n.get("id")) for n in nodes if isinstance(n, dict)}
    wanted = str(form.get("new_id") or "").strip()
    if wanted and wanted in taken:
        raise EditorError(f"There is already a node called “{wanted}”.")
    node_id = wanted or _fresh_id(taken, kind.removeprefix("send_"))
    nodes.append({"id": node_id, "type": kind, **copy.deepcopy(NEW_NODE.get(kind, {}))})
    source = str(form.get("new_from") or "")
    if source:
        # the field of a port's select (`n3.po.0`, `n3.port.next`): the new node follows it,
        # under the port's name as this submission left it (a renamed button keeps its port)
        found = re.match(r"^n(\d+)\.", source)
        index = int(found.group(1)) if found else -1
        origin = nodes[index] if 0 <= index < len(nodes) - 1 else None
        port = (
            next((p for p in ports_of(origin, index, []) if p.field == source), None)
            if isinstance(origin, dict)
            else None
        )
        if port is None or not isinstance(origin, dict):
            raise EditorError("That port is no longer in the flow.")
        _drop_port_edge(flow, origin, port.name)
        _list_in(flow, "edges").append(_new_edge(str(origin.get("id")), node_id, port.name))
    return f"n{len(nodes) - 1}"


def _remove_node(flow: dict[str, Any], index: str) -> None:
    node = _node(flow, index)
    node_id = node.get("id")
    _nodes(flow).pop(int(index))
    edges = flow.get("edges")
    if isinstance(edges, list):
        flow["edges"] = [
            e
            for e in edges
            if not (isinstance(e, dict) and node_id in (e.get("from"), e.get("to")))
        ]
    triggers = flow.get("triggers")
    for trigger in triggers if isinstance(triggers, list) else []:
        if isinstance(trigger, dict) and trigger.get("node") == node_id:
            trigger["node"] = ""


def _drop_port_edge(flow: dict[str, Any], node: dict[str, Any], port: str) -> None:
    edges = flow.get("edges")
    if isinstance(edges, list):
        flow["edges"] = [
            e
            for e in edges
            if not (
                isinstance(e, dict)
                and e.get("from") == node.get("id")
                and str(e.get("port", "next")) == port
            )
        ]


def _add_option(flow: dict[str, Any], index: str) -> None:
    node = _node(flow, index)
    buttons = _list_in(node, "buttons")
    if len(buttons) >= MAX_BUTTONS:
        raise EditorError(f"A buttons message has at most {MAX_BUTTONS} buttons; use a list menu.")
    taken = {str(o.get("id")) for o in options(node)}
    buttons.append({"id": _fresh_id(taken, "option"), "title": ""})


def _remove_option(flow: dict[str, Any], index: str, j: str) -> None:
    node = _node(flow, index)
    buttons = _list_in(node, "buttons")
    removed = buttons.pop(_at(buttons, j))
    if isinstance(removed, dict):
        _drop_port_edge(flow, node, str(removed.get("id")))


def _add_section(flow: dict[str, Any], index: str) -> None:
    node = _node(flow, index)
    taken = {str(o.get("id")) for o in options(node)}
    _list_in(node, "sections").append(
        {"title": "", "rows": [{"id": _fresh_id(taken, "row"), "title": ""}]}
    )


def _section(node: dict[str, Any], k: str) -> dict[str, Any]:
    sections = _list_in(node, "sections")
    section = sections[_at(sections, k)]
    if not isinstance(section, dict):
        raise EditorError("That section is not an object; fix it in the JSON view.")
    return section


def _remove_section(flow: dict[str, Any], index: str, k: str) -> None:
    node = _node(flow, index)
    section = _section(node, k)
    for row in section.get("rows") or []:
        if isinstance(row, dict):
            _drop_port_edge(flow, node, str(row.get("id")))
    sections = _list_in(node, "sections")
    sections.pop(_at(sections, k))


def _add_row(flow: dict[str, Any], index: str, k: str) -> None:
    node = _node(flow, index)
    if len(options(node)) >= MAX_ROWS:
        raise EditorError(f"A list menu has at most {MAX_ROWS} rows in all.")
    taken = {str(o.get("id")) for o in options(node)}
    _list_in(_section(node, k), "rows").append({"id": _fresh_id(taken, "row"), "title": ""})


def _remove_row(flow: dict[str, Any], index: str, k: str, m: str) -> None:
    node = _node(flow, index)
    rows = _list_in(_section(node, k), "rows")
    removed = rows.pop(_at(rows, m))
    if isinstance(removed, dict):
        _drop_port_edge(flow, node, str(removed.get("id")))


def _add_rule(flow: dict[str, Any], index: str, form: Form) -> None:
    node = _node(flow, index)
    kind = str(form.get(f"n{index}.new_rule") or "")
    if kind not in KINDS:
        raise EditorError("Choose what the new rule checks.")
    _list_in(node, "rules").append(copy.deepcopy(NEW_RULE[kind]))


def _remove_rule(flow: dict[str, Any], index: str, k: str) -> None:
    rules = _list_in(_node(flow, index), "rules")
    rules.pop(_at(rules, k))


def _add_trigger(flow: dict[str, Any], form: Form) -> str:
    kind = str(form.get("new_trigger") or "")
    if kind not in TRIGGER_TYPES:
        raise EditorError("Choose the type of the new trigger.")
    nodes = _nodes(flow)
    first = next((n.get("id") for n in nodes if isinstance(n, dict)), "")
    trigger: dict[str, Any] = {"type": kind, "node": str(form.get("new_trigger_node") or first)}
    if kind == "keyword":
        trigger["keywords"] = []
    triggers = _list_in(flow, "triggers")
    triggers.append(trigger)
    return f"t{len(triggers) - 1}"


def _remove_trigger(flow: dict[str, Any], k: str) -> None:
    triggers = _list_in(flow, "triggers")
    triggers.pop(_at(triggers, k))


def apply(flow: dict[str, Any], op: str, form: Form) -> str | None:
    """Does one editing action on the flow (in place); answers the anchor to show."""
    name, *args = op.split(":")
    one_arg: dict[str, Callable[[dict[str, Any], str], None]] = {
        "remove_node": _remove_node,
        "add_option": _add_option,
        "add_section": _add_section,
        "remove_trigger": _remove_trigger,
    }
    two_args: dict[str, Callable[[dict[str, Any], str, str], None]] = {
        "remove_option": _remove_option,
        "remove_section": _remove_section,
        "add_row": _add_row,
        "remove_rule": _remove_rule,
    }
    if name == "add_node" and not args:
        return _add_node(flow, form)
    if name == "add_trigger" and not args:
        return _add_trigger(flow, form)
    if name == "add_rule" and len(args) == 1:
        _add_rule(flow, args[0], form)
        return f"n{args[0]}"
    if name in one_arg and len(args) == 1:
        one_arg[name](flow, args[0])
        return (
            "flow-nodes"
            if name == "remove_node"
            else ("flow-triggers" if name == "remove_trigger" else f"n{args[0]}")
        )
    if name in two_args and len(args) == 2:
        two_args[name](flow, args[0], args[1])
        return f"n{args[0]}"
    if name == "remove_row" and len(args) == 3:
        _remove_row(flow, *args)
        return f"n{args[0]}"
    if name == "update" and not args:
        return None
    raise EditorError("Unknown editing action.")


# --- drawing the form --------------------------------------------------------------------


@dataclass
class NodeView:
    index: int
    node: dict[str, Any]
    id: str
    type: str
    label: str
    ports: list[Port] = field(default_factory=list)
    known: bool = True


def node_views(flow: Any) -> list[NodeView]:
    nodes = flow.get("nodes") if isinstance(flow, dict) else None
    raw_edges = flow.get("edges") if isinstance(flow, dict) else None
    edges = raw_edges if isinstance(raw_edges, list) else []
    views = []
    for i, node in enumerate(nodes if isinstance(nodes, list) else []):
        if not isinstance(node, dict):
            views.append(NodeView(i, {}, str(i), "?", "Not an object", known=False))
            continue
        kind = str(node.get("type"))
        views.append(
            NodeView(
                i,
                node,
                str(node.get("id", i)),
                kind,
                NODE_LABELS.get(kind, kind),
                ports_of(node, i, edges),
                kind in NODE_TYPES,
            )
        )
    return views


def open_ports(views: list[NodeView]) -> list[tuple[str, str]]:
    """(value, label) of every known port without a target, for "add a node after…"."""
    return [
        (p.field, f"{v.id} → {p.label}") for v in views for p in v.ports if p.known and not p.target
    ]


EDITOR_GLOBALS: dict[str, Any] = {
    "NODE_LABELS": NODE_LABELS,
    "TRIGGER_LABELS": TRIGGER_LABELS,
    "RULE_LABELS": RULE_LABELS,
    "RULE_OPERATORS": OPERATORS,
    "DAYS": DAYS,
    "ANSWER_KINDS": ANSWER_KINDS,
    "HTTP_METHODS": HTTP_METHODS,
    "MEDIA_KINDS": MEDIA_KINDS,
    "MAX_BUTTONS": MAX_BUTTONS,
}


def _defined(value: Any) -> Any:
    """A field the node does not have reaches the helpers as Jinja's Undefined: no value."""
    return None if isinstance(value, Undefined) else value


def shown(value: Any) -> str:
    return _render(_defined(value))


def lines(value: Any) -> str:
    return _lines_of(_defined(value))


def pairs(value: Any, sep: str) -> str:
    return _pairs_of(_defined(value), sep)


def json_text(value: Any) -> str:
    value = _defined(value)
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
