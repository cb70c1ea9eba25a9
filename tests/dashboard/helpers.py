"""A browser's moves over plain HTTP: fetch a page, pick its CSRF token, post its form."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import httpx

_TOKEN = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


def csrf_of(html: str) -> str:
    found = _TOKEN.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


async def post_form(
    http: httpx.AsyncClient, page: str, action: str, data: dict[str, Any]
) -> httpx.Response:
    """Opens `page` (for its token and cookie), then submits `data` to `action`."""
    opened = await http.get(page)
    assert opened.status_code == 200, opened.text
    return await http.post(action, data={**data, "csrf_token": csrf_of(opened.text)})


async def browser_login(http: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    response = await post_form(
        http, "/app/login", "/app/login", {"email": email, "password": password}
    )
    assert response.status_code == 303, response.text
    return response


class _Controls(HTMLParser):
    """Form controls of a page, and whether each has a label."""

    def __init__(self) -> None:
        super().__init__()
        self.label_for: set[str] = set()
        self.inside_label = 0
        self.controls: list[tuple[str, str | None, bool]] = []  # (tag, id, wrapped or aria)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "label":
            self.inside_label += 1
            if values.get("for"):
                self.label_for.add(str(values["for"]))
        kinds = {"input", "select", "textarea"}
        if tag in kinds and values.get("type") not in ("hidden", "submit", "button"):
            named = self.inside_label > 0 or bool(values.get("aria-label"))
            self.controls.append((tag, values.get("id"), named))

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.inside_label -= 1


def unlabelled_controls(html: str) -> list[str]:
    parser = _Controls()
    parser.feed(html)
    return [
        f"{tag}#{control_id}"
        for tag, control_id, named in parser.controls
        if not named and (control_id is None or control_id not in parser.label_for)
    ]


class _FormFields(HTMLParser):
    """What a browser would submit from one form (no button pressed): named inputs, checked
    boxes, the selected option of each select, textareas."""

    def __init__(self, form_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.inside = False
        self.fields: dict[str, str] = {}
        self.select: str | None = None
        self.first_option: str | None = None
        self.chosen = False
        self.textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = values.get("id") == self.form_id
        if not self.inside or (not values.get("name") and tag != "option"):
            return
        name = values.get("name", "")
        if tag == "input" and values.get("type") not in ("submit", "button"):
            if values.get("type") in ("checkbox", "radio"):
                if "checked" in values:
                    self.fields[name] = values.get("value") or "on"
            else:
                self.fields[name] = values.get("value", "")
        elif tag == "select":
            self.select, self.first_option, self.chosen = name, None, False
        elif tag == "option" and self.select is not None:
            value = values.get("value", "")
            if self.first_option is None:
                self.first_option = value
            if "selected" in values and not self.chosen:
                self.fields[self.select], self.chosen = value, True
        elif tag == "textarea":
            self.textarea = name
            self.fields[name] = ""

    def handle_data(self, data: str) -> None:
        if self.textarea is not None:
            self.fields[self.textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "textarea":
            self.textarea = None
        elif tag == "select" and self.select is not None:
            if not self.chosen and self.first_option is not None:
                self.fields[self.select] = self.first_option
            self.select = None


def form_fields(html: str, form_id: str) -> dict[str, str]:
    parser = _FormFields(form_id)
    parser.feed(html)
    return parser.fields
