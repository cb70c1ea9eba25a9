"""Readiness: is every service this process depends on reachable right now?"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import anyio.to_thread

from botplatform.runtime import Runtime

CHECK_TIMEOUT_SECONDS = 3.0


async def _bounded(check: Coroutine[Any, Any, bool]) -> bool:
    try:
        return await asyncio.wait_for(check, CHECK_TIMEOUT_SECONDS)
    except Exception:  # unreachable, refused, timed out: all mean "down"
        return False


async def _broker_ping(runtime: Runtime) -> bool:
    client = getattr(runtime.jobs.broker, "client", None)
    if client is None:
        return True
    return bool(await anyio.to_thread.run_sync(client.ping))


async def readiness(runtime: Runtime) -> dict[str, str]:
    """Each dependency: "up", "down", or "in-process" (embedded mode has no server)."""
    database, redis, broker = await asyncio.gather(
        _bounded(runtime.db.ping()), _bounded(runtime.kv.ping()), _bounded(_broker_ping(runtime))
    )

    def state(up: bool) -> str:
        if not runtime.settings.redis_url:
            return "in-process"
        return "up" if up else "down"

    return {"database": "up" if database else "down", "redis": state(redis), "queue": state(broker)}
