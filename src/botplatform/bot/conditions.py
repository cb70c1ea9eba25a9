"""Condition rules: on a contact attribute, a variable, the time of day, or business hours.

{"kind": "attribute", "name": "email", "op": "exists"}
{"kind": "variable", "name": "order.status", "op": "equals", "value": "shipped"}
{"kind": "time_of_day", "from": "22:00", "to": "06:00", "timezone": "Europe/Berlin"}
{"kind": "business_hours", "timezone": "Europe/Berlin",
 "hours": {"mon": ["09:00", "17:00"], "sat": ["10:00", "14:00"]}}
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
OPERATORS = (
    "equals", "not_equals", "contains", "not_contains", "starts_with", "ends_with",
    "gt", "gte", "lt", "lte", "exists", "not_exists", "matches", "in",
)  # fmt: skip
UNARY = ("exists", "not_exists")
CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
KINDS = ("attribute", "variable", "time_of_day", "business_hours")

Lookup = Callable[[str, str], Any]  # (kind, name) -> value or None
Render = Callable[[str], str]


def _zone_problem(rule: dict[str, Any]) -> str | None:
    name = rule.get("timezone", "UTC")
    try:
        ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return f"unknown time zone {name!r}"
    return None


def _value_problem(rule: dict[str, Any]) -> str | None:
    op = rule.get("op")
    if not isinstance(rule.get("name"), str) or not rule["name"]:
        return "needs the `name` of the attribute or variable"
    if op not in OPERATORS:
        return f"`op` must be one of {', '.join(OPERATORS)}"
    if op not in UNARY and "value" not in rule:
        return f"`{op}` needs a `value`"
    if op == "in" and not isinstance(rule.get("value"), list):
        return "`in` needs a list `value`"
    if op == "matches":
        try:
            re.compile(str(rule.get("value")))
        except re.error as exc:
            return f"not a valid regular expression: {exc}"
    return None


def _clock_problem(rule: dict[str, Any]) -> str | None:
    if rule["kind"] == "time_of_day":
        if not all(CLOCK.match(str(rule.get(k, ""))) for k in ("from", "to")):
            return "`from` and `to` must be times such as 09:00"
        days = rule.get("days", list(DAYS))
        if not isinstance(days, list) or not set(days) <= set(DAYS):
            return f"`days` must be a list of {', '.join(DAYS)}"
        return _zone_problem(rule)
    hours = rule.get("hours")
    if not isinstance(hours, dict) or not hours or not set(hours) <= set(DAYS):
        return f"`hours` must map days ({', '.join(DAYS)}) to [opens, closes]"
    for day, span in hours.items():
        if not (
            isinstance(span, list) and len(span) == 2 and all(CLOCK.match(str(s)) for s in span)
        ):
            return f'`hours.{day}` must be [opens, closes], such as ["09:00", "17:00"]'
    return _zone_problem(rule)


def check_rule(rule: object) -> str | None:
    """What is wrong with a rule, or None."""
    if not isinstance(rule, dict):
        return "a rule must be an object"
    kind = rule.get("kind")
    if kind not in KINDS:
        return f"`kind` must be one of {', '.join(KINDS)}"
    if kind in ("attribute", "variable"):
        return _value_problem(rule)
    return _clock_problem(rule)


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _within(now: time, start: time, end: time) -> bool:
    if start <= end:
        return start <= now < end
    return now >= start or now < end  # wraps past midnight, e.g. 22:00-06:00


def _local(now: datetime, rule: dict[str, Any]) -> datetime:
    return now.astimezone(ZoneInfo(str(rule.get("timezone", "UTC"))))


def _number(value: Any) -> float | None:
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op == "exists":
        return actual not in (None, "")
    if op == "not_exists":
        return actual in (None, "")
    if actual is None:
        return op in ("not_equals", "not_contains")
    if op in ("gt", "gte", "lt", "lte"):
        left, right = _number(actual), _number(expected)
        if left is None or right is None:
            return False
        return {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[
            op
        ]
    if op == "in":
        return str(actual).strip().casefold() in {str(v).strip().casefold() for v in expected}
    if op == "matches":
        return bool(re.search(str(expected), str(actual)))
    text, wanted = str(actual).strip().casefold(), str(expected).strip().casefold()
    return {
        "equals": text == wanted,
        "not_equals": text != wanted,
        "contains": wanted in text,
        "not_contains": wanted not in text,
        "starts_with": text.startswith(wanted),
        "ends_with": text.endswith(wanted),
    }[op]


def evaluate(rule: dict[str, Any], lookup: Lookup, render: Render, now: datetime) -> bool:
    kind = rule["kind"]
    if kind == "time_of_day":
        local = _local(now, rule)
        days = rule.get("days", list(DAYS))
        if DAYS[local.weekday()] not in days:
            return False
        return _within(local.time(), _clock(rule["from"]), _clock(rule["to"]))
    if kind == "business_hours":
        local = _local(now, rule)
        span = rule["hours"].get(DAYS[local.weekday()])
        return bool(span) and _within(local.time(), _clock(span[0]), _clock(span[1]))
    expected = rule.get("value")
    if isinstance(expected, str):
        expected = render(expected)
    elif isinstance(expected, list):
        expected = [render(v) if isinstance(v, str) else v for v in expected]
    return _compare(rule["op"], lookup(kind, rule["name"]), expected)


def evaluate_all(
    rules: list[dict[str, Any]], match: str, lookup: Lookup, render: Render, now: datetime
) -> bool:
    results = (evaluate(rule, lookup, render, now) for rule in rules)
    return any(results) if match == "any" else all(results)
