"""TOTP 2FA: setup with QR, enable with recovery codes, two-step login, replay refused,
disable, emails, and a workspace that requires it."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pyotp

from tests.conftest import STRONG_PASSWORD, Account, Api, SmtpSink, eventually


def codes(secret: str) -> list[str]:
    """Three codes valid right now (previous, current and next 30-second step)."""
    totp, now = pyotp.TOTP(secret), time.time()
    return [totp.at(now - 30), totp.at(now), totp.at(now + 30)]


async def enable_2fa(client: httpx.AsyncClient, account: Account) -> tuple[str, list[str]]:
    setup = (await client.post("/api/v1/auth/2fa/setup", headers=account.headers)).json()["data"]
    enabled = await client.post(
        "/api/v1/auth/2fa/enable", json={"code": codes(setup["secret"])[1]}, headers=account.headers
    )
    assert enabled.status_code == 200, enabled.text
    return setup["secret"], enabled.json()["data"]["recovery_codes"]


async def login(client: httpx.AsyncClient, email: str) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": STRONG_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


async def test_setup_gives_secret_uri_and_qr(client: httpx.AsyncClient, api: Api) -> None:
    account = await api.register("qr@example.com")
    response = await client.post("/api/v1/auth/2fa/setup", headers=account.headers)
    data = response.json()["data"]
    assert data["otpauth_uri"].startswith("otpauth://totp/")
    assert f"secret={data['secret']}" in data["otpauth_uri"]
    assert "qr%40example.com" in data["otpauth_uri"] or "qr@example.com" in data["otpauth_uri"]
    assert data["qr_svg"].startswith("<svg") and data["qr_svg"].rstrip().endswith("</svg>")
    # Not on yet: logging in still needs only the password.
    assert "access_token" in await login(client, "qr@example.com")


async def test_enable_needs_a_valid_code(client: httpx.AsyncClient, api: Api) -> None:
    account = await api.register()
    await client.post("/api/v1/auth/2fa/setup", headers=account.headers)
    wrong = await client.post(
        "/api/v1/auth/2fa/enable", json={"code": "000000"}, headers=account.headers
    )
    assert wrong.status_code == 422
    assert wrong.json()["error"]["code"] == "invalid_code"


async def test_login_is_two_steps_and_codes_work_once(
    client: httpx.AsyncClient, api: Api, smtp: SmtpSink
) -> None:
    account = await api.register("two@example.com")
    secret, recovery = await enable_2fa(client, account)
    assert len(recovery) == 10 and len(set(recovery)) == 10
    (notice,) = await eventually(lambda: smtp.to("two@example.com"))
    assert notice["Subject"] == "Two-factor authentication enabled"

    first = await login(client, "two@example.com")
    assert first["two_factor_required"] is True and "access_token" not in first
    valid = codes(secret)
    # The code used to enable was valid[1]: it cannot be used again.
    replay = await client.post(
        "/api/v1/auth/2fa/verify",
        json={"challenge_token": first["challenge_token"], "code": valid[1]},
    )
    assert replay.status_code == 401
    done = await client.post(
        "/api/v1/auth/2fa/verify",
        json={"challenge_token": first["challenge_token"], "code": valid[2]},
    )
    assert done.status_code == 200, done.text
    token = done.json()["data"]["access_token"]
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["data"]["user"]["two_factor_enabled"] is True
    # A challenge completes once.
    again = await client.post(
        "/api/v1/auth/2fa/verify",
        json={"challenge_token": first["challenge_token"], "code": valid[0]},
    )
    assert again.json()["error"]["code"] == "challenge_expired"

    # A recovery code works once.
    second = await login(client, "two@example.com")
    used = await client.post(
        "/api/v1/auth/2fa/verify",
        json={"challenge_token": second["challenge_token"], "recovery_code": recovery[0]},
    )
    assert used.status_code == 200
    third = await login(client, "two@example.com")
    reused = await client.post(
        "/api/v1/auth/2fa/verify",
        json={"challenge_token": third["challenge_token"], "recovery_code": recovery[0]},
    )
    assert reused.status_code == 401


async def test_wrong_codes_burn_the_challenge(client: httpx.AsyncClient, api: Api) -> None:
    account = await api.register("burn@example.com")
    secret, _ = await enable_2fa(client, account)
    challenge = (await login(client, "burn@example.com"))["challenge_token"]
    for _ in range(5):
        await client.post(
            "/api/v1/auth/2fa/verify", json={"challenge_token": challenge, "code": "123456"}
        )
    late = await client.post(
        "/api/v1/auth/2fa/verify", json={"challenge_token": challenge, "code": codes(secret)[2]}
    )
    assert late.json()["error"]["code"] == "challenge_expired"


async def test_disable_needs_password_and_code(
    client: httpx.AsyncClient, api: Api, smtp: SmtpSink
) -> None:
    account = await api.register("off@example.com")
    secret, _ = await enable_2fa(client, account)
    no_code = await client.post(
        "/api/v1/auth/2fa/disable", json={"password": STRONG_PASSWORD}, headers=account.headers
    )
    assert no_code.status_code == 401
    bad_password = await client.post(
        "/api/v1/auth/2fa/disable",
        json={"password": "wrong-password-1", "code": codes(secret)[2]},
        headers=account.headers,
    )
    assert bad_password.status_code == 401
    off = await client.post(
        "/api/v1/auth/2fa/disable",
        json={"password": STRONG_PASSWORD, "code": codes(secret)[0]},
        headers=account.headers,
    )
    assert off.status_code == 200
    assert "access_token" in await login(client, "off@example.com")
    await eventually(
        lambda: any(
            m["Subject"] == "Two-factor authentication disabled" for m in smtp.to("off@example.com")
        )
    )


async def test_workspace_can_require_2fa(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    admin = await api.add_member(owner, ws, "admin")
    refused = await client.patch(
        f"/api/v1/workspaces/{ws}", json={"require_2fa": True}, headers=admin.headers
    )
    assert refused.json()["error"]["code"] == "owner_only"
    # The owner turns it on for everyone (itself included: it must enable 2FA first to work).
    await enable_2fa(client, owner)
    on = await client.patch(
        f"/api/v1/workspaces/{ws}", json={"require_2fa": True}, headers=owner.headers
    )
    assert on.status_code == 200 and on.json()["data"]["require_2fa"] is True

    blocked = await client.get(f"/api/v1/workspaces/{ws}/members", headers=admin.headers)
    assert blocked.status_code == 403
    assert blocked.json()["error"]["code"] == "two_factor_required"
    await enable_2fa(client, admin)
    assert (
        await client.get(f"/api/v1/workspaces/{ws}/members", headers=admin.headers)
    ).status_code == 200
