"""A small key-value port for sessions, caches and counters: Redis in production,
an in-process dictionary in embedded mode. Both behave the same for what we use."""

from __future__ import annotations

import time
from typing import Protocol

import redis.asyncio as redis


class KeyValueStore(Protocol):
    async def get(self, key: str) -> str | None: ...
    async def put(self, key: str, value: str, ttl_seconds: int | None = None) -> None: ...
    async def put_if_absent(self, key: str, value: str, ttl_seconds: float) -> bool: ...
    async def incr(self, key: str, ttl_seconds: int) -> int: ...
    async def delete(self, *keys: str) -> int: ...
    async def expire(self, key: str, ttl_seconds: float) -> bool: ...
    async def set_add(self, key: str, *members: str) -> None: ...
    async def set_remove(self, key: str, *members: str) -> None: ...
    async def set_members(self, key: str) -> set[str]: ...
    async def ping(self) -> bool: ...
    async def close(self) -> None: ...


class MemoryStore:
    """Single-process store. Expired keys are dropped lazily when touched."""

    def __init__(self) -> None:
        self._values: dict[str, str | set[str]] = {}
        self._expires: dict[str, float] = {}

    def _alive(self, key: str) -> bool:
        deadline = self._expires.get(key)
        if deadline is not None and deadline <= time.monotonic():
            self._values.pop(key, None)
            self._expires.pop(key, None)
        return key in self._values

    async def get(self, key: str) -> str | None:
        value = self._values.get(key) if self._alive(key) else None
        return value if isinstance(value, str) else None

    async def put(self, key: str, value: str, ttl_seconds: int | None = None) -> None:
        self._values[key] = value
        self._expires.pop(key, None)
        if ttl_seconds is not None:
            self._expires[key] = time.monotonic() + ttl_seconds

    async def put_if_absent(self, key: str, value: str, ttl_seconds: float) -> bool:
        if self._alive(key):
            return False
        self._values[key] = value
        self._expires[key] = time.monotonic() + ttl_seconds
        return True

    async def incr(self, key: str, ttl_seconds: int) -> int:
        """Adds one; the TTL starts with the first increment and is not extended."""
        current = await self.get(key)
        value = int(current or 0) + 1
        deadline = self._expires.get(key)
        self._values[key] = str(value)
        self._expires[key] = (
            deadline if current is not None and deadline else (time.monotonic() + ttl_seconds)
        )
        return value

    async def delete(self, *keys: str) -> int:
        removed = 0
        for key in keys:
            if self._alive(key):
                removed += 1
            self._values.pop(key, None)
            self._expires.pop(key, None)
        return removed

    async def expire(self, key: str, ttl_seconds: float) -> bool:
        if not self._alive(key):
            return False
        self._expires[key] = time.monotonic() + ttl_seconds
        return True

    async def set_add(self, key: str, *members: str) -> None:
        current = self._values.get(key) if self._alive(key) else None
        target = current if isinstance(current, set) else set()
        target.update(members)
        self._values[key] = target

    async def set_remove(self, key: str, *members: str) -> None:
        current = self._values.get(key) if self._alive(key) else None
        if isinstance(current, set):
            current.difference_update(members)

    async def set_members(self, key: str) -> set[str]:
        current = self._values.get(key) if self._alive(key) else None
        return set(current) if isinstance(current, set) else set()

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._values.clear()
        self._expires.clear()


class RedisStore:
    def __init__(self, url: str) -> None:
        self.client: redis.Redis = redis.Redis.from_url(
            url, decode_responses=True, socket_connect_timeout=2, socket_timeout=5
        )

    async def get(self, key: str) -> str | None:
        value = await self.client.get(key)
        return None if value is None else str(value)

    async def put(self, key: str, value: str, ttl_seconds: int | None = None) -> None:
        await self.client.set(key, value, ex=ttl_seconds)

    async def put_if_absent(self, key: str, value: str, ttl_seconds: float) -> bool:
        return bool(await self.client.set(key, value, px=int(ttl_seconds * 1000), nx=True))

    async def incr(self, key: str, ttl_seconds: int) -> int:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, ttl_seconds, nx=True)
            value, _ = await pipe.execute()
        return int(value)

    async def delete(self, *keys: str) -> int:
        return int(await self.client.delete(*keys)) if keys else 0

    async def expire(self, key: str, ttl_seconds: float) -> bool:
        return bool(await self.client.pexpire(key, int(ttl_seconds * 1000)))

    async def set_add(self, key: str, *members: str) -> None:
        await self.client.sadd(key, *members)

    async def set_remove(self, key: str, *members: str) -> None:
        await self.client.srem(key, *members)

    async def set_members(self, key: str) -> set[str]:
        return {str(m) for m in await self.client.smembers(key)}

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except (redis.RedisError, OSError):
            return False

    async def close(self) -> None:
        await self.client.aclose()


def create_store(redis_url: str) -> KeyValueStore:
    return RedisStore(redis_url) if redis_url else MemoryStore()
