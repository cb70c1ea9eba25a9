"""What rarely changes, kept in process: a channel with its decrypted credentials, a plan's
quotas, the live bots, the automation-rule events and the subscribed webhook endpoints of a
workspace. The message path asks for each of them on every message; the database answers the
same thing until an admin changes it.

An entry is a small immutable value (a frozen dataclass or a tuple, never a row bound to a
session) under (kind, workspace, key). It is dropped
- when a transaction that changed what it was built from COMMITS, in this process at once and
  in every other process through one Redis channel (pub/sub: one message per commit, no
  polling, nothing stored);
- after `TTL_SECONDS` in any case: the backstop for a message lost while a subscription was
  down, and for writes made outside the application (psql, a migration).

Writes are noticed for the caller: a domain declares with `watch` which model's rows (and
which of their columns) feed its kind, and every ORM flush that touches one queues the drop
for after the commit (nothing on rollback). A Core UPDATE/DELETE of a watched table is not
seen: its caller says so with `invalidate`.

Without Redis (embedded mode: one process) invalidation is local. With Redis, a process
caches only while its subscription is up: losing it drops everything, and a load that started
before an invalidation arrived is never stored after it (a generation counter), so a missed
message never leaves a stale entry beyond the TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from sqlalchemy import event, inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction, UOWTransaction

from botplatform.kit.logging import get_logger

log = get_logger("botplatform.cache")
T = TypeVar("T")

TTL_SECONDS = 30.0
#: How long a unit of work waits after its commit for its invalidations to reach Redis (then
#: it answers anyway: the TTL bounds what the others keep).
PUBLISH_WAIT_SECONDS = 1.0
REDIS_CHANNEL = "botplatform:cache-invalidate"
#: Key of the process's cache in every database session's `info` (set by Runtime.create).
SHARED_CACHE = "shared_cache"
#: Set in the `info` of a session on the read replica: what it reads may be a moment old,
#: and a load made there after an invalidation would keep the old value (never stored).
READS_REPLICA = "reads_replica"
_PENDING = "shared_cache_pending"

#: (kind, workspace id, key); None in an invalidation means "every".
Scope = tuple[str | None, uuid.UUID | None, str | None]
EntryKey = tuple[str, uuid.UUID | None, str | None]
Hook = Callable[[uuid.UUID | None, str | None], None]


def _covers(scope: Scope, entry: EntryKey) -> bool:
    kind, workspace_id, key = scope
    return (
        (kind is None or kind == entry[0])
        and (workspace_id is None or workspace_id == entry[1])
        and (key is None or key == entry[2])
    )


class SharedCache:
    def __init__(self, redis_url: str = "", ttl: float = TTL_SECONDS) -> None:
        self.redis_url = redis_url
        self.ttl = ttl
        self._entries: dict[EntryKey, tuple[float, Any]] = {}
        self._generation = 0  # bumped by every drop: a load older than it is not stored
        self._listening = not redis_url  # embedded: nothing to listen to, always current
        self._listener: asyncio.Task[None] | None = None
        self._origin = uuid.uuid4().hex  # our own messages come back: skipped
        self._hooks: dict[str, list[Hook]] = {}
        self._swept_at = time.monotonic()
        # redis.asyncio clients belong to the loop that made them: one publisher per loop.
        self._publishers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
            weakref.WeakKeyDictionary()
        )
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def listening(self) -> bool:
        """True while entries may be kept (embedded, or subscribed to invalidations)."""
        return self._listening

    # --- reading ------------------------------------------------------------------------

    async def get(
        self,
        db: AsyncSession,
        kind: str,
        workspace_id: uuid.UUID | None,
        key: str | None,
        load: Callable[[], Awaitable[T]],
    ) -> T:
        entry_key: EntryKey = (kind, workspace_id, key)
        found = self._entries.get(entry_key)
        if found is not None and found[0] > time.monotonic() and not _changed_here(db, entry_key):
            value: T = found[1]
            return value
        generation = self._generation
        loaded = await load()
        # Not stored when something was invalidated meanwhile (the load may predate it), nor
        # what this transaction has changed and not yet committed.
        if (
            self._listening
            and generation == self._generation
            and not db.info.get(READS_REPLICA)
            and not _changed_here(db, entry_key)
        ):
            self._store(entry_key, loaded)
        return loaded

    def holds(self, kind: str, workspace_id: uuid.UUID | None, key: str | None) -> bool:
        """Is a fresh entry kept for (kind, workspace, key)? (For tests and diagnostics.)"""
        found = self._entries.get((kind, workspace_id, key))
        return found is not None and found[0] > time.monotonic()

    def _store(self, entry_key: EntryKey, value: Any) -> None:
        now = time.monotonic()
        if now - self._swept_at > self.ttl:  # expired entries of keys nobody asks for again
            self._swept_at = now
            for stale in [k for k, (expires, _) in self._entries.items() if expires <= now]:
                del self._entries[stale]
        self._entries[entry_key] = (now + self.ttl, value)

    # --- dropping -----------------------------------------------------------------------

    def on_drop(self, kind: str, hook: Hook) -> None:
        """Calls `hook(workspace_id, key)` whenever entries of `kind` are dropped (another
        cache keyed the same way, e.g. the webhook intake's, follows this one)."""
        self._hooks.setdefault(kind, []).append(hook)

    def drop(self, scopes: Iterable[Scope]) -> None:
        """Drops the matching entries in this process only."""
        self._generation += 1
        for scope in scopes:
            if None not in scope:
                self._entries.pop(scope, None)  # type: ignore[arg-type]  # all three given
            else:
                for entry_key in [k for k in self._entries if _covers(scope, k)]:
                    del self._entries[entry_key]
            self._run_hooks(scope)

    def _run_hooks(self, scope: Scope) -> None:
        kinds = self._hooks if scope[0] is None else {scope[0]: self._hooks.get(scope[0], [])}
        for hooks in kinds.values():
            for hook in hooks:
                try:
                    hook(scope[1], scope[2])
                except Exception:  # a follower's failure never stops the invalidation
                    log.exception("cache_hook_failed")

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()

    def invalidate(self, scopes: Iterable[Scope]) -> None:
        """Drops the entries here and tells every other process (after a commit)."""
        scopes = list(scopes)
        self.drop(scopes)
        if not self.redis_url or not scopes:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (never on the app's paths): the TTL bounds the rest
            log.warning("cache_invalidation_not_published")
            return
        task = loop.create_task(self._publish(scopes))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def published(self) -> None:
        """Waits (at most `PUBLISH_WAIT_SECONDS`) until this loop's invalidations have reached
        Redis, which has then handed them to every subscribed process: a write answered after
        this is seen by the next request, whichever process takes it."""
        loop = asyncio.get_running_loop()
        mine = [task for task in self._tasks if task.get_loop() is loop]
        if mine:
            await asyncio.wait(mine, timeout=PUBLISH_WAIT_SECONDS)

    async def _publish(self, scopes: list[Scope]) -> None:
        message = json.dumps(
            {
                "origin": self._origin,
                "scopes": [[kind, str(ws) if ws else None, key] for kind, ws, key in scopes],
            }
        )
        try:
            await self._publisher().publish(REDIS_CHANNEL, message)
        except Exception:  # other processes then see the change within the TTL
            log.warning("cache_invalidation_publish_failed")

    def _publisher(self) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        client = self._publishers.get(loop)
        if client is None:
            client = aioredis.Redis.from_url(self.redis_url, socket_connect_timeout=2)
            self._publishers[loop] = client
        return client

    def _receive(self, data: bytes | str) -> None:
        try:
            message = json.loads(data)
            if message["origin"] == self._origin:
                return
            scopes: list[Scope] = [
                (kind, uuid.UUID(ws) if ws else None, key) for kind, ws, key in message["scopes"]
            ]
        except (ValueError, TypeError, KeyError):
            log.warning("cache_invalidation_unreadable")
            self.clear()  # whatever it meant, nothing stale survives it
            return
        self.drop(scopes)

    # --- the subscription ---------------------------------------------------------------

    async def start(self, wait_seconds: float = 3.0) -> None:
        """Subscribes to invalidations (with Redis); waits up to `wait_seconds` for the
        subscription, or until a first attempt fails, then goes on without it (nothing is
        cached until it is up)."""
        if not self.redis_url or self._listener is not None:
            return
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._listener = asyncio.create_task(self._listen(ready))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(ready), timeout=wait_seconds)

    async def _listen(self, ready: asyncio.Future[None]) -> None:
        delay = 0.5
        while True:
            client = aioredis.Redis.from_url(self.redis_url, socket_connect_timeout=2)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(REDIS_CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") == "subscribe":
                        # Anything may have changed while we were not listening.
                        self.clear()
                        self._listening, delay = True, 0.5
                        if not ready.done():
                            ready.set_result(None)
                    elif message.get("type") == "message":
                        self._receive(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("cache_subscription_lost")
                if not ready.done():
                    # Redis is not there: the process starts anyway (its readiness check
                    # says so), caching nothing until the subscription is up.
                    ready.set_result(None)
            finally:
                self._listening = False
                self.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                    await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None
        for task in list(self._tasks):  # a command's last change still reaches the others
            with contextlib.suppress(Exception):
                await task
        with contextlib.suppress(RuntimeError):
            client = self._publishers.pop(asyncio.get_running_loop(), None)
            if client is not None:
                await client.aclose()
        self._listening = not self.redis_url
        self.clear()


# --- for the domains ----------------------------------------------------------------------


async def cached(
    db: AsyncSession,
    kind: str,
    workspace_id: uuid.UUID | None,
    key: str | None,
    load: Callable[[], Awaitable[T]],
) -> T:
    """The value of (kind, workspace, key) from the process's cache, else `load()` through
    `db` (and kept). A session made outside a Runtime has no cache: it always loads."""
    cache = db.info.get(SHARED_CACHE)
    if not isinstance(cache, SharedCache):
        return await load()
    return await cache.get(db, kind, workspace_id, key, load)


def invalidate(
    db: AsyncSession,
    kind: str | None,
    workspace_id: uuid.UUID | None = None,
    key: str | None = None,
) -> None:
    """For a write the ORM does not see (a Core UPDATE or DELETE): drop what it changes once
    `db` commits. None means "every" (a kind of every workspace, or every key of one)."""
    db.info.setdefault(_PENDING, set()).add((kind, workspace_id, key))


@dataclass(frozen=True)
class _Watch:
    kind: str | None
    scope: Callable[[Any], tuple[uuid.UUID | None, str | None]]
    columns: frozenset[str] | None


_WATCHED: dict[type[Any], list[_Watch]] = {}


def watch(
    model: type[Any],
    kind: str | None,
    scope: Callable[[Any], tuple[uuid.UUID | None, str | None]],
    columns: Iterable[str] | None = None,
) -> None:
    """Rows of `model` feed `kind`: a flush that adds or deletes one, or changes one of
    `columns` (None: any column), drops `scope(row)` = (workspace id, key) when it commits."""
    _WATCHED.setdefault(model, []).append(
        _Watch(kind, scope, frozenset(columns) if columns is not None else None)
    )


def _touches(session: Session, row: Any, watch_: _Watch, dirty: bool) -> bool:
    if not dirty:
        return True
    if watch_.columns is None:
        return session.is_modified(row, include_collections=False)
    attrs = inspect(row).attrs
    return any(attrs[name].history.has_changes() for name in watch_.columns)


def _scopes(session: Session, rows: Iterable[Any], dirty: bool) -> set[Scope]:
    found: set[Scope] = set()
    for row in rows:
        for watch_ in _WATCHED.get(type(row), ()):
            if _touches(session, row, watch_, dirty):
                found.add((watch_.kind, *watch_.scope(row)))
    return found


def _changed_here(db: AsyncSession, entry_key: EntryKey) -> bool:
    """Has this transaction changed what the entry is built from (flushed or not)?"""
    pending: set[Scope] | None = db.info.get(_PENDING)
    if pending and any(_covers(scope, entry_key) for scope in pending):
        return True
    session = db.sync_session
    if not (session.new or session.deleted or session.dirty):
        return False
    unflushed = _scopes(session, [*session.new, *session.deleted], dirty=False)
    unflushed |= _scopes(session, session.dirty, dirty=True)
    return any(_covers(scope, entry_key) for scope in unflushed)


@event.listens_for(Session, "after_flush")
def _note_writes(session: Session, _: UOWTransaction) -> None:
    if not _WATCHED or SHARED_CACHE not in session.info:
        return
    found = _scopes(session, [*session.new, *session.deleted], dirty=False)
    found |= _scopes(session, session.dirty, dirty=True)
    if found:
        session.info.setdefault(_PENDING, set()).update(found)


@event.listens_for(Session, "after_commit")
def _invalidate_committed(session: Session) -> None:
    pending: set[Scope] | None = session.info.pop(_PENDING, None)
    cache = session.info.get(SHARED_CACHE)
    if pending and isinstance(cache, SharedCache):
        cache.invalidate(pending)


@event.listens_for(Session, "after_transaction_end")
def _forget_rolled_back(session: Session, transaction: SessionTransaction) -> None:
    # A committed transaction's writes were taken by `after_commit`, which runs first; what
    # is left when the outermost transaction ends was rolled back and changed nothing.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
