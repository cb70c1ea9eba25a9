"""Password reset: emailed single-use link, no enumeration, 2FA still required, and every
session ends."""

from __future__ import annotations

import httpx

from tests.auth.test_two_factor import codes, enable_2fa
from tests.conftest import Api, SmtpSink, eventually

NEW_PASSWORD = "amber-orchard-compass-77"


async def _reset_token(client: httpx.AsyncClient, smtp: SmtpSink, email: str) -> str:
    response = await client.post("/api/v1/auth/password/forgot", json={"email": email})
    assert response.status_code == 200
    (message,) = await eventually(
        lambda: [m for m in smtp.to(email) if m["Subject"] == "Reset your password"]
    )
    text = message.get_body(("plain",)).get_content()
    return str(text.split("token=", 1)[1].split()[0])


async def test_reset_by_link_once_and_sessions_end(
    client: httpx.AsyncClient, api: Api, smtp: SmtpSink
) -> None:
    account = await api.register("forgetful@example.com")
    token = await _reset_token(client, smtp, account.email)
    reset = await client.post(
        "/api/v1/auth/password/reset", json={"token": token, "password": NEW_PASSWORD}
    )
    assert reset.status_code == 200, reset.text
    assert (await client.get("/api/v1/me", headers=account.headers)).status_code == 401
    old = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    assert old.status_code == 401
    new = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": NEW_PASSWORD}
    )
    assert new.status_code == 200
    again = await client.post(
        "/api/v1/auth/password/reset", json={"token": token, "password": "another-long-pass-99"}
    )
    assert again.status_code == 410
    assert again.json()["error"]["code"] == "reset_link_used"


async def test_unknown_email_gets_the_same_answer(
    client: httpx.AsyncClient, api: Api, smtp: SmtpSink
) -> None:
    await api.register("known@example.com")
    known = await client.post("/api/v1/auth/password/forgot", json={"email": "known@example.com"})
    unknown = await client.post("/api/v1/auth/password/forgot", json={"email": "nope@example.com"})
    assert known.status_code == unknown.status_code == 200
    assert known.json()["message"] == unknown.json()["message"]
    await eventually(lambda: smtp.to("known@example.com"))
    assert smtp.to("nope@example.com") == []


async def test_reset_does_not_bypass_2fa(
    client: httpx.AsyncClient, api: Api, smtp: SmtpSink
) -> None:
    account = await api.register("guarded@example.com")
    secret, _ = await enable_2fa(client, account)
    token = await _reset_token(client, smtp, account.email)
    without = await client.post(
        "/api/v1/auth/password/reset", json={"token": token, "password": NEW_PASSWORD}
    )
    assert without.status_code == 401
    assert without.json()["error"]["code"] == "two_factor_code_required"
    with_code = await client.post(
        "/api/v1/auth/password/reset",
        json={"token": token, "password": NEW_PASSWORD, "code": codes(secret)[2]},
    )
    assert with_code.status_code == 200


async def test_forged_link_and_weak_password(
    client: httpx.AsyncClient, api: Api, smtp: SmtpSink
) -> None:
    account = await api.register("weak@example.com")
    token = await _reset_token(client, smtp, account.email)
    forged = await client.post(
        "/api/v1/auth/password/reset", json={"token": token[:-4] + "AAAA", "password": NEW_PASSWORD}
    )
    assert forged.json()["error"]["code"] == "reset_link_invalid"
    weak = await client.post(
        "/api/v1/auth/password/reset", json={"token": token, "password": "password1234"}
    )
    assert weak.json()["error"]["code"] == "weak_password"
