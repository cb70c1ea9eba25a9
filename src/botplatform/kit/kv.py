"""A small key-value port for sessions, caches and counters: Redis in production, a SQLite
file beside the database in embedded mode (so sessions, login locks and 2FA challenges
survive a restart), an in-process dictionary for throwaway setups. All behave the same for
what we use."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

import anyio.to_thread
import redis.asyncio as redis

T = TypeVar("T")


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


class SqliteStore:
    """Embedded mode's store: one table in its own SQLite file. Its own file, not a table of
    the main database: SQLite admits one writer per file, and a request's transaction holds
    the main file's write lock while it touches a session or counts a failed login, which
    would then wait on itself. Each call is one short transaction (WAL, so readers never
    wait), run in a worker thread so a lock held by a command never blocks the event loop.
    Expiry is wall-clock time, which survives a restart. A set is one row per member."""

    PURGE_EVERY = 500  # writes between sweeps of expired rows

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._writes = 0
        self._conn = sqlite3.connect(
            path, timeout=10, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS kv (key TEXT NOT NULL, member TEXT NOT NULL DEFAULT '',"
            " value TEXT, expires_at REAL, PRIMARY KEY (key, member))"
        )

    async def _run(self, work: Callable[[sqlite3.Connection, float], T], write: bool = True) -> T:
        def call() -> T:
            with self._lock:
                now = time.time()
                if not write:
                    return work(self._conn, now)
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(self._conn, now)
                    self._writes += 1
                    if self._writes % self.PURGE_EVERY == 0:
                        self._conn.execute("DELETE FROM kv WHERE expires_at <= ?", (now,))
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                return result

        return await anyio.to_thread.run_sync(call)

    async def get(self, key: str) -> str | None:
        def work(db: sqlite3.Connection, now: float) -> str | None:
            row = db.execute(
                "SELECT value FROM kv WHERE key = ? AND member = ''"
                " AND (expires_at IS NULL OR expires_at > ?)",
                (key, now),
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._run(work, write=False)

    async def put(self, key: str, value: str, ttl_seconds: int | None = None) -> None:
        def work(db: sqlite3.Connection, now: float) -> None:
            expires = None if ttl_seconds is None else now + ttl_seconds
            db.execute(
                "INSERT OR REPLACE INTO kv (key, member, value, expires_at) VALUES (?, '', ?, ?)",
                (key, value, expires),
            )

        await self._run(work)

    async def put_if_absent(self, key: str, value: str, ttl_seconds: float) -> bool:
        def work(db: sqlite3.Connection, now: float) -> bool:
            db.execute(
                "DELETE FROM kv WHERE key = ? AND member = '' AND expires_at <= ?", (key, now)
            )
            inserted = db.execute(
                "INSERT OR IGNORE INTO kv (key, member, value, expires_at) VALUES (?, '', ?, ?)",
                (key, value, now + ttl_seconds),
            )
            return inserted.rowcount == 1

        return await self._run(work)

    async def incr(self, key: str, ttl_seconds: int) -> int:
        """Adds one; the TTL starts with the first increment and is not extended."""

        def work(db: sqlite3.Connection, now: float) -> int:
            row = db.execute(
                "SELECT value, expires_at FROM kv WHERE key = ? AND member = ''"
                " AND (expires_at IS NULL OR expires_at > ?)",
                (key, now),
            ).fetchone()
            value = int(row[0]) + 1 if row is not None else 1
            expires = row[1] if row is not None and row[1] is not None else now + ttl_seconds
            db.execute(
                "INSERT OR REPLACE INTO kv (key, member, value, expires_at) VALUES (?, '', ?, ?)",
                (key, str(value), expires),
            )
            return value

        return await self._run(work)

    async def delete(self, *keys: str) -> int:
        def work(db: sqlite3.Connection, now: float) -> int:
            removed = 0
            for key in keys:
                live = db.execute(
                    "SELECT 1 FROM kv WHERE key = ?"
                    " AND (expires_at IS NULL OR expires_at > ?) LIMIT 1",
                    (key, now),
                ).fetchone()
                removed += live is not None
                db.execute("DELETE FROM kv WHERE key = ?", (key,))
            return removed

        return await self._run(work) if keys else 0

    async def expire(self, key: str, ttl_seconds: float) -> bool:
        def work(db: sqlite3.Connection, now: float) -> bool:
            changed = db.execute(
                "UPDATE kv SET expires_at = ? WHERE key = ?"
                " AND (expires_at IS NULL OR expires_at > ?)",
                (now + ttl_seconds, key, now),
            )
            return changed.rowcount > 0

        return await self._run(work)

    async def set_add(self, key: str, *members: str) -> None:
        def work(db: sqlite3.Connection, now: float) -> None:
            db.executemany(
                "INSERT OR IGNORE INTO kv (key, member, value, expires_at) VALUES (?, ?, '', NULL)",
                [(key, member) for member in members],
            )

        await self._run(work)

    async def set_remove(self, key: str, *members: str) -> None:
        def work(db: sqlite3.Connection, now: float) -> None:
            db.executemany(
                "DELETE FROM kv WHERE key = ? AND member = ?", [(key, m) for m in members]
            )

        await self._run(work)

    async def set_members(self, key: str) -> set[str]:
        def work(db: sqlite3.Connection, now: float) -> set[str]:
            rows = db.execute(
                "SELECT member FROM kv WHERE key = ? AND member != ''"
                " AND (expires_at IS NULL OR expires_at > ?)",
                (key, now),
            ).fetchall()
            return {str(row[0]) for row in rows}

        return await self._run(work, write=False)

    async def clear(self) -> None:
        """Forgets everything (tests)."""
        await self._run(lambda db, now: db.execute("DELETE FROM kv"))

    async def ping(self) -> bool:
        try:
            await self._run(lambda db, now: db.execute("SELECT 1").fetchone(), write=False)
        except sqlite3.Error:
            return False
        return True

    async def close(self) -> None:
        with self._lock:
            self._conn.close()


def embedded_store_path(database_dsn: str, data_dir: Path) -> Path | None:
    """Where the embedded store lives: beside a SQLite database file, or in the data
    directory when the database is elsewhere; None for an in-memory database."""
    if database_dsn.startswith("sqlite"):
        database_path = database_dsn.split(":///", 1)[1]
        if not database_path or database_path == ":memory:":
            return None
        main = Path(database_path)
        return main.with_name(main.name + ".kv")
    return data_dir / "kv.sqlite3"


def create_store(redis_url: str, embedded_path: Path | None = None) -> KeyValueStore:
    if redis_url:
        return RedisStore(redis_url)
    return SqliteStore(embedded_path) if embedded_path is not None else MemoryStore()
