"""Engines and sessions. The edge (a request or a job) owns the unit of work: it commits at
the end, or rolls back on error; services only flush."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy import Connection, event, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import await_only

from botplatform.config import Settings
from botplatform.kit.replica import Replica, caller_key
from botplatform.kit.scoping import enter_system
from botplatform.kit.shared_cache import READS_REPLICA, SHARED_CACHE, SharedCache
from botplatform.worker.jobs import PendingJob, take_pending


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry) -> None:
    # We issue BEGIN ourselves (below), instead of the driver's implicit one.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the writer; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class _WriteGate:
    """SQLite admits one writer at a time, and a writer that finds the lock taken sleeps and
    retries (the busy handler, in steps growing to 100 ms). Within this process the writers
    instead queue here, on an asyncio lock taken at BEGIN IMMEDIATE and freed when the
    connection goes back to the pool (after its COMMIT or ROLLBACK has completed, so the next
    writer never meets the lock), and the next one starts at once. Other processes (commands)
    still meet SQLite's own lock and its busy timeout."""

    WAIT_SECONDS = 10.0  # as long as the busy timeout: then "database is locked", as before

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    def begin(self, connection: Connection) -> None:
        # Called by SQLAlchemy's greenlet on behalf of a coroutine, so it may await.
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode == "IMMEDIATE" and connection.info.get(_HOLDS_GATE) is not self:
            try:
                await_only(asyncio.wait_for(self._lock.acquire(), self.WAIT_SECONDS))
            except TimeoutError:
                raise sqlite3.OperationalError("database is locked") from None
            connection.info[_HOLDS_GATE] = self
        try:
            connection.exec_driver_sql(f"BEGIN {mode}")
        except BaseException:
            self._release(connection.info)
            raise

    def checkin(self, _: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        self._release(record.info)

    def _release(self, info: dict[Any, Any]) -> None:
        if info.pop(_HOLDS_GATE, None) is self:
            self._lock.release()


_HOLDS_GATE = "holds_write_gate"
WRITE = {"sqlite_begin": "IMMEDIATE"}


def create_engine(
    settings: Settings, dsn: str | None = None, *, pre_ping: bool | None = None
) -> AsyncEngine:
    dsn = dsn or settings.database_dsn
    if dsn.startswith("sqlite"):
        database_path = dsn.split(":///", 1)[1]
        if database_path and database_path != ":memory:":
            Path(database_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(dsn, connect_args={"timeout": 10})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        # We issue BEGIN ourselves: a transaction that will write takes the write lock up front
        # (BEGIN IMMEDIATE): in WAL mode a deferred transaction that read first and writes
        # later fails at once with SQLITE_BUSY when another writer committed in between,
        # instead of waiting its turn.
        gate = _WriteGate()
        event.listen(engine.sync_engine, "begin", gate.begin)
        event.listen(engine.sync_engine.pool, "checkin", gate.checkin)
        return engine
    return create_async_engine(
        dsn,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        # Off by default: a checkout then costs no extra round trip. A connection broken by
        # a server restart fails its first statement, which invalidates the whole pool; the
        # request answers 503 and a job retries, so nothing accepted is lost either way.
        pool_pre_ping=settings.database_pre_ping if pre_ping is None else pre_ping,
        connect_args=pooler_connect_args(settings.database_pool_mode),
    )


def pooler_connect_args(pool_mode: str) -> dict[str, Any]:
    """What asyncpg needs behind a pooler in transaction mode (PgBouncer before 1.21 keeps no
    prepared statement for its clients; Debian 12 ships 1.18). Each transaction may run on
    another server connection, so nothing may be prepared in one transaction and used in a
    later one: no statement cache (asyncpg, and SQLAlchemy's on top of it), and the statements
    SQLAlchemy still prepares by name get a name no other client of the same server connection
    can have chosen (asyncpg numbers them per client connection: two clients would collide).
    Statements are prepared and run inside the transaction the code always opens, which keeps
    one server connection from BEGIN to COMMIT."""
    if pool_mode != "transaction":
        return {}
    return {
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
        "prepared_statement_name_func": _unique_statement_name,
    }


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4().hex}__"


AfterCommit = Callable[[list[PendingJob]], Awaitable[None]]


class UnitOfWorkSession(Session):
    """A session that keeps what it loaded or stored until it closes.

    SQLAlchemy's identity map holds clean objects weakly: once the code that loaded a row
    lets go of it, a later `get` of the same row in the same unit of work reads it again.
    Processing one message loaded the same contact and conversation three times that way.
    Our sessions live for one request or one job, so holding their rows costs nothing, and
    every later `get` of them is answered from memory."""


_HELD = "held_rows"


@event.listens_for(UnitOfWorkSession, "loaded_as_persistent")
@event.listens_for(UnitOfWorkSession, "pending_to_persistent")
def _hold(session: Session, instance: object) -> None:
    session.info.setdefault(_HELD, []).append(instance)


class Database:
    def __init__(self, settings: Settings) -> None:
        self.engine = create_engine(settings)
        # Same pool; on SQLite its transactions begin IMMEDIATE — lazily, at the first
        # statement, so a job can commit a short transaction of its own before it starts.
        self.write_engine = self.engine.execution_options(**WRITE)
        self.sessionmaker = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=UnitOfWorkSession
        )
        #: Receives the jobs a unit of work queued, once it has committed (the job queue).
        self.after_commit: AfterCommit | None = None
        #: The streaming replica (DATABASE_REPLICA_URL), for the reads that opt in. Its
        #: connections are checked when taken from the pool, so a replica that went away is
        #: noticed before a read starts on it (and the primary answers that read).
        self.replica: Replica | None = None
        if settings.replica_dsn:
            self.replica = Replica(
                create_engine(settings, settings.replica_dsn, pre_ping=True),
                self.engine,
                settings.database_replica_max_lag_seconds,
            )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            return True
        except Exception:  # any driver error means "not reachable" for health purposes
            return False

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.replica is not None:
            await self.replica.engine.dispose()

    async def _replica_session(self) -> AsyncSession | None:
        """A session on the replica when it may answer now, with its connection taken (and
        checked); None sends the read to the primary."""
        if self.replica is None or not await self.replica.usable():
            return None
        session = self.sessionmaker(bind=self.replica.engine)
        session.info[READS_REPLICA] = True
        try:
            await session.connection()
        except (DBAPIError, OSError):
            self.replica.mark_down()
            await session.close()
            return None
        return session

    @asynccontextmanager
    async def unit_of_work(
        self, *, write: bool = True, system: bool = False, replica: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """A session committed when the block ends, rolled back if it raises. Jobs queued
        with `worker.jobs.enqueue` leave after the commit, and are dropped on rollback.
        `system` work (commands, cross-tenant maintenance) is exempt from row-level security.
        `replica`: a read that may be answered by the replica (kit/replica.py)."""
        session = await self._replica_session() if replica and not write else None
        if session is None:
            session = self.sessionmaker(bind=self.write_engine if write else self.engine)
        async with session:
            try:
                if system:
                    await enter_system(session)
                yield session
                await session.commit()
            except BaseException:
                take_pending(session)
                session.info.pop(AFTER_COMMIT, None)
                await session.rollback()
                raise
            cache = session.info.get(SHARED_CACHE)
            if isinstance(cache, SharedCache):
                await cache.published()
            pending = take_pending(session)
            if pending and self.after_commit is not None:
                await self.after_commit(pending)
            for callback in session.info.pop(AFTER_COMMIT, []):
                callback()


AFTER_COMMIT = "after_commit"


def after_commit(db: AsyncSession, callback: Callable[[], None]) -> None:
    """Runs `callback` once `db` has committed (never if it rolls back)."""
    db.info.setdefault(AFTER_COMMIT, []).append(callback)


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed before the response is sent (the dependency is
    function-scoped), rolled back when the endpoint raises. On the replica for an endpoint
    that `reads_replica`, unless its caller wrote a moment ago."""
    runtime = request.app.state.runtime
    database: Database = runtime.db
    write = request.method not in READ_METHODS
    sticky = None
    if database.replica is not None:
        sticky = caller_key(request.headers.get("authorization"), request.headers.get("cookie"))
    replica = not write and _reads_replica(request) and not await _wrote_lately(runtime, sticky)
    async with database.unit_of_work(write=write, replica=replica) as session:
        yield session
    if write and sticky is not None and database.replica is not None:
        await runtime.kv.put(sticky, "1", ttl_seconds=database.replica.sticky_seconds)


_READS_REPLICA = "__reads_replica__"
EndpointT = TypeVar("EndpointT", bound=Callable[..., Any])


def reads_replica(endpoint: EndpointT) -> EndpointT:
    """Marks a GET endpoint whose reads may come from the replica (a list, analytics, an
    export): what it shows may be up to DATABASE_REPLICA_MAX_LAG_SECONDS old, except to a
    caller who has just written."""
    setattr(endpoint, _READS_REPLICA, True)
    return endpoint


def _reads_replica(request: Request) -> bool:
    route = request.scope.get("route")
    return bool(getattr(getattr(route, "endpoint", None), _READS_REPLICA, False))


async def _wrote_lately(runtime: Any, sticky: str | None) -> bool:
    if sticky is None:
        return False
    try:
        return await runtime.kv.get(sticky) is not None
    except Exception:  # the marker is unknown: the primary is always right
        return True


DbSession = Annotated[AsyncSession, Depends(get_db_session, scope="function")]
