"""The automation rule editor's forms: the condition tree (AND/OR groups around typed
conditions, nested at will) and the list of actions as form fields, and back. As with the
flow editor, the form carries the rule it was drawn from (`rule_base`) and the fields are laid
over it, so what the forms do not show is kept and an untouched rule comes back equal.

Condition paths: `c` is the root, `c.0` its first child, `c.0.2` that group's third child."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_args

from botplatform.automation import schemas
from botplatform.dashboard.flow_form import (
    EditorError,
    Reader,
    number,
    pairs,
    shown,
    text_pairs,
    words,
)

Form = Mapping[str, Any]

CONDITION_LABELS = {
    "message_content": "Message text",
    "message_direction": "Message direction",
    "channel": "Channel",
    "contact_attribute": "Contact attribute",
    "contact_tag": "Contact tag",
    "conversation_label": "Conversation label",
    "business_hours": "Business hours",
}
_LEAVES: dict[str, type[Any]] = {
    "message_content": schemas.MessageContent,
    "message_direction": schemas.MessageDirection,
    "channel": schemas.ChannelIs,
    "contact_attribute": schemas.ContactAttribute,
    "contact_tag": schemas.ContactTag,
    "conversation_label": schemas.ConversationLabel,
    "business_hours": schemas.BusinessHoursCondition,
}
# Each condition type's operators, as the API's schema lists them.
OPERATORS = {
    kind: get_args(model.model_fields["operator"].annotation) for kind, model in _LEAVES.items()
}
ACTION_LABELS = {
    "assign_agent": "Assign an agent",
    "assign_team": "Assign a team",
    "add_label": "Add labels",
    "remove_label": "Remove labels",
    "add_tag": "Add contact tags",
    "remove_tag": "Remove contact tags",
    "send_message": "Send a message",
    "send_webhook": "Send a webhook",
    "resolve": "Resolve the conversation",
    "set_attribute": "Set a contact attribute",
}
NEW_CONDITION: dict[str, dict[str, Any]] = {
    "message_content": {"operator": "contains", "value": ""},
    "message_direction": {"operator": "is", "value": "inbound"},
    "channel": {"operator": "in", "value": []},
    "contact_attribute": {"key": "", "operator": "equals", "value": ""},
    "contact_tag": {"operator": "has", "value": ""},
    "conversation_label": {"operator": "has", "value": ""},
    "business_hours": {"operator": "within"},
}
NEW_ACTION: dict[str, dict[str, Any]] = {
    "assign_agent": {"user_id": ""},
    "assign_team": {"team_id": "", "round_robin": True},
    "add_label": {"labels": []},
    "remove_label": {"labels": []},
    "add_tag": {"tags": []},
    "remove_tag": {"tags": []},
    "send_message": {"message": {"type": "text", "text": ""}},
    "send_webhook": {"data": {}},
    "resolve": {},
    "set_attribute": {"key": "", "value": ""},
}
assert set(ACTION_LABELS) == set(NEW_ACTION)
MAX_GROUP = 20
MAX_FORM_FIELDS = 5_000  # nested groups of 20 conditions add up past Starlette's 1,000


def group_of(node: Any) -> str | None:
    """`all` or `any` when the node is a group."""
    if isinstance(node, dict):
        for kind in ("all", "any"):
            if kind in node:
                return kind
    return None


def _read_leaf(form: Form, path: str, leaf: dict[str, Any]) -> dict[str, Any]:
    reader = Reader(form, path, leaf)
    kind = leaf.get("type")
    reader.set("operator")
    if kind == "channel":
        if form.get(f"{path}.value.shown") is not None:
            picked = (
                [str(v) for v in form.getlist(f"{path}.value")] if hasattr(form, "getlist") else []
            )
            if picked != leaf.get("value"):
                leaf["value"] = picked
        else:
            reader.set("value", words, shown)
    elif kind == "contact_attribute":
        reader.set("key")
        operator = str(form.get(f"{path}.operator") or leaf.get("operator"))
        if operator in ("exists", "not_exists"):
            if form.get(f"{path}.value") is not None:
                leaf.pop("value", None)
        elif operator in ("greater_than", "less_than"):
            reader.set("value", number, shown)
        else:
            reader.set("value", show=shown)
    elif kind != "business_hours":
        reader.set("value", show=shown)
    return leaf


def _read_condition(form: Form, path: str, node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    node = copy.deepcopy(node)
    kind = group_of(node)
    if kind is None:
        return _read_leaf(form, path, node)
    children = node[kind]
    if isinstance(children, list):
        children = [_read_condition(form, f"{path}.{i}", c) for i, c in enumerate(children)]
    chosen = str(form.get(f"{path}.group") or kind)
    if chosen in ("all", "any") and chosen != kind:
        del node[kind]
    node[chosen if chosen in ("all", "any") else kind] = children
    return node


def _read_action(form: Form, i: int, action: Any) -> Any:
    if not isinstance(action, dict):
        return action
    action = copy.deepcopy(action)
    path = f"a{i}"
    reader = Reader(form, path, action)
    kind = action.get("type")
    if kind == "assign_agent":
        reader.set("user_id", keep_empty=True)
    elif kind == "assign_team":
        reader.set("team_id", keep_empty=True)
        reader.check("round_robin", default=True)
    elif kind in ("add_label", "remove_label"):
        reader.set("labels", words, shown)
    elif kind in ("add_tag", "remove_tag"):
        reader.set("tags", words, shown)
    elif kind == "send_message":
        message = action.get("message")
        if isinstance(message, dict) and message.get("type", "text") == "text":
            message = dict(message)
            Reader(form, f"{path}.message", message).set("text", keep_empty=True)
            action["message"] = message
    elif kind == "send_webhook":
        reader.set("data", lambda text: text_pairs(text, " = "), pairs_of)
    elif kind == "set_attribute":
        reader.set("key")
        reader.set("value", show=shown)
    return action


def read_form(form: Form, base: dict[str, Any]) -> dict[str, Any]:
    """`{"conditions": …, "actions": […]}` as the forms describe them, over `base`."""
    actions = base.get("actions")
    return {
        "conditions": _read_condition(form, "c", base.get("conditions")),
        "actions": [_read_action(form, i, a) for i, a in enumerate(actions)]
        if isinstance(actions, list)
        else actions,
    }


# --- editing actions ---------------------------------------------------------------------


def _find(rule: dict[str, Any], path: str) -> tuple[Any, list[Any] | None, int]:
    """The node at `path`, the list holding it (None for the root) and its index there."""
    parts = path.split(".")
    if parts[0] != "c" or not all(p.isdigit() for p in parts[1:]):
        raise EditorError("That condition is no longer in the rule.")
    node: Any = rule.get("conditions")
    holder: list[Any] | None = None
    index = -1
    for part in parts[1:]:
        kind = group_of(node)
        children = node[kind] if kind else None
        if not isinstance(children, list) or int(part) >= len(children):
            raise EditorError("That condition is no longer in the rule.")
        holder, index = children, int(part)
        node = children[index]
    return node, holder, index


def _new_leaf(form: Form, path: str) -> dict[str, Any]:
    kind = str(form.get(f"{path}.new") or "")
    if kind not in NEW_CONDITION:
        raise EditorError("Choose the type of the new condition.")
    return {"type": kind, **copy.deepcopy(NEW_CONDITION[kind])}


def _add(rule: dict[str, Any], path: str, form: Form, group: bool) -> None:
    leaf = _new_leaf(form, path)
    item = {"all": [leaf]} if group else leaf
    node, holder, index = _find(rule, path)
    if node is None and path == "c":
        rule["conditions"] = item if group else {"all": [leaf]}
        return
    kind = group_of(node)
    if kind is None:  # a lone condition becomes a group holding it and the new one
        wrapped = {"all": [node, item]}
        if holder is None:
            rule["conditions"] = wrapped
        else:
            holder[index] = wrapped
        return
    children = node[kind]
    if not isinstance(children, list):
        raise EditorError("That group is not a list; fix it in the JSON view.")
    if len(children) >= MAX_GROUP:
        raise EditorError(f"A group holds at most {MAX_GROUP} conditions.")
    children.append(item)


def _remove(rule: dict[str, Any], path: str) -> None:
    _node, holder, index = _find(rule, path)
    if holder is None:
        rule["conditions"] = None
    else:
        holder.pop(index)


def apply(rule: dict[str, Any], op: str, form: Form) -> None:
    """Does one editing action on `{"conditions", "actions"}` (in place)."""
    name, _, arg = op.partition(":")
    if name == "add_condition":
        _add(rule, arg, form, group=False)
    elif name == "add_group":
        _add(rule, arg, form, group=True)
    elif name == "remove_condition":
        _remove(rule, arg)
    elif name == "add_action" and not arg:
        kind = str(form.get("new_action") or "")
        if kind not in NEW_ACTION:
            raise EditorError("Choose the type of the new action.")
        actions = rule.get("actions")
        if not isinstance(actions, list):
            actions = rule["actions"] = []
        if len(actions) >= 20:
            raise EditorError("A rule has at most 20 actions.")
        actions.append({"type": kind, **copy.deepcopy(NEW_ACTION[kind])})
    elif name == "remove_action" and arg.isdigit():
        actions = rule.get("actions")
        if not isinstance(actions, list) or int(arg) >= len(actions):
            raise EditorError("That action is no longer in the rule.")
        actions.pop(int(arg))
    elif name != "update":
        raise EditorError("Unknown editing action.")


# --- where a problem goes ----------------------------------------------------------------


@dataclass
class Placed:
    """The rule's problems keyed by the form part they concern (`c.0.1`, `a2`)."""

    at: dict[str, list[tuple[str, str]]]

    def get(self, key: str) -> list[tuple[str, str]]:
        return self.at.get(key, [])


def place(problems: list[tuple[str, str]]) -> Placed:
    """`conditions.all.0.contact_attribute.value` goes to `c.0` (field `value`),
    `actions.1.send_message.message.text` to `a1` (field `message.text`)."""
    at: dict[str, list[tuple[str, str]]] = {}
    for where, what in problems:
        parts = where.split(".")
        if parts[0] == "conditions":
            key, structural = "c", ("all", "any", *_LEAVES)
        elif parts[0] == "actions" and len(parts) > 1 and parts[1].isdigit():
            key, parts, structural = f"a{parts[1]}", parts[1:], tuple(NEW_ACTION)
        else:
            continue
        rest = parts[1:]
        # group names, the union's tags and list indexes lead to the part; the rest is the field
        while rest and (rest[0] in structural or (rest[0].isdigit() and key.startswith("c"))):
            if rest[0].isdigit():
                key = f"{key}.{rest[0]}"
            rest = rest[1:]
        at.setdefault(key, []).append((".".join(rest), what))
    return Placed(at)


def pairs_of(value: Any) -> str:
    """An action's `data` as `key = value` lines."""
    return pairs(value, " = ")
