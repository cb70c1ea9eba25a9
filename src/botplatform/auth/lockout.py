"""Brute-force protection for logins: failures are counted per account and per client IP in
the shared store; past the limit the account (or IP) is locked for a while that doubles with
each lockout, up to a cap. Unknown emails are counted exactly like known ones, so the lock
reveals nothing about which accounts exist."""

from __future__ import annotations

import time

from botplatform.config import Settings
from botplatform.kit.errors import TooManyRequests
from botplatform.kit.kv import KeyValueStore

FAILURE_WINDOW_SECONDS = 15 * 60
LEVEL_MEMORY_SECONDS = 24 * 3600
IP_LIMIT_FACTOR = 4  # an office behind one NAT shares an IP: allow it more failures


class LoginGuard:
    def __init__(self, kv: KeyValueStore, settings: Settings) -> None:
        self.kv = kv
        self.max_failures = settings.login_max_failures
        self.base_seconds = settings.login_lockout_seconds
        self.cap_seconds = settings.login_lockout_max_seconds

    @staticmethod
    def _subjects(email: str, ip: str) -> list[tuple[str, int]]:
        return [(f"account:{email.strip().lower()}", 1), (f"ip:{ip}", IP_LIMIT_FACTOR)]

    async def check(self, email: str, ip: str) -> None:
        """Raises 429 `login_locked` while the account or the IP is locked."""
        now = time.time()
        for subject, _ in self._subjects(email, ip):
            until = await self.kv.get(f"login_lock:{subject}")
            if until is not None and float(until) > now:
                wait = max(1, int(float(until) - now + 0.999))
                raise TooManyRequests(
                    f"Too many failed logins; try again in {wait} s.",
                    code="login_locked",
                    headers={"Retry-After": str(wait)},
                    details={"retry_after": wait},
                )

    async def failed(self, email: str, ip: str) -> None:
        for subject, factor in self._subjects(email, ip):
            failures = await self.kv.incr(f"login_fail:{subject}", FAILURE_WINDOW_SECONDS)
            if failures >= self.max_failures * factor:
                level = await self.kv.incr(f"login_level:{subject}", LEVEL_MEMORY_SECONDS)
                seconds = min(self.base_seconds * 2 ** (level - 1), self.cap_seconds)
                await self.kv.put(f"login_lock:{subject}", str(time.time() + seconds), seconds)
                await self.kv.delete(f"login_fail:{subject}")

    async def succeeded(self, email: str) -> None:
        """The account's failures are forgotten, and a lock on it (if an operator set a new
        password while it was locked) is lifted."""
        subject = f"account:{email.strip().lower()}"
        await self.kv.delete(
            f"login_fail:{subject}", f"login_level:{subject}", f"login_lock:{subject}"
        )


TWO_FACTOR_MAX_FAILURES = 10  # wrong codes per account in FAILURE_WINDOW_SECONDS


class TwoFactorGuard:
    """Wrong second-factor codes, counted per account across every challenge, reset link
    and 2FA change: someone who has the password cannot try codes forever by starting new
    challenges. Past the limit the account's second factor is locked like a password lockout
    (doubling, capped), and a right code is refused too until the lock ends."""

    def __init__(self, kv: KeyValueStore, settings: Settings) -> None:
        self.kv = kv
        self.base_seconds = settings.login_lockout_seconds
        self.cap_seconds = settings.login_lockout_max_seconds

    async def check(self, user_id: str) -> None:
        until = await self.kv.get(f"2fa_lock:{user_id}")
        now = time.time()
        if until is not None and float(until) > now:
            wait = max(1, int(float(until) - now + 0.999))
            raise TooManyRequests(
                f"Too many wrong codes; two-factor login is locked for {wait} s.",
                code="two_factor_locked",
                headers={"Retry-After": str(wait)},
                details={"retry_after": wait},
            )

    async def failed(self, user_id: str) -> None:
        failures = await self.kv.incr(f"2fa_fail:{user_id}", FAILURE_WINDOW_SECONDS)
        if failures >= TWO_FACTOR_MAX_FAILURES:
            level = await self.kv.incr(f"2fa_level:{user_id}", LEVEL_MEMORY_SECONDS)
            seconds = min(self.base_seconds * 2 ** (level - 1), self.cap_seconds)
            await self.kv.put(f"2fa_lock:{user_id}", str(time.time() + seconds), seconds)
            await self.kv.delete(f"2fa_fail:{user_id}")

    async def succeeded(self, user_id: str) -> None:
        await self.kv.delete(f"2fa_fail:{user_id}", f"2fa_level:{user_id}")
