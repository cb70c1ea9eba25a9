"""A browser's moves over plain HTTP: fetch a page, pick its CSRF token, post its form."""

from __future__ import annotations

import re
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
