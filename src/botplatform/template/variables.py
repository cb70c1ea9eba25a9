"""A template's variables, without I/O: which placeholders each component has, whether the
values given for a send fit them, the Graph API `components` of a template message, and a
preview of the text.

Values are given per component, in the order of the placeholders (`{{1}}`, `{{2}}`…) or by
name for templates with named parameters (`{{first_name}}`):

    {"header": ["Summer sale"] | {"name": "…"} | [{"type": "image", "link": "https://…"}],
     "body": ["Ada", {"type": "currency", "fallback_value": "$10", "code": "USD",
                      "amount_1000": 10000}],
     "buttons": {"0": ["ORDER-42"]}}

A plain string (or number) is a `text` value; a dict names its `type`: text, currency,
date_time, image, video, document, location (header), coupon_code / payload (buttons).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
MEDIA_FORMATS = ("IMAGE", "VIDEO", "DOCUMENT")
BODY_TYPES = ("text", "currency", "date_time")
#: Meta refuses a text value with a new line or tab, or more than 4 spaces in a row (132018).
_BAD_TEXT = re.compile(r"[\n\t]| {5,}")
TEXT_LIMIT = 1024


@dataclass(frozen=True)
class Slots:
    """The placeholders of one template, component by component."""

    header_format: str | None  # TEXT, IMAGE, VIDEO, DOCUMENT, LOCATION or None
    header: list[str]
    body: list[str]
    buttons: dict[int, tuple[str, list[str]]]  # index → (button type, its placeholders)


def placeholders(text: str | None) -> list[str]:
    """The distinct placeholder names of a text, in order of first appearance."""
    seen: list[str] = []
    for name in PLACEHOLDER.findall(text or ""):
        if name not in seen:
            seen.append(name)
    return seen


def _component(components: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    return next((c for c in components if str(c.get("type", "")).upper() == kind), None)


def slots(components: list[dict[str, Any]]) -> Slots:
    header = _component(components, "HEADER")
    body = _component(components, "BODY")
    buttons = _component(components, "BUTTONS")
    header_format = str(header.get("format", "TEXT")).upper() if header else None
    button_slots: dict[int, tuple[str, list[str]]] = {}
    for index, button in enumerate((buttons or {}).get("buttons") or []):
        kind = str(button.get("type", "")).upper()
        if kind == "URL":
            button_slots[index] = (kind, placeholders(button.get("url")))
        elif kind == "COPY_CODE":
            button_slots[index] = (kind, ["coupon_code"])
    return Slots(
        header_format=header_format,
        header=placeholders(header.get("text")) if header and header_format == "TEXT" else [],
        body=placeholders(body.get("text")) if body else [],
        buttons=button_slots,
    )


# -- the values of a send --------------------------------------------------------------------


def _typed(value: Any) -> dict[str, Any]:
    """A value as a dict with its `type` (a plain string or number is text)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, bool) or value is None:
        return {"type": "invalid", "value": value}
    if isinstance(value, int | float | str):
        return {"type": "text", "text": str(value)}
    return {"type": "invalid", "value": value}


def _text_problem(text: Any, where: str) -> str | None:
    if not isinstance(text, str) or not text.strip():
        return f"{where}: a text value must not be empty"
    if _BAD_TEXT.search(text):
        return f"{where}: no new lines, tabs or more than 4 spaces in a row"
    if len(text) > TEXT_LIMIT:
        return f"{where}: at most {TEXT_LIMIT} characters"
    return None


def _value_problem(value: dict[str, Any], allowed: tuple[str, ...], where: str) -> str | None:
    kind = value.get("type")
    if kind not in allowed:
        return f"{where}: expected a value of type {' or '.join(allowed)}, got {kind!r}"
    if kind == "text":
        return _text_problem(value.get("text"), where)
    if kind == "currency":
        currency = value.get("currency", value)
        code, amount = currency.get("code"), currency.get("amount_1000")
        if not (isinstance(code, str) and len(code) == 3 and isinstance(amount, int)):
            return f"{where}: a currency needs `code` (ISO 4217) and an integer `amount_1000`"
        return _text_problem(currency.get("fallback_value"), f"{where}.fallback_value")
    if kind == "date_time":
        moment = value.get("date_time", value)
        return _text_problem(moment.get("fallback_value"), f"{where}.fallback_value")
    if kind in ("image", "video", "document"):
        media = value.get(kind, value)
        link, media_id = media.get("link"), media.get("id")
        if not (isinstance(link, str) and link.startswith("https://")) and not media_id:
            return f"{where}: a {kind} needs an https `link` or a media `id`"
    if kind == "location":
        place = value.get("location", value)
        if not all(isinstance(place.get(k), int | float) for k in ("latitude", "longitude")):
            return f"{where}: a location needs `latitude` and `longitude`"
    if kind == "coupon_code":
        return _text_problem(value.get("coupon_code"), where)
    return None


def _keyed(values: Any, names: list[str], where: str, errors: list[str]) -> list[Any] | None:
    """The values in placeholder order, from a list (positional) or a dict (named)."""
    if isinstance(values, dict):
        missing = [name for name in names if name not in values]
        extra = [str(name) for name in values if name not in names]
        if missing:
            errors.append(f"{where}: missing value for {', '.join(missing)}")
        if extra:
            errors.append(f"{where}: {', '.join(extra)} is not a variable of this template")
        return None if missing or extra else [values[name] for name in names]
    if not isinstance(values, list):
        errors.append(f"{where}: give a list of values (or an object by name)")
        return None
    if len(values) != len(names):
        errors.append(f"{where}: expected {len(names)} value(s), got {len(values)}")
        return None
    return values


def _check_header(slots_: Slots, values: Any, errors: list[str]) -> None:
    fmt = slots_.header_format
    if fmt in (*MEDIA_FORMATS, "LOCATION"):
        kind = fmt.lower()
        if not values:
            errors.append(f"header: this template's header needs a {kind}")
            return
        given = values if isinstance(values, list) else [values]
        if len(given) != 1:
            errors.append(f"header: expected one {kind}, got {len(given)}")
            return
        if problem := _value_problem(_typed(given[0]), (kind,), "header"):
            errors.append(problem)
        return
    if not slots_.header:
        if values:
            errors.append("header: this template's header has no variables")
        return
    ordered = _keyed(values if values is not None else [], slots_.header, "header", errors)
    for i, value in enumerate(ordered or []):
        if problem := _value_problem(_typed(value), ("text",), f"header[{i}]"):
            errors.append(problem)


def _check_buttons(slots_: Slots, values: Any, errors: list[str]) -> None:
    given = {str(k): v for k, v in (values or {}).items()} if isinstance(values, dict) else None
    if given is None and values:
        errors.append('buttons: give an object by button index, e.g. {"0": ["suffix"]}')
        return
    given = given or {}
    for key in given:
        if not key.isdigit() or int(key) not in slots_.buttons:
            errors.append(f"buttons[{key}]: that button takes no value")
    for index, (kind, names) in slots_.buttons.items():
        where = f"buttons[{index}]"
        if not names:
            continue
        ordered = _keyed(given.get(str(index), []), names, where, errors)
        allowed = ("coupon_code",) if kind == "COPY_CODE" else ("text",)
        for value in ordered or []:
            typed = _typed(value)
            if kind == "COPY_CODE" and typed.get("type") == "text":
                typed = {"type": "coupon_code", "coupon_code": typed.get("text")}
            if problem := _value_problem(typed, allowed, where):
                errors.append(problem)


def validate_variables(components: list[dict[str, Any]], params: dict[str, Any]) -> list[str]:
    """Every problem with these values for this template (empty: they fit): the number of
    values per component, their types, the header's media."""
    errors: list[str] = []
    unknown = sorted(set(params) - {"header", "body", "buttons"})
    if unknown:
        errors.append(f"{', '.join(unknown)}: not a part of a template (header, body, buttons)")
    found = slots(components)
    _check_header(found, params.get("header"), errors)
    body = params.get("body")
    ordered = _keyed(body if body is not None else [], found.body, "body", errors)
    for i, value in enumerate(ordered or []):
        if problem := _value_problem(_typed(value), BODY_TYPES, f"body[{i}]"):
            errors.append(problem)
    _check_buttons(found, params.get("buttons"), errors)
    return errors


# -- Graph API components --------------------------------------------------------------------


def _graph_parameter(value: Any, name: str | None) -> dict[str, Any]:
    typed = dict(_typed(value))
    kind = str(typed.pop("type"))
    payload = typed.get(kind, {k: v for k, v in typed.items() if k != "parameter_name"})
    if kind == "text":
        payload = typed.get("text")
    parameter: dict[str, Any] = {"type": kind, kind: payload}
    if name is not None:
        parameter["parameter_name"] = name
    return parameter


def build_components(
    components: list[dict[str, Any]], params: dict[str, Any], *, named: bool = False
) -> list[dict[str, Any]]:
    """The `template.components` of a Graph API send for these (validated) values."""
    found = slots(components)
    out: list[dict[str, Any]] = []
    header = params.get("header")
    if found.header_format in (*MEDIA_FORMATS, "LOCATION") and header:
        value = header[0] if isinstance(header, list) else header
        out.append({"type": "header", "parameters": [_graph_parameter(value, None)]})
    elif found.header:
        out.append({"type": "header", "parameters": _parameters(header, found.header, named)})
    if found.body:
        out.append(
            {"type": "body", "parameters": _parameters(params.get("body"), found.body, named)}
        )
    buttons = {str(k): v for k, v in (params.get("buttons") or {}).items()}
    for index, (kind, names) in found.buttons.items():
        values = buttons.get(str(index))
        if not values:
            continue
        parameters = _parameters(values, names, False)
        if kind == "COPY_CODE":
            parameters = [
                {"type": "coupon_code", "coupon_code": p.get("text", p.get("coupon_code"))}
                for p in parameters
            ]
        sub_type = "url" if kind == "URL" else "copy_code"
        out.append(
            {"type": "button", "sub_type": sub_type, "index": str(index), "parameters": parameters}
        )
    return out


def _parameters(values: Any, names: list[str], named: bool) -> list[dict[str, Any]]:
    if isinstance(values, dict):
        return [_graph_parameter(values[name], name if named else None) for name in names]
    return [
        _graph_parameter(value, names[i] if named and i < len(names) else None)
        for i, value in enumerate(values or [])
    ]


def params_from_components(send: list[dict[str, Any]]) -> dict[str, Any]:
    """The values of a Graph API send's `components`, back in the shape `validate_variables`
    reads (named parameters by name, the others in order)."""
    params: dict[str, Any] = {}
    for component in send:
        kind = str(component.get("type", "")).lower()
        values = [_value_of(p) for p in component.get("parameters") or [] if isinstance(p, dict)]
        names = [p.get("parameter_name") for p in component.get("parameters") or []]
        keyed: Any = values
        if names and all(isinstance(n, str) for n in names):
            keyed = dict(zip(names, values, strict=False))
        if kind in ("header", "body"):
            params[kind] = keyed
        elif kind == "button":
            params.setdefault("buttons", {})[str(component.get("index", "0"))] = keyed
        else:
            params.setdefault(kind or "unknown", keyed)
    return params


def _value_of(parameter: dict[str, Any]) -> Any:
    kind = parameter.get("type")
    if kind == "text":
        return {"type": "text", "text": parameter.get("text")}
    if kind == "payload":
        return {"type": "payload", "payload": parameter.get("payload")}
    return {k: v for k, v in parameter.items() if k != "parameter_name"}


# -- preview ---------------------------------------------------------------------------------


def example_params(components: list[dict[str, Any]]) -> dict[str, Any]:
    """The template's own example values (Meta requires them with every variable)."""
    params: dict[str, Any] = {}
    found = slots(components)
    header = _component(components, "HEADER") or {}
    example = header.get("example") or {}
    if found.header_format == "TEXT" and found.header:
        named = example.get("header_text_named_params")
        params["header"] = (
            {p.get("param_name"): p.get("example") for p in named}
            if named
            else list(example.get("header_text") or [])
        )
    elif found.header_format in MEDIA_FORMATS:
        handle = (example.get("header_handle") or ["https://example.com/sample"])[0]
        params["header"] = [{"type": found.header_format.lower(), "link": handle}]
    body = _component(components, "BODY") or {}
    example = body.get("example") or {}
    if named := example.get("body_text_named_params"):
        params["body"] = {p.get("param_name"): p.get("example") for p in named}
    elif found.body:
        rows = example.get("body_text") or [[]]
        params["body"] = list(rows[0] if rows and isinstance(rows[0], list) else rows)
    buttons = (_component(components, "BUTTONS") or {}).get("buttons") or []
    for index, (kind, _names) in found.buttons.items():
        sample = buttons[index].get("example")
        if isinstance(sample, list):
            sample = sample[0] if sample else None
        if not sample:
            continue
        sample = str(sample)
        if kind == "URL":  # Meta's example is the whole URL; a send gives what replaces {{1}}
            prefix = PLACEHOLDER.split(str(buttons[index].get("url", "")))[0]
            sample = sample[len(prefix) :] if sample.startswith(prefix) else sample
        params.setdefault("buttons", {})[str(index)] = [sample]
    return params


def _shown(value: Any) -> str:
    typed = _typed(value)
    kind = typed.get("type")
    if kind == "text":
        return str(typed.get("text"))
    if kind in ("currency", "date_time"):
        inner = typed.get(str(kind), typed)
        return str(inner.get("fallback_value", ""))
    if kind == "coupon_code":
        return str(typed.get("coupon_code"))
    return f"[{kind}]"


def _fill(text: str, values: Any, names: list[str]) -> str:
    if isinstance(values, dict):
        mapping = {name: _shown(values[name]) for name in names if name in values}
    else:
        mapping = {name: _shown(v) for name, v in zip(names, values or [], strict=False)}
    return PLACEHOLDER.sub(lambda m: mapping.get(m.group(1), m.group(0)), text)


def render(components: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """The template's texts with these values in place (a placeholder without a value stays
    as it is): header, body, footer and button labels, as a phone would show them."""
    found = slots(components)
    header = _component(components, "HEADER")
    body = _component(components, "BODY") or {}
    footer = _component(components, "FOOTER")
    header_text = None
    if header and found.header_format == "TEXT":
        header_text = _fill(str(header.get("text", "")), params.get("header"), found.header)
    elif header:
        header_text = f"[{str(found.header_format).lower()}]"
    buttons = []
    given = {str(k): v for k, v in (params.get("buttons") or {}).items()}
    for index, button in enumerate((_component(components, "BUTTONS") or {}).get("buttons") or []):
        entry = {"type": button.get("type"), "text": button.get("text")}
        if button.get("url"):
            names = found.buttons.get(index, ("URL", []))[1]
            entry["url"] = _fill(str(button["url"]), given.get(str(index)), names)
        if button.get("phone_number"):
            entry["phone_number"] = button["phone_number"]
        buttons.append(entry)
    return {
        "header": header_text,
        "body": _fill(str(body.get("text", "")), params.get("body"), found.body),
        "footer": footer.get("text") if footer else None,
        "buttons": buttons,
    }
