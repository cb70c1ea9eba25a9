"""Password hashing (argon2id, off the event loop) and the password policy."""

from __future__ import annotations

from functools import lru_cache

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from botplatform.config import Settings
from botplatform.kit.errors import Unprocessable

#: zxcvbn refuses (raises on) longer input; a longer password is judged on its first
#: STRENGTH_CHECKED characters (the rest only adds strength). Passwords may be up to 1024.
STRENGTH_CHECKED = 72
MAX_LENGTH = 1024  # the API refuses longer ones before any work (auth/schemas.py)


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The 30,000 most common passwords, shipped inside the zxcvbn package."""
    return frozenset(FREQUENCY_LISTS["passwords"])


def policy_problems(password: str, email: str, settings: Settings) -> list[str]:
    """Why a password is refused; empty when it is acceptable."""
    if len(password) > MAX_LENGTH:
        return [f"must be at most {MAX_LENGTH} characters long"]
    problems = []
    if len(password) < settings.password_min_length:
        problems.append(f"must be at least {settings.password_min_length} characters long")
    lowered = password.lower()
    email = email.lower()
    local_part = email.split("@", 1)[0]
    if email and (email in lowered or (len(local_part) >= 4 and local_part in lowered)):
        problems.append("must not contain your email address")
    if lowered in common_passwords():
        problems.append("is one of the most common passwords")
    elif not problems and settings.password_min_score:
        score = zxcvbn(password[:STRENGTH_CHECKED], user_inputs=[email, local_part])["score"]
        if score < settings.password_min_score:
            problems.append("is too easy to guess")
    return problems


def enforce_policy(password: str, email: str, settings: Settings) -> None:
    problems = policy_problems(password, email, settings)
    if problems:
        raise Unprocessable(
            "The password is too weak: " + "; ".join(problems) + ".",
            code="weak_password",
            details={"field": "password", "problems": problems},
        )


class PasswordService:
    def __init__(self, settings: Settings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost_kib,
            parallelism=settings.argon2_parallelism,
        )
        # Verified against when the email is unknown, so both paths cost one argon2 run.
        self._dummy_hash = self._hasher.hash("botplatform-timing-equaliser")

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await anyio.to_thread.run_sync(self._verify, password_hash, password)

    def _verify(self, password_hash: str | None, password: str) -> bool:
        try:
            self._hasher.verify(password_hash or self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            return False
        return password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
