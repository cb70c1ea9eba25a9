"""Bad input anywhere is a clear 4xx in the envelope; every response carries a request id."""

from __future__ import annotations

import re

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botplatform.config import Settings
from tests.conftest import Api

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert TIMESTAMP.match(body["timestamp"])
    assert response.headers["x-request-id"]


async def test_success_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")
    body = response.json()
    assert set(body) == {"success", "data", "message", "timestamp"}
    assert body["success"] is True
    assert TIMESTAMP.match(body["timestamp"])


async def test_unknown_route_is_404(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/v1/nope"), 404, "not_found")
    assert_error(await client.get("/nope"), 404, "not_found")


async def test_wrong_method_is_405(client: httpx.AsyncClient) -> None:
    assert_error(await client.delete("/api/v1/auth/login"), 405, "method_not_allowed")


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/login", content=b'{"email": ', headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "malformed_json")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", ""]
)
async def test_non_json_body_is_415(client: httpx.AsyncClient, content_type: str) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post(
        "/api/v1/auth/login", content=b"email=a&password=b", headers=headers
    )
    assert_error(response, 415, "unsupported_media_type")


async def test_json_with_charset_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/login",
        content=b'{"email": "a@example.com", "password": "x"}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert_error(response, 401, "invalid_credentials")


async def test_body_over_limit_is_413(client: httpx.AsyncClient, settings: Settings) -> None:
    big = b'{"email": "' + b"a" * settings.max_body_bytes + b'"}'
    response = await client.post(
        "/api/v1/auth/login", content=big, headers={"content-type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")


async def test_streamed_body_over_limit_is_413(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    async def chunks():  # no Content-Length: the limit must hold while streaming
        for _ in range(settings.max_body_bytes // 1024 + 2):
            yield b"x" * 1024

    response = await client.post(
        "/api/v1/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")


async def test_validation_error_names_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/register", json={"email": 5, "password": []})
    assert_error(response, 422, "validation_error")
    fields = {item["field"] for item in response.json()["error"]["details"]}
    assert {"body.email", "body.password"} <= fields


@pytest.mark.parametrize("body", [[], "text", 42, None, {"email": None}])
async def test_wrong_json_shapes_are_422(client: httpx.AsyncClient, body: object) -> None:
    response = await client.post("/api/v1/auth/login", json=body)
    assert_error(response, 422, "validation_error")


async def test_invalid_ids_are_4xx(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    for url in ["/api/v1/workspaces/not-a-uuid", "/api/v1/workspaces/%00", "/api/v1/workspaces/1"]:
        response = await client.get(url, headers=owner.headers)
        assert 400 <= response.status_code < 500, url
        assert response.json()["success"] is False
    bad_cursor = await client.get(
        f"/api/v1/workspaces/{await api.create_workspace(owner)}/members?cursor=%%%",
        headers=owner.headers,
    )
    assert_error(bad_cursor, 400, "invalid_cursor")


@pytest.mark.parametrize("name", ["nul\x00byte", "lone \ud800 surrogate"])
async def test_text_the_database_cannot_store_is_422(
    client: httpx.AsyncClient, api: Api, name: str
) -> None:
    owner = await api.register()
    raw = '{"name": "' + name.encode("unicode_escape").decode().replace("\\x00", "\\u0000") + '"}'
    response = await client.post(
        "/api/v1/workspaces",
        content=raw.encode(),
        headers={**owner.headers, "content-type": "application/json"},
    )
    assert_error(response, 422, "validation_error")


async def test_unicode_is_stored_as_given(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    name = "Café 😀 <script>alert(1)</script> \u202e עברית"
    response = await client.post("/api/v1/workspaces", json={"name": name}, headers=owner.headers)
    assert response.status_code == 201
    assert response.json()["data"]["name"] == name


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/health/live", headers={"x-request-id": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    unsafe = await client.get("/health/live", headers={"x-request-id": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe.headers["x-request-id"])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payload=st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=8,
    )
)
async def test_arbitrary_json_never_500s(client: httpx.AsyncClient, payload: object) -> None:
    for url in ("/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/workspaces"):
        response = await client.post(url, json=payload)
        assert 400 <= response.status_code < 500, (url, payload, response.text)
