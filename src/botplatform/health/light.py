"""`botplatform db ping` without building the app: the database through its bare driver,
Redis through its client, so the command answers in well under a second. The app's own
readiness check (health/service.py) reports the same three states from a live Runtime."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from botplatform.config import Settings

CHECK_TIMEOUT_SECONDS = 3.0


def _sqlite_up(database_path: str) -> bool:
    if database_path and database_path != ":memory:":
        Path(database_path).parent.mkdir(parents=True, exist_ok=True)
    try:
        connection = sqlite3.connect(database_path, timeout=CHECK_TIMEOUT_SECONDS)
        try:
            connection.execute("SELECT 1").fetchone()
        finally:
            connection.close()
    except sqlite3.Error:
        return False
    return True


async def _postgres_up(dsn: str) -> bool:
    import asyncpg  # type: ignore[import-untyped]

    try:
        connection = await asyncpg.connect(dsn, timeout=CHECK_TIMEOUT_SECONDS)
    except Exception:  # refused, unknown host, bad credentials: all mean "down"
        return False
    try:
        await connection.fetchval("SELECT 1")
    finally:
        await connection.close()
    return True


async def _redis_up(url: str) -> bool:
    import redis.asyncio as redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=3)
    try:
        return bool(await client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        await client.aclose()


async def _database_up(settings: Settings) -> bool:
    dsn = settings.database_dsn
    if dsn.startswith("sqlite"):
        return await asyncio.to_thread(_sqlite_up, dsn.split(":///", 1)[1])
    return await _postgres_up(dsn.replace("postgresql+asyncpg://", "postgresql://", 1))


async def ping(settings: Settings) -> dict[str, str]:
    """Each dependency: "up", "down", or "in-process" (embedded mode has no server). The job
    queue's broker is the Redis of REDIS_URL, so it shares Redis's answer."""
    database, redis_up = await asyncio.gather(
        asyncio.wait_for(_database_up(settings), CHECK_TIMEOUT_SECONDS * 2),
        _redis_up(settings.redis_url) if settings.redis_url else asyncio.sleep(0, True),
    )
    redis_state = ("up" if redis_up else "down") if settings.redis_url else "in-process"
    return {
        "database": "up" if database else "down",
        "redis": redis_state,
        "queue": redis_state,
    }
