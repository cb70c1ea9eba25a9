"""The webhook path's hot half: which channel a webhook names (cached briefly), and the
durable write of its raw body, grouped with the webhooks arriving at the same moment.

Group commit: every webhook still waits for its own row to be committed and its job queued
before it is acknowledged, but the webhooks that arrive while one transaction is committing
share the next one: one multi-row INSERT, one COMMIT (one fsync on PostgreSQL) and one trip to
the queue for the lot. A group that would start small waits a moment for the webhooks that
follow (`webhook_group_linger_ms`, ended early once it is large enough: `kit/linger.py`);
under load the groups are large already and nothing waits.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import asyncpg  # type: ignore[import-untyped]
import httpx
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from botplatform.channel import repository
from botplatform.channels.base import ChannelAdapter, dedupe_key_of
from botplatform.channels.registry import PROVIDERS, adapter_for
from botplatform.config import Settings
from botplatform.db import Database
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import Forbidden
from botplatform.kit.linger import GroupLinger
from botplatform.models import Channel, InboundEvent
from botplatform.worker.jobs import PendingJob, enqueue

#: Processes one stored event (what the sweeper sends for an event left pending).
PROCESS_JOB = "process_inbound_event"
#: The job of a group's new events of one workspace: they are processed as one batch.
PROCESS_BATCH_JOB = "process_inbound_events"
#: The same for webhooks with delivery statuses only (a broadcast's thousands), on their own
#: queue and a bounded share of the worker's threads (channels/tasks.py).
STATUS_BATCH_JOB = "process_status_events"
#: How long a process trusts what it read about a channel. Changes made through this process
#: apply at once (`forget`); another process sees them within this many seconds.
CHANNEL_CACHE_SECONDS = 5.0
#: The most webhooks one transaction takes; the rest wait for the next.
MAX_GROUP = 500
#: A group that starts with this many webhooks already is written at once, without lingering.
LINGER_UNTIL_WEBHOOKS = 16
#: Groups committing at once on PostgreSQL: while one waits for its COMMIT to reach the disk
#: and its jobs to reach Redis, the next group is already being written. SQLite has one writer.
CONCURRENT_GROUPS_POSTGRES = 4


@dataclass(frozen=True)
class WebhookChannel:
    """What the webhook route needs of a channel, read once and shared by its webhooks."""

    channel: Channel
    adapter: ChannelAdapter
    expires_at: float

    @property
    def id(self) -> uuid.UUID:
        return self.channel.id

    @property
    def workspace_id(self) -> uuid.UUID:
        return self.channel.workspace_id


def _future() -> asyncio.Future[bool]:
    return asyncio.get_running_loop().create_future()


@dataclass(eq=False)
class _Webhook:
    workspace_id: uuid.UUID
    channel_id: uuid.UUID
    provider: str
    body: bytes
    dedupe_key: str
    statuses_only: bool = False
    stored: asyncio.Future[bool] = field(default_factory=_future)


class WebhookIntake:
    def __init__(self, db: Database, settings: Settings, http: httpx.AsyncClient) -> None:
        self._db = db
        self._settings = settings
        self._http = http
        self._channels: dict[uuid.UUID, WebhookChannel] = {}
        self._reading: dict[uuid.UUID, asyncio.Future[WebhookChannel]] = {}
        self._waiting: list[_Webhook] = []
        self._writers: set[asyncio.Task[None]] = set()
        self._writing = 0  # writers running: at most `_max_writers`
        #: Writers started for what waits but not yet run: what waits is theirs to linger for.
        self._starting = 0
        self._filling = GroupLinger()  # a writer waiting for its group to fill (`_linger`)
        self._max_writers = CONCURRENT_GROUPS_POSTGRES if db.dialect == "postgresql" else 1

    # -- the channel ------------------------------------------------------------------------

    async def channel(self, provider: str, channel_id: uuid.UUID) -> WebhookChannel:
        """The active channel of `provider` with this id; 404 or 403 otherwise."""
        if provider not in PROVIDERS:
            raise repository.channel_not_found()
        cached = self._fresh(channel_id) or await self._load(channel_id)
        if cached.channel.provider != provider:
            raise repository.channel_not_found()
        if cached.channel.status != "active":
            raise Forbidden("This channel is disabled.", code="channel_disabled")
        return cached

    async def known(self, provider: str, channel_id: uuid.UUID) -> WebhookChannel | None:
        """The channel when this process knows it, it is active and of `provider`, read again
        once stale (one read for all the webhooks waiting on it); None sends the caller the
        long way, through `channel`, which loads it or refuses. A channel never seen is not
        read here: an unknown id costs the long way's one read, not two."""
        cached = self._channels.get(channel_id)
        if cached is None:
            return None
        if cached.expires_at < time.monotonic():
            try:
                cached = await self._load(channel_id)
            except Exception:  # gone, or the database is down: the long way answers it
                return None
        if cached.channel.provider != provider or cached.channel.status != "active":
            return None
        return cached

    def _fresh(self, channel_id: uuid.UUID) -> WebhookChannel | None:
        cached = self._channels.get(channel_id)
        return cached if cached is not None and cached.expires_at >= time.monotonic() else None

    async def _load(self, channel_id: uuid.UUID) -> WebhookChannel:
        """Reads the channel, once for every caller that asks while a read is under way (a
        busy channel's entry expires under dozens of waiting webhooks at once)."""
        reading = self._reading.get(channel_id)
        if reading is None:
            reading = asyncio.ensure_future(self._read(channel_id))
            self._reading[channel_id] = reading
            reading.add_done_callback(functools.partial(self._read_done, channel_id))
        return await asyncio.shield(reading)

    def _read_done(self, channel_id: uuid.UUID, reading: asyncio.Future[WebhookChannel]) -> None:
        if self._reading.get(channel_id) is reading:
            del self._reading[channel_id]
        if not reading.cancelled():
            reading.exception()  # seen here, so a read all of whose waiters left is not logged

    async def _read(self, channel_id: uuid.UUID) -> WebhookChannel:
        async with self._db.unit_of_work(write=False) as db:
            channel = await repository.get_for_webhook(db, channel_id)
        current = self._reading.get(channel_id) is asyncio.current_task()  # not forgotten since
        if channel is None:
            if current:
                self._channels.pop(channel_id, None)
            raise repository.channel_not_found()
        loaded = WebhookChannel(
            channel=channel,
            adapter=adapter_for(channel, self._settings, self._http),
            expires_at=time.monotonic() + CHANNEL_CACHE_SECONDS,
        )
        if current:
            self._channels[channel_id] = loaded
        return loaded

    def forget(self, channel_id: uuid.UUID) -> None:
        """Called when this process changes or deletes a channel. A read under way may have
        seen the channel as it was: it answers its waiters but is not kept."""
        self._channels.pop(channel_id, None)
        self._reading.pop(channel_id, None)

    # -- the durable write ------------------------------------------------------------------

    async def store(self, channel: WebhookChannel, body: bytes) -> bool:
        """Returns once `body` is committed and its processing job queued: True when it is
        new, False when this channel already received exactly this body (a redelivery)."""
        webhook = _Webhook(
            workspace_id=channel.workspace_id,
            channel_id=channel.id,
            provider=channel.channel.provider,
            body=body,
            dedupe_key=dedupe_key_of(channel.adapter, body),
            statuses_only=channel.adapter.statuses_only(body),
        )
        self._waiting.append(webhook)
        if len(self._waiting) >= LINGER_UNTIL_WEBHOOKS:
            self._filling.end()
        if self._writing < self._max_writers and not self._filling.active:
            self._writing += 1
            self._starting += 1
            writer = asyncio.create_task(self._write_while_waiting())
            self._writers.add(writer)  # a reference, so the task is not collected midway
            writer.add_done_callback(self._writers.discard)
        return await webhook.stored

    async def _write_while_waiting(self) -> None:
        self._starting -= 1
        try:
            if self._filling.active:  # started in the step the lingering one did: it takes all
                return
            await self._linger()
            # Stops while another writer lingers, or is about to (started, not yet run): what
            # waits is that writer's group, filling.
            while self._waiting and not self._filling.active and not self._starting:
                group, self._waiting = self._waiting[:MAX_GROUP], self._waiting[MAX_GROUP:]
                await self._write_group(group)
        finally:
            # Counted down in the same step that saw nothing waiting: a webhook queued after
            # that step finds a free slot and starts a writer. (A done-callback would run a
            # step later, and a webhook queued in between would wait for a writer that is gone.)
            self._writing -= 1

    async def _linger(self) -> None:
        """A group that would start small waits `webhook_group_linger_ms` for more webhooks
        (no other writer starts or takes them meanwhile), or until LINGER_UNTIL_WEBHOOKS
        wait: at a low steady rate, a round trip to the database, a job and a worker batch
        per few webhooks instead of per webhook, for a few milliseconds more before the 200
        (docs/decisions.md, "Lingering groups")."""
        linger_ms = self._settings.webhook_group_linger_ms
        if not linger_ms or not self._waiting or len(self._waiting) >= LINGER_UNTIL_WEBHOOKS:
            return
        await self._filling.wait(linger_ms / 1000)

    async def _write_group(self, group: list[_Webhook]) -> None:
        try:
            created = await self._write(group)
        except Exception as exc:  # each waiting request answers with the failure
            if _a_row_refused(exc):
                if len(group) > 1:
                    # One webhook's row, not the database: each is written alone, so that
                    # only that one fails (a group holds many tenants' webhooks).
                    for webhook in group:
                        await self._write_group([webhook])
                    return
                # Its channel was deleted while it waited (the row's foreign key).
                exc = repository.channel_not_found()
            for webhook in group:
                if not webhook.stored.done():
                    webhook.stored.set_exception(exc)
            return
        for webhook in group:
            if not webhook.stored.done():
                webhook.stored.set_result(id(webhook) in created)

    async def _write(self, group: list[_Webhook]) -> set[int]:
        """One transaction for the group, then its jobs (one per workspace); the `id()`s of
        the webhooks that made a new row."""
        by_workspace: dict[uuid.UUID, list[_Webhook]] = defaultdict(list)
        for webhook in group:
            by_workspace[webhook.workspace_id].append(webhook)
        if self._db.dialect == "postgresql":
            return await _write_postgres(self._db, by_workspace)
        return await _write_sqlite(self._db, by_workspace)


Inserted = list[tuple[str, str, str]]  # (event id, channel id, dedupe key), as text


def _a_row_refused(exc: BaseException) -> bool:
    """Whether a group's INSERT was refused for one of its rows (a constraint: a channel
    deleted while its webhook waited in the group), rather than for want of a database."""
    cause = getattr(exc, "orig", None) or exc.__cause__
    return isinstance(exc, IntegrityError) or isinstance(
        cause, asyncpg.IntegrityConstraintViolationError
    )


def _first_of_each(webhooks: list[_Webhook]) -> dict[tuple[str, str], _Webhook]:
    """The first webhook of each (channel, body): equal bodies in one group make one row."""
    first: dict[tuple[str, str], _Webhook] = {}
    for webhook in webhooks:
        first.setdefault((str(webhook.channel_id), webhook.dedupe_key), webhook)
    return first


def _created(
    workspace_id: uuid.UUID, first: dict[tuple[str, str], _Webhook], inserted: Inserted
) -> tuple[set[int], list[PendingJob]]:
    """The `id()`s of the webhooks that made a row, and the jobs that process the rows: one
    for the messages, one for the webhooks with statuses only."""
    created = {id(first[(channel_id, dedupe_key)]) for _, channel_id, dedupe_key in inserted}
    lanes: dict[str, list[str]] = {PROCESS_BATCH_JOB: [], STATUS_BATCH_JOB: []}
    # The jobs list the rows in the order their webhooks arrived (`first` keeps it; RETURNING
    # promises no order): the rows share one timestamp, so the processing job has only this
    # order to apply a customer's messages in (channels/batch.pending_events).
    arrival = {key: index for index, key in enumerate(first)}
    for event_id, channel_id, dedupe_key in sorted(inserted, key=lambda row: arrival[row[1:]]):
        statuses = first[(channel_id, dedupe_key)].statuses_only
        lanes[STATUS_BATCH_JOB if statuses else PROCESS_BATCH_JOB].append(event_id)
    jobs = [PendingJob(job, (str(workspace_id), ids)) for job, ids in lanes.items() if ids]
    return created, jobs


# -- PostgreSQL: asyncpg directly ------------------------------------------------------------
#
# A group of one workspace (the usual case) is written in ONE round trip: a single statement,
# its own transaction, committed (and flushed to disk) before PostgreSQL answers it. The
# statement names its workspace itself, for row-level security (see `_INSERT_POSTGRES`); a
# group of several workspaces runs the same statement once per workspace between a BEGIN and
# a COMMIT. Through an ORM session the same write took four round trips (BEGIN, the workspace
# setting, INSERT, COMMIT), and SQLAlchemy's work per statement cost more CPU than
# PostgreSQL's; there is nothing here for the ORM to track (see docs/decisions.md).

# The workspace setting that row-level security reads (what `kit.scoping.enter_workspace`
# sets, transaction-local) is set by the statement itself, in the one-row subquery `tenant`
# whose value every inserted row takes as its workspace_id: each row is produced from it, so
# the setting is in place before the policy checks the row (and the rows RETURNING shows).
# One shape whatever the group's size (columns passed as arrays), so it stays prepared.
_INSERT_POSTGRES = """
    INSERT INTO inbound_events
        (id, workspace_id, channel_id, provider, dedupe_key, body, status, created_at, updated_at)
    SELECT gen_random_uuid(), tenant.workspace_id, new.channel_id, new.provider,
           new.dedupe_key, new.body, 'pending', $2, $2
    FROM (SELECT set_config('app.workspace_id', $1, true)::uuid AS workspace_id) AS tenant,
         unnest($3::uuid[], $4::varchar[], $5::varchar[], $6::text[])
            AS new (channel_id, provider, dedupe_key, body)
    ON CONFLICT (channel_id, dedupe_key) DO NOTHING
    RETURNING id::text, channel_id::text, dedupe_key
"""


async def _write_postgres(db: Database, by_workspace: dict[uuid.UUID, list[_Webhook]]) -> set[int]:
    created: set[int] = set()
    jobs: list[PendingJob] = []
    several = len(by_workspace) > 1
    pooled = await db.engine.raw_connection()
    try:
        connection: asyncpg.Connection = pooled.driver_connection
        if several:
            await connection.execute("BEGIN")
        for workspace_id, webhooks in by_workspace.items():
            first = _first_of_each(webhooks)
            inserted = await _insert_postgres(connection, workspace_id, list(first.values()))
            new, made = _created(workspace_id, first, inserted)
            created |= new
            jobs += made
        if several:
            await connection.execute("COMMIT")
    except BaseException as exc:
        await _abandon(pooled, exc)
        if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError | OSError):
            # What the rest of the platform raises for a database it cannot use (503).
            raise OperationalError("INSERT INTO inbound_events", None, exc) from exc
        raise
    await greenlet_spawn(pooled.close)
    if jobs and db.after_commit is not None:
        await db.after_commit(jobs)
    return created


async def _insert_postgres(
    connection: asyncpg.Connection, workspace_id: uuid.UUID, webhooks: list[_Webhook]
) -> Inserted:
    rows = await connection.fetch(
        _INSERT_POSTGRES,
        str(workspace_id),
        utcnow(),
        [webhook.channel_id for webhook in webhooks],
        [webhook.provider for webhook in webhooks],
        [webhook.dedupe_key for webhook in webhooks],
        [_text(webhook.body) for webhook in webhooks],
    )
    return [(row[0], row[1], row[2]) for row in rows]


async def _abandon(pooled: PoolProxiedConnection, error: BaseException) -> None:
    """Gives the connection back after a failed write: rolled back when PostgreSQL refused a
    statement, else (lost, cancelled midway, or any other failure) dropped from the pool."""
    connection: asyncpg.Connection = pooled.driver_connection
    if isinstance(error, asyncpg.PostgresError) and not connection.is_closed():
        try:
            if connection.is_in_transaction():
                await connection.execute("ROLLBACK")
        except Exception:  # noqa: S110 - dropped below instead
            pass
        else:
            await greenlet_spawn(pooled.close)
            return
    await greenlet_spawn(pooled.invalidate)  # also returns it: the pool opens a new one


# -- SQLite: one writer, through SQLAlchemy ---------------------------------------------------


async def _write_sqlite(db: Database, by_workspace: dict[uuid.UUID, list[_Webhook]]) -> set[int]:
    created: set[int] = set()
    async with db.unit_of_work() as session:
        for workspace_id, webhooks in by_workspace.items():
            first = _first_of_each(webhooks)
            inserted = await _insert_sqlite(session, workspace_id, list(first.values()))
            new, made = _created(workspace_id, first, inserted)
            created |= new
            for job in made:  # sent once the unit of work commits
                enqueue(session, job.name, *job.args)
    return created


async def _insert_sqlite(
    db: AsyncSession, workspace_id: uuid.UUID, webhooks: list[_Webhook]
) -> Inserted:
    rows = [
        {
            "id": uuid.uuid4(),
            "workspace_id": workspace_id,
            "channel_id": webhook.channel_id,
            "provider": webhook.provider,
            "dedupe_key": webhook.dedupe_key,
            "body": _text(webhook.body),
            "status": "pending",
        }
        for webhook in webhooks
    ]
    statement = (
        sqlite.insert(InboundEvent)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["channel_id", "dedupe_key"])
        .returning(InboundEvent.id, InboundEvent.channel_id, InboundEvent.dedupe_key)
    )
    result = await db.execute(statement)
    return [(str(row[0]), str(row[1]), row[2]) for row in result]


def _text(body: bytes) -> str:
    """The body as the text column keeps it. Bytes no text column holds (invalid UTF-8, and
    NUL, which PostgreSQL refuses) become U+FFFD, so one such webhook never fails the insert
    of its whole group; the processing job sees the text differs from what was received
    (its hash is not the dedupe key) and fails the event with the reason."""
    return body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
