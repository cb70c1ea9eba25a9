"""Brute force: failures counted per account and per IP, progressive lockout, and the same
answer and similar time for an unknown email and a wrong password."""

from __future__ import annotations

import statistics
import time

import httpx
import pytest

from botplatform.auth.lockout import LoginGuard
from botplatform.kit.errors import TooManyRequests
from botplatform.runtime import Runtime
from tests.conftest import STRONG_PASSWORD, Api


async def _login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    # Every attempt comes from the test transport's one client address.
    return await client.post("/api/v1/auth/login", json={"email": email, "password": password})


async def test_account_locks_after_repeated_failures(client: httpx.AsyncClient, api: Api) -> None:
    account = await api.register("victim@example.com")
    for _ in range(5):
        assert (await _login(client, account.email, "wrong-password-123")).status_code == 401
    locked = await _login(client, account.email, STRONG_PASSWORD)  # even the right password
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "login_locked"
    assert 1 <= int(locked.headers["Retry-After"]) <= 60


async def test_unknown_accounts_lock_the_same_way(client: httpx.AsyncClient) -> None:
    for _ in range(5):
        assert (await _login(client, "ghost@example.com", "wrong-password-123")).status_code == 401
    assert (await _login(client, "ghost@example.com", "x")).json()["error"][
        "code"
    ] == "login_locked"


async def test_lockouts_double_and_are_capped(runtime: Runtime, client: httpx.AsyncClient) -> None:
    guard = LoginGuard(runtime.kv, runtime.settings)
    waits = []
    for _ in range(4):
        for _ in range(5):
            await guard.failed("doubling@example.com", "198.51.100.1")
        try:
            await guard.check("doubling@example.com", "198.51.100.2")
        except TooManyRequests as exc:
            waits.append(int(exc.headers["Retry-After"]))
        await runtime.kv.delete("login_lock:account:doubling@example.com")
    assert waits == [60, 120, 240, 480]
    capped = LoginGuard(
        runtime.kv, runtime.settings.model_copy(update={"login_lockout_max_seconds": 100})
    )
    for _ in range(5):
        await capped.failed("doubling@example.com", "198.51.100.1")
    with pytest.raises(TooManyRequests) as raised:
        await capped.check("doubling@example.com", "198.51.100.3")
    assert raised.value.headers is not None
    assert int(raised.value.headers["Retry-After"]) == 100


async def test_ip_locks_after_many_accounts_fail(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    guard = LoginGuard(runtime.kv, runtime.settings)
    for index in range(20):  # 4x the per-account limit, spread over accounts
        await guard.failed(f"spray-{index}@example.com", "192.0.2.50")
    with pytest.raises(TooManyRequests):
        await guard.check("fresh@example.com", "192.0.2.50")
    await guard.check("fresh@example.com", "192.0.2.51")  # other IPs are not


async def test_success_resets_the_account_counter(client: httpx.AsyncClient, api: Api) -> None:
    account = await api.register()
    for _ in range(4):
        await _login(client, account.email, "wrong-password-123")
    assert (await _login(client, account.email, STRONG_PASSWORD)).status_code == 200
    for _ in range(4):
        await _login(client, account.email, "wrong-password-123")
    assert (await _login(client, account.email, STRONG_PASSWORD)).status_code == 200


async def test_unknown_email_and_wrong_password_take_similar_time(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    """Both paths run one argon2 verification; their medians stay within a few ms."""
    await api.register("timed@example.com")
    wrong: list[float] = []
    unknown: list[float] = []
    for round_ in range(10):
        for email, bucket in (
            ("timed@example.com", wrong),
            (f"nobody{round_}@example.com", unknown),
        ):
            started = time.perf_counter()
            response = await _login(client, email, "not-the-password-1")
            bucket.append(time.perf_counter() - started)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "invalid_credentials"
        # Keep the lockout out of this measurement.
        await runtime.kv.delete("login_fail:account:timed@example.com", "login_fail:ip:127.0.0.1")
    difference = abs(statistics.median(wrong) - statistics.median(unknown))
    assert difference < max(0.010, 0.5 * statistics.median(wrong)), (wrong, unknown)
