"""Rate limits (SPEC §7): one limiter, Redis-backed in production so a limit holds across
every app process, in-process when embedded. Sliding-window counters from `limits`.

Tiers: `general` per client IP on the API, `auth` per client IP on the login-type routes,
`webhooks` per workspace on inbound provider webhooks, and `api` per workspace for its API
keys at its plan's rate (`hit_per_minute`: the rate comes from the plan's row, not a tier).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerMinute, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from botplatform.config import Settings
from botplatform.kit.envelope import error_from
from botplatform.kit.errors import TooManyRequests
from botplatform.kit.middleware import ASGIApp, Message, Receive, Scope, Send, request_ip

#: Routes that take credentials: the strict `auth` tier instead of `general`, with a budget
#: of its own per kind of route, so a burst of registrations from an address does not lock
#: its logins out, nor the other way round.
AUTH_PATHS: dict[str, str] = {
    "/api/v1/auth/login": "login",
    "/api/v1/auth/2fa/verify": "login",
    "/api/v1/auth/register": "register",
    "/api/v1/auth/password/forgot": "password",
    "/api/v1/auth/password/reset": "password",
}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    @property
    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(self.reset_seconds, 1))
        return headers

    def raise_if_denied(self) -> None:
        if not self.allowed:
            raise TooManyRequests(
                f"Rate limit exceeded; retry in {max(self.reset_seconds, 1)} s.",
                headers=self.headers,
                details={"limit": self.limit, "retry_after": max(self.reset_seconds, 1)},
            )


class RateLimiter:
    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limit_enabled
        self.storage: Storage = (
            RedisStorage(f"async+{settings.redis_url}", implementation="redispy")
            if settings.redis_url
            else MemoryStorage()
        )
        self._strategy = SlidingWindowCounterRateLimiter(self.storage)
        self.tiers: dict[str, RateLimitItem] = {
            "general": parse(settings.rate_limit_general),
            "auth": parse(settings.rate_limit_auth),
            "webhooks": parse(settings.rate_limit_webhooks),
            "webchat_visitor": parse(settings.rate_limit_webchat_visitor),
            "webchat_ip": parse(settings.rate_limit_webchat_ip),
        }

    async def hit(self, tier: str, key: str) -> Decision:
        return await self._hit(self.tiers[tier], tier, key)

    async def hit_per_minute(self, namespace: str, key: str, per_minute: int) -> Decision:
        """A limit whose rate is data (a plan's requests per minute), not a configured tier."""
        return await self._hit(RateLimitItemPerMinute(per_minute), namespace, key)

    async def _hit(self, item: RateLimitItem, tier: str, key: str) -> Decision:
        if not self.enabled:
            return Decision(True, item.amount, item.amount, 0)
        allowed = await self._strategy.hit(item, tier, key)
        stats = await self._strategy.get_window_stats(item, tier, key)
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        return Decision(allowed, item.amount, max(stats.remaining, 0), reset)

    async def reset(self) -> None:
        await self.storage.reset()


class RateLimitMiddleware:
    """Applies the per-IP tiers to /api/ before any route runs, and reports the state of the
    limit in RateLimit-* headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/v1/"):
            await self.app(scope, receive, send)
            return
        budget = AUTH_PATHS.get(scope["path"])
        tier, key = ("auth", f"{budget}:{request_ip(scope)}") if budget else ("general", "")
        limiter: RateLimiter = scope["app"].state.runtime.ratelimiter
        decision = await limiter.hit(tier, key or request_ip(scope))
        if not decision.allowed:
            await error_from(TooManyRequests(headers=decision.headers))(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                # A narrower limit (an API key's) already reported itself: it is the one
                # the caller is closest to.
                if not any(name == b"ratelimit-limit" for name, _ in headers):
                    headers += [
                        (k.lower().encode(), v.encode()) for k, v in decision.headers.items()
                    ]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
