from __future__ import annotations

import httpx
import pytest

from botplatform.auth.passwords import policy_problems
from botplatform.config import Settings
from botplatform.runtime import Runtime
from tests.conftest import STRONG_PASSWORD, Api


async def test_register_login_me(client: httpx.AsyncClient, api: Api) -> None:
    account = await api.register("Ada@Example.com", name="Ada")
    assert account.email == "Ada@Example.com"

    response = await client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": STRONG_PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert set(body["data"]) == {"access_token", "token_type", "expires_at", "user"}
    assert body["data"]["user"]["email"] == "ada@example.com"

    token = body["data"]["access_token"]
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["data"]["user"]["name"] == "Ada"
    assert me.json()["data"]["workspaces"] == []


async def test_me_lists_workspaces_with_role(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner, "Shop")
    me = (await client.get("/api/v1/me", headers=owner.headers)).json()["data"]
    assert me["workspaces"] == [
        {"workspace_id": ws, "workspace_name": "Shop", "workspace_slug": "shop", "role": "owner"}
    ]


async def test_duplicate_email_is_a_conflict(client: httpx.AsyncClient, api: Api) -> None:
    await api.register("dup@example.com")
    response = await client.post(
        "/api/v1/auth/register", json={"email": "DUP@example.com", "password": STRONG_PASSWORD}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "email_taken"


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short-pw", "at least 12 characters"),
        ("password1234", "most common passwords"),
        ("xx-carol.smith-xx-2024", "must not contain your email"),
    ],
)
async def test_weak_passwords_are_refused(
    client: httpx.AsyncClient, password: str, problem: str
) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": "carol.smith@example.com", "password": password},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "weak_password"
    assert any(problem in item for item in error["details"]["problems"])
    login = await client.post(
        "/api/v1/auth/login", json={"email": "carol.smith@example.com", "password": password}
    )
    assert login.status_code == 401  # nothing was created


def test_common_list_has_at_least_ten_thousand_entries(tmp_settings: Settings) -> None:
    from botplatform.auth.passwords import common_passwords

    assert len(common_passwords()) >= 10_000
    assert policy_problems("correct-horse-battery-staple", "a@b.co", tmp_settings) == []


async def test_unknown_email_and_wrong_password_answer_alike(
    client: httpx.AsyncClient, api: Api
) -> None:
    await api.register("known@example.com")
    wrong = await client.post(
        "/api/v1/auth/login", json={"email": "known@example.com", "password": "not-the-one-123"}
    )
    unknown = await client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "not-the-one-123"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"] == unknown.json()["error"]


async def test_logout_revokes_the_token_at_once(client: httpx.AsyncClient, api: Api) -> None:
    account = await api.register()
    assert (await client.get("/api/v1/me", headers=account.headers)).status_code == 200
    assert (await client.post("/api/v1/auth/logout", headers=account.headers)).status_code == 200
    refused = await client.get("/api/v1/me", headers=account.headers)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "session_expired"


async def test_logout_all_ends_every_session(client: httpx.AsyncClient, api: Api) -> None:
    account = await api.register()
    second = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    other_headers = {"Authorization": f"Bearer {second.json()['data']['access_token']}"}
    assert (await client.get("/api/v1/me", headers=other_headers)).status_code == 200

    ended = await client.post("/api/v1/auth/logout-all", headers=account.headers)
    assert ended.json()["data"]["sessions_ended"] == 2
    for headers in (account.headers, other_headers):
        assert (await client.get("/api/v1/me", headers=headers)).status_code == 401


async def test_revoked_session_in_store_is_refused(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    """Revoking in the session store (what an admin or "log out everywhere" does from any
    process) takes effect on the very next request."""
    account = await api.register()
    await runtime.sessions.revoke_all(account.user_id)
    assert (await client.get("/api/v1/me", headers=account.headers)).status_code == 401


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer not-a-jwt", "Basic abc", "Bearer eyJhbGciOiJub25lIn0.e30."],
)
async def test_bad_credentials_are_401(client: httpx.AsyncClient, header: str) -> None:
    response = await client.get("/api/v1/me", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response.json()["success"] is False


async def test_token_signed_with_another_key_is_refused(
    client: httpx.AsyncClient, api: Api
) -> None:
    from datetime import UTC, datetime, timedelta

    from botplatform.kit.tokens import SessionTokenCodec

    account = await api.register()
    forged = SessionTokenCodec("another-secret").encode(
        "sid", str(account.user_id), datetime.now(UTC) + timedelta(hours=1)
    )
    response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


async def test_session_slides_but_never_outlives_its_lifetime(runtime: Runtime) -> None:
    import uuid

    session_id, created = await runtime.sessions.create(uuid.uuid4())
    found = await runtime.sessions.get(session_id)
    assert found is not None
    assert found.expires_at == created.expires_at
    await runtime.sessions.revoke_hash(created.user_id, created.session_hash)
    assert await runtime.sessions.get(session_id) is None


async def test_each_use_extends_the_idle_expiry(runtime: Runtime) -> None:
    import asyncio
    import uuid

    session_id, created = await runtime.sessions.create(uuid.uuid4())
    key = f"session:{created.session_hash}"
    await runtime.kv.expire(key, 1)  # as if the session were about to go idle
    assert await runtime.sessions.get(session_id) is not None  # this use slides it forward
    await asyncio.sleep(1.3)
    assert await runtime.sessions.get(session_id) is not None


async def test_a_session_never_outlives_its_absolute_lifetime(
    runtime: Runtime, tmp_settings: Settings
) -> None:
    import asyncio
    import uuid

    from botplatform.auth.sessions import SessionStore

    short = SessionStore(runtime.kv, tmp_settings.model_copy(update={"session_max_seconds": 1}))
    session_id, _ = await short.create(uuid.uuid4())
    assert await short.get(session_id) is not None
    await asyncio.sleep(1.2)
    assert await short.get(session_id) is None
