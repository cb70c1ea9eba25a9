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

import httpx
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.channel import repository
from botplatform.channels.base import ChannelAdapter
from botplatform.channels.registry import PROVIDERS, adapter_for
from botplatform.config import Settings
from botplatform.db import Database
from botplatform.kit.errors import Forbidden
from botplatform.kit.scoping import enter_workspace
from botplatform.models import Channel, InboundEvent
from botplatform.worker.jobs import enqueue

PROCESS_JOB = "process_inbound_event"
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
        self._max_writers = CONCURRENT_GROUPS_POSTGRES if db.dialect == "postgresql" else 1

    # -- the channel ------------------------------------------------------------------------

    async def channel(self, provider: str, channel_id: uuid.UUID) -> WebhookChannel:
        """The active channel of `provider` with this id; 404 or 403 otherwise."""
        if provider not in PROVIDERS:
            raise repository.channel_not_found()
        cached = self._channels.get(channel_id)
        if cached is None or cached.expires_at < time.monotonic():
            cached = await self._load(channel_id)
        if cached.channel.provider != provider:
            raise repository.channel_not_found()
        if cached.channel.status != "active":
            raise Forbidden("This channel is disabled.", code="channel_disabled")
        return cached

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
        if len(self._writers) < self._max_writers:
            writer = asyncio.create_task(self._write_while_waiting())
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        return await webhook.stored

    async def _write_while_waiting(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting[:MAX_GROUP], self._waiting[MAX_GROUP:]
            try:
                created = await self._write(group)
            except Exception as exc:  # each waiting request answers with the failure
                for webhook in group:
                    if not webhook.stored.done():
                        webhook.stored.set_exception(exc)
                continue
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
    """Inserts the bodies not received before (the first of equal ones) and queues their jobs;
    the `id()`s of the webhooks that made a row."""
    first: dict[tuple[uuid.UUID, str], _Webhook] = {}
    for webhook in webhooks:
        first.setdefault((webhook.channel_id, webhook.dedupe_key), webhook)
    rows = [
        {
            "id": uuid.uuid4(),
            "workspace_id": workspace_id,
            "channel_id": webhook.channel_id,
            "provider": webhook.provider,
            "dedupe_key": webhook.dedupe_key,
            "body": webhook.body.decode("utf-8", errors="replace"),
            "status": "pending",
        }
        for webhook in first.values()
    ]
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(InboundEvent)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["channel_id", "dedupe_key"])
        .returning(InboundEvent.id, InboundEvent.channel_id, InboundEvent.dedupe_key)
    )
    created: set[int] = set()
    for event_id, channel_id, dedupe_key in (await db.execute(statement)).all():
        created.add(id(first[(channel_id, dedupe_key)]))
        enqueue(db, PROCESS_JOB, str(workspace_id), str(event_id))
    return created
