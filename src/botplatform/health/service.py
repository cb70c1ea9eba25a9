"""Readiness: is every service this process depends on reachable right now?"""

from __future__ import annotations

import asyncio

from botplatform.runtime import Runtime

CHECK_TIMEOUT_SECONDS = 3.0


async def _bounded(check: asyncio.Future[bool] | object) -> bool:
    try:
        return bool(await asyncio.wait_for(check, CHECK_TIMEOUT_SECONDS))  # type: ignore[arg-type]
    except (TimeoutError, OSError):
        return False


async def readiness(runtime: Runtime) -> dict[str, str]:
    """`{"database": "up"|"down", "redis": "up"|"down"|"in-process"}`."""
    database, redis = await asyncio.gather(_bounded(runtime.db.ping()), _bounded(runtime.kv.ping()))
    return {
        "database": "up" if database else "down",
        "redis": ("up" if redis else "down") if runtime.settings.redis_url else "in-process",
    }
