"""`{{contact.name}}`, `{{contact.email}}` (any attribute), `{{vars.order.id}}` (dotted paths
into a variable's JSON), `{{input.text}}` (the customer's last message). A missing value
renders as nothing; a placeholder that is not one of these is left as written."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_\-]+)*)\s*\}\}")
ROOTS = ("contact", "vars", "input")


def dig(value: Any, path: list[str]) -> Any:
    """Follows `a.b.0.c` through dicts and lists; None where the path leads nowhere."""
    for part in path:
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.lstrip("-").isdigit():
            index = int(part)
            value = value[index] if -len(value) <= index < len(value) else None
        else:
            return None
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def render(template: str, scope: Mapping[str, Any]) -> str:
    def replace(match: re.Match[str]) -> str:
        root = match.group(1)
        if root not in ROOTS:
            return match.group(0)
        path = [p for p in match.group(2).split(".") if p]
        return _text(dig(scope.get(root), path))

    return PLACEHOLDER.sub(replace, template)


def render_json(value: Any, scope: Mapping[str, Any]) -> Any:
    """Renders every string inside a JSON value (an HTTP body, template components)."""
    if isinstance(value, str):
        return render(value, scope)
    if isinstance(value, list):
        return [render_json(item, scope) for item in value]
    if isinstance(value, dict):
        return {key: render_json(item, scope) for key, item in value.items()}
    return value
