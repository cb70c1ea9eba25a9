"""What one process holds for its whole life: settings, database, key-value store, and the
services built on them. Created in the app's lifespan (or by the CLI), closed at shutdown."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

import httpx
from fastapi import Depends, Request

from botplatform.auth.passwords import PasswordService
from botplatform.auth.sessions import SessionStore
from botplatform.automation import cache as automation_cache
from botplatform.bot import cache as bot_cache
from botplatform.channel import cache as channel_cache
from botplatform.channels.intake import WebhookIntake
from botplatform.channels.webchat.hub import hub_for
from botplatform.config import Settings
from botplatform.db import Database
from botplatform.events.live import LIVE_HUB, PRESENCE_KIND, LiveHub
from botplatform.kit import crypto, provider_http
from botplatform.kit.http import create_http_client
from botplatform.kit.kv import KeyValueStore, create_store, embedded_store_path
from botplatform.kit.ratelimit import RateLimiter
from botplatform.kit.shared_cache import SHARED_CACHE, SharedCache
from botplatform.kit.tokens import SessionTokenCodec
from botplatform.media.storage import MediaStorage, SignedMediaUrls, create_storage
from botplatform.plans import cache as plans_cache
from botplatform.webhook import cache as webhook_cache
from botplatform.worker.queue import JobQueue

#: The domains' cached reads (`kit.shared_cache`): imported here, so that every process that
#: opens a database (app, worker, command) knows which writes invalidate what.
CACHED_DOMAINS = (automation_cache, bot_cache, channel_cache, plans_cache, webhook_cache)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    kv: KeyValueStore
    sessions: SessionStore
    passwords: PasswordService
    session_tokens: SessionTokenCodec
    ratelimiter: RateLimiter
    http: httpx.AsyncClient
    media: MediaStorage
    media_urls: SignedMediaUrls
    jobs: JobQueue = field(init=False)
    intake: WebhookIntake = field(init=False)
    live: LiveHub = field(init=False)
    cache: SharedCache = field(init=False)

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        crypto.configure(settings.fernet_keys)
        kv = create_store(
            settings.redis_url, embedded_store_path(settings.database_dsn, settings.data_dir)
        )
        runtime = cls(
            settings=settings,
            db=Database(settings),
            kv=kv,
            sessions=SessionStore(kv, settings),
            passwords=PasswordService(settings),
            session_tokens=SessionTokenCodec(settings.signing_key),
            ratelimiter=RateLimiter(settings),
            http=create_http_client(),
            media=create_storage(settings),
            media_urls=SignedMediaUrls(settings.signing_key, settings.app_url.rstrip("/")),
        )
        runtime.jobs = JobQueue(settings, runtime)
        runtime.db.after_commit = runtime.jobs.dispatch
        runtime.intake = WebhookIntake(runtime.db, settings, runtime.http)
        runtime.cache = SharedCache(settings.redis_url)
        runtime.live = LiveHub(settings.redis_url, runtime.cache)
        runtime.cache.on_drop(PRESENCE_KIND, runtime.live.forget_presence)
        # The webhook intake's own short-lived channel cache follows this one's drops, made
        # here or in any other process.
        runtime.cache.on_drop(channel_cache.KIND, runtime._forget_webhook_channel)
        # emit() finds the hub through its session, to stream events once they commit; the
        # domains' cached reads find the process's cache the same way.
        runtime.db.sessionmaker.configure(
            info={LIVE_HUB: runtime.live, SHARED_CACHE: runtime.cache}
        )
        return runtime

    def _forget_webhook_channel(self, _: uuid.UUID | None, channel_id: str | None) -> None:
        if channel_id is not None:
            self.intake.forget(uuid.UUID(channel_id))

    async def start(self) -> None:
        """What runs beside the process's work on its event loop: the subscription to cache
        invalidations (serve and worker processes; a command needs none)."""
        await self.cache.start()

    async def close(self) -> None:
        await self.jobs.stop_worker()
        await self.jobs.aclose()
        self.jobs.close()
        await self.live.close()
        await hub_for(self.settings.redis_url).close()
        await self.cache.close()
        await self.kv.close()
        await self.http.aclose()
        await provider_http.close()
        await self.db.dispose()


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

T = TypeVar("T")


def run_with_runtime(settings: Settings, work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Runs `work` with a fresh Runtime on a new event loop (for commands), then closes it."""

    async def run() -> T:
        runtime = Runtime.create(settings)
        try:
            return await work(runtime)
        finally:
            await runtime.close()

    return asyncio.run(run())
