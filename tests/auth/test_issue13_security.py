"""Security findings of issue 13: wrong 2FA codes limited per account across challenges,
long passwords never a 500, a failed reset spends nothing, and a workspace requiring 2FA
stops the API keys of members without it."""

from __future__ import annotations

import secrets
import string

import httpx
import pytest

from tests.auth.test_password_reset import NEW_PASSWORD, _reset_token
from tests.auth.test_two_factor import codes, enable_2fa, login
from tests.conftest import Api, SmtpSink
from tests.dashboard.helpers import browser_login


async def test_wrong_codes_lock_the_account_across_challenges(
    client: httpx.AsyncClient, api: Api
) -> None:
    account = await api.register("guessed@example.com")
    secret, _ = await enable_2fa(client, account)
    answers = []
    for _ in range(4):  # new challenges do not start the count over
        challenge = (await login(client, account.email))["challenge_token"]
        for _ in range(3):
            response = await client.post(
                "/api/v1/auth/2fa/verify", json={"challenge_token": challenge, "code": "000000"}
            )
            answers.append(response.json()["error"]["code"])
    assert answers[:10] == ["invalid_code"] * 10
    assert set(answers[10:]) == {"two_factor_locked"}
    # Even a right code on a fresh challenge is refused while the account's 2FA is locked.
    challenge = (await login(client, account.email))["challenge_token"]
    locked = await client.post(
        "/api/v1/auth/2fa/verify",
        json={"challenge_token": challenge, "code": codes(secret)[2]},
    )
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "two_factor_locked"
    assert int(locked.headers["Retry-After"]) >= 1


def _long_password(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


@pytest.mark.parametrize("length", [73, 200, 1024])
async def test_long_passwords_register_and_log_in(client: httpx.AsyncClient, length: int) -> None:
    password = _long_password(length)
    email = f"long{length}@example.com"
    created = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": password}
    )
    assert created.status_code == 201, created.text
    logged_in = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert logged_in.status_code == 200


async def test_a_weak_head_is_judged_on_its_first_72_characters(client: httpx.AsyncClient) -> None:
    # 72 repeated characters and then randomness: the checker sees the weak part.
    password = "a" * 72 + _long_password(20)
    response = await client.post(
        "/api/v1/auth/register", json={"email": "head@example.com", "password": password}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "weak_password"


async def test_too_long_passwords_are_a_422(
    client: httpx.AsyncClient, api: Api, smtp: SmtpSink
) -> None:
    huge = _long_password(1025)
    register = await client.post(
        "/api/v1/auth/register", json={"email": "huge@example.com", "password": huge}
    )
    assert register.status_code == 422
    account = await api.register("huge-reset@example.com")
    token = await _reset_token(client, smtp, account.email)
    reset = await client.post(
        "/api/v1/auth/password/reset", json={"token": token, "password": huge}
    )
    assert reset.status_code == 422
    # The refused request spent nothing: the link still sets a good password.
    ok = await client.post(
        "/api/v1/auth/password/reset", json={"token": token, "password": NEW_PASSWORD}
    )
    assert ok.status_code == 200, ok.text


async def test_a_refused_reset_spends_neither_link_nor_code(
    client: httpx.AsyncClient, api: Api, smtp: SmtpSink
) -> None:
    account = await api.register("careful@example.com")
    secret, _ = await enable_2fa(client, account)
    token = await _reset_token(client, smtp, account.email)
    code = codes(secret)[2]  # the enabling code was the current one
    weak = await client.post(
        "/api/v1/auth/password/reset",
        json={"token": token, "password": "password", "code": code},
    )
    assert weak.status_code == 422
    assert weak.json()["error"]["code"] == "weak_password"
    again = await client.post(
        "/api/v1/auth/password/reset",
        json={"token": token, "password": NEW_PASSWORD, "code": code},
    )
    assert again.status_code == 200, again.text


async def test_required_2fa_stops_keys_of_members_without_it(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    developer = await api.add_member(owner, ws, "admin")
    key = (await api.create_key(developer, ws, ["members:read"]))["key"]
    headers = {"Authorization": f"Bearer {key}"}
    url = f"/api/v1/workspaces/{ws}/members"
    assert (await client.get(url, headers=headers)).status_code == 200
    await enable_2fa(client, owner)
    on = await client.patch(
        f"/api/v1/workspaces/{ws}", json={"require_2fa": True}, headers=owner.headers
    )
    assert on.status_code == 200
    refused = await client.get(url, headers=headers)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "two_factor_required"
    await enable_2fa(client, developer)  # the key's creator complies: the key works again
    assert (await client.get(url, headers=headers)).status_code == 200


async def test_the_settings_page_says_keys_follow_the_2fa_requirement(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await browser_login(client, owner.email, owner.password)
    page = await client.get(f"/app/w/{ws}/settings")
    assert page.status_code == 200
    assert "the API keys they created stop working" in page.text
