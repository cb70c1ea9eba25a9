"""The webhook path's hot half: which channel a webhook names (cached briefly), and the
durable write of its raw body, grouped with the webhooks arriving at the same moment.

Group commit: every webhook still waits for its own row to be committed and its job queued
before it is acknowledged, but the webhooks that arrive while one transaction is committing
share the next one: one multi-row INSERT, one COMMIT (one fsync on PostgreSQL) and one trip to
the queue for the lot. A lone webhook is written at once; under load the groups grow by
themselves, with no timer and no added wait.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import Result, bindparam, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.channel import repository
from botplatform.channels.base import ChannelAdapter
from botplatform.channels.registry import PROVIDERS, adapter_for
from botplatform.config import Settings
from botplatform.db import Database
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import Forbidden
from botplatform.kit.scoping import enter_workspace
from botplatform.models import Channel, InboundEvent
from botplatform.models.base import UTCDateTime
from botplatform.worker.jobs import enqueue

PROCESS_JOB = "process_inbound_event"
#: The job of a group's new events of one workspace: they are processed as one batch.
PROCESS_BATCH_JOB = "process_inbound_events"
#: How long a process trusts what it read about a channel. Changes made through this process
#: apply at once (`forget`); another process sees them within this many seconds.
CHANNEL_CACHE_SECONDS = 5.0
#: The most webhooks one transaction takes; the rest wait for the next.
MAX_GROUP = 500
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
    stored: asyncio.Future[bool] = field(default_factory=_future)


class WebhookIntake:
    def __init__(self, db: Database, settings: Settings, http: httpx.AsyncClient) -> None:
        self._db = db
        self._settings = settings
        self._http = http
        self._channels: dict[uuid.UUID, WebhookChannel] = {}
        self._waiting: list[_Webhook] = []
        self._writers: set[asyncio.Task[None]] = set()
        self._writing = 0  # writers running: at most `_max_writers`
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

    def cached(self, provider: str, channel_id: uuid.UUID) -> WebhookChannel | None:
        """The channel when this process knows it (fresh), it is active and of `provider`;
        None sends the caller the long way, through `channel`, which loads it or refuses."""
        cached = self._fresh(channel_id)
        if cached is None or cached.channel.provider != provider:
            return None
        return cached if cached.channel.status == "active" else None

    def _fresh(self, channel_id: uuid.UUID) -> WebhookChannel | None:
        cached = self._channels.get(channel_id)
        return cached if cached is not None and cached.expires_at >= time.monotonic() else None

    async def _load(self, channel_id: uuid.UUID) -> WebhookChannel:
        async with self._db.unit_of_work(write=False) as db:
            channel = await repository.get_for_webhook(db, channel_id)
        if channel is None:
            self._channels.pop(channel_id, None)
            raise repository.channel_not_found()
        loaded = WebhookChannel(
            channel=channel,
            adapter=adapter_for(channel, self._settings, self._http),
            expires_at=time.monotonic() + CHANNEL_CACHE_SECONDS,
        )
        self._channels[channel_id] = loaded
        return loaded

    def forget(self, channel_id: uuid.UUID) -> None:
        """Called when this process changes or deletes a channel."""
        self._channels.pop(channel_id, None)

    # -- the durable write ------------------------------------------------------------------

    async def store(self, channel: WebhookChannel, body: bytes) -> bool:
        """Returns once `body` is committed and its processing job queued: True when it is
        new, False when this channel already received exactly this body (a redelivery)."""
        webhook = _Webhook(
            workspace_id=channel.workspace_id,
            channel_id=channel.id,
            provider=channel.channel.provider,
            body=body,
            dedupe_key=hashlib.sha256(body).hexdigest(),
        )
        self._waiting.append(webhook)
        if self._writing < self._max_writers:
            self._writing += 1
            writer = asyncio.create_task(self._write_while_waiting())
            self._writers.add(writer)  # a reference, so the task is not collected midway
            writer.add_done_callback(self._writers.discard)
        return await webhook.stored

    async def _write_while_waiting(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting[:MAX_GROUP], self._waiting[MAX_GROUP:]
                await self._write_group(group)
        finally:
            # Counted down in the same step that saw nothing waiting: a webhook queued after
            # that step finds a free slot and starts a writer. (A done-callback would run a
            # step later, and a webhook queued in between would wait for a writer that is gone.)
            self._writing -= 1

    async def _write_group(self, group: list[_Webhook]) -> None:
        try:
            created = await self._write(group)
        except Exception as exc:  # each waiting request answers with the failure
            for webhook in group:
                if not webhook.stored.done():
                    webhook.stored.set_exception(exc)
            return
        for webhook in group:
            if not webhook.stored.done():
                webhook.stored.set_result(id(webhook) in created)

    async def _write(self, group: list[_Webhook]) -> set[int]:
        """One transaction for the group; the `id()`s of the webhooks that made a new row."""
        by_workspace: dict[uuid.UUID, list[_Webhook]] = defaultdict(list)
        for webhook in group:
            by_workspace[webhook.workspace_id].append(webhook)
        created: set[int] = set()
        async with self._db.unit_of_work() as db:
            for workspace_id, webhooks in by_workspace.items():
                # Row-level security admits this workspace's rows only, as everywhere else.
                await enter_workspace(db, workspace_id)
                created |= await _insert(db, workspace_id, webhooks)
        return created


async def _insert(db: AsyncSession, workspace_id: uuid.UUID, webhooks: list[_Webhook]) -> set[int]:
    """Inserts the bodies not received before (the first of equal ones) and queues one job
    for all of them (processed as one batch); the `id()`s of the webhooks that made a row."""
    first: dict[tuple[uuid.UUID, str], _Webhook] = {}
    for webhook in webhooks:
        first.setdefault((webhook.channel_id, webhook.dedupe_key), webhook)
    if db.get_bind().dialect.name == "postgresql":
        inserted = await _insert_postgres(db, workspace_id, list(first.values()))
    else:
        inserted = await _insert_sqlite(db, workspace_id, list(first.values()))
    created: set[int] = set()
    for _, channel_id, dedupe_key in inserted:
        created.add(id(first[(channel_id, dedupe_key)]))
    if inserted:
        event_ids = [str(event_id) for event_id, _, _ in inserted]
        enqueue(db, PROCESS_BATCH_JOB, str(workspace_id), event_ids)
    return created


Inserted = list[tuple[uuid.UUID, uuid.UUID, str]]  # (event id, channel id, dedupe key)

# One statement of one shape whatever the group's size (columns passed as arrays), so
# PostgreSQL and asyncpg keep it prepared and SQLAlchemy never compiles it again: compiling a
# multi-row VALUES of each new size cost more than the insert itself.
_INSERT_POSTGRES = text(
    """
    INSERT INTO inbound_events
        (id, workspace_id, channel_id, provider, dedupe_key, body, status, created_at, updated_at)
    SELECT gen_random_uuid(), :workspace_id, new.channel_id, new.provider, new.dedupe_key,
           new.body, 'pending', :now, :now
    FROM unnest(
        CAST(:channel_ids AS uuid[]), CAST(:providers AS varchar[]),
        CAST(:dedupe_keys AS varchar[]), CAST(:bodies AS text[])
    ) AS new (channel_id, provider, dedupe_key, body)
    ON CONFLICT (channel_id, dedupe_key) DO NOTHING
    RETURNING id, channel_id, dedupe_key
    """
).bindparams(bindparam("now", type_=UTCDateTime()))


async def _insert_postgres(
    db: AsyncSession, workspace_id: uuid.UUID, webhooks: list[_Webhook]
) -> Inserted:
    parameters = {
        "workspace_id": workspace_id,
        "now": utcnow(),
        "channel_ids": [webhook.channel_id for webhook in webhooks],
        "providers": [webhook.provider for webhook in webhooks],
        "dedupe_keys": [webhook.dedupe_key for webhook in webhooks],
        "bodies": [_text(webhook.body) for webhook in webhooks],
    }
    return _inserted(await db.execute(_INSERT_POSTGRES, parameters))


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
    return _inserted(await db.execute(statement))


def _inserted(result: Result[*tuple[Any, ...]]) -> Inserted:
    return [(row[0], row[1], row[2]) for row in result]


def _text(body: bytes) -> str:
    """The body as the text column keeps it. Bytes no text column holds (invalid UTF-8, and
    NUL, which PostgreSQL refuses) become U+FFFD, so one such webhook never fails the insert
    of its whole group; the processing job sees the text differs from what was received
    (its hash is not the dedupe key) and fails the event with the reason."""
    return body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
