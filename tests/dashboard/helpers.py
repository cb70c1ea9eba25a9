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
