"""create_app(): middleware, routers, lifespan — assembly only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from botplatform import __version__
from botplatform.api import api_router
from botplatform.branding.endpoints import public_router as branding_public_router
from botplatform.channel.endpoints import oauth_router as channel_oauth_router
from botplatform.channels.inbound import WebhookLane
from botplatform.channels.inbound import router as webhooks_router
from botplatform.channels.slack.app_events import router as slack_app_router
from botplatform.channels.webchat.cors import WidgetCorsMiddleware
from botplatform.channels.webchat.endpoints import router as widget_router
from botplatform.config import Settings, load_settings
from botplatform.dashboard.router import dashboard_router, static_files
from botplatform.email.endpoints import public_router as email_public_router
from botplatform.health.endpoints import router as health_router
from botplatform.kit import metrics
from botplatform.kit.api_docs import router as api_docs_router
from botplatform.kit.handlers import install_error_handlers
from botplatform.kit.http_cache import ConditionalGetMiddleware
from botplatform.kit.logging import configure_logging, get_logger
from botplatform.kit.middleware import (
    BodyGuardMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
)
from botplatform.kit.ratelimit import RateLimitMiddleware
from botplatform.media.endpoints import router as media_router
from botplatform.runtime import Runtime
from botplatform.worker.scheduler import Scheduler, schedules_for

log = get_logger("botplatform.app")


@asynccontextmanager
async def _background(runtime: Runtime) -> AsyncIterator[None]:
    """The worker and scheduler that run inside the app process (embedded mode default)."""
    settings = runtime.settings
    if settings.runs_worker_in_process:
        runtime.jobs.start_worker(asyncio.get_running_loop(), settings.worker_threads)
    stop = asyncio.Event()
    scheduler_task = None
    if settings.runs_scheduler_in_process:
        scheduler = Scheduler(
            runtime.kv,
            runtime.jobs.send,
            schedules_for(settings),
            lock_seconds=settings.scheduler_lock_seconds,
        )
        scheduler_task = asyncio.create_task(scheduler.run(stop))
    try:
        yield
    finally:
        stop.set()
        if scheduler_task is not None:
            await scheduler_task
        await runtime.jobs.stop_worker()


class PlatformApp(FastAPI):
    """The application, with the provider webhooks' lane (channels/inbound.py) in front of
    everything: the webhooks it takes skip the whole middleware stack; every other request
    goes through it as before."""

    front: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.front(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_dir, settings.log_level, settings.log_to_stdout)
        runtime = Runtime.create(settings)
        app.state.runtime = runtime
        await runtime.start()
        metrics.watch_queue_depth(runtime.jobs.depths)
        log.info("started", database=runtime.db.dialect, embedded=settings.is_embedded)
        try:
            async with _background(runtime):
                yield
        finally:
            await runtime.close()
            log.info("stopped")

    metrics.init_sentry(settings.sentry_dsn, settings.env, settings.sentry_traces_sample_rate)
    app = PlatformApp(
        title="WhatsApp Bot Platform",
        version=__version__,
        lifespan=lifespan,
        openapi_url="/api/openapi.json",
        docs_url=None,  # served by kit.api_docs from our own static files
        redoc_url=None,
    )
    install_error_handlers(app)
    # Routes are matched in order: the busiest route (provider webhooks) comes first.
    app.include_router(webhooks_router)
    app.include_router(api_router)
    app.include_router(health_router)
    app.include_router(api_docs_router)
    app.include_router(media_router)
    app.include_router(branding_public_router)
    app.include_router(email_public_router)
    app.include_router(widget_router)
    app.include_router(channel_oauth_router)
    app.include_router(slack_app_router)
    app.include_router(dashboard_router)
    app.mount("/app/static", static_files, name="static")
    # Added last = outermost: the request id wraps everything, even a refused body.
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(ConditionalGetMiddleware)
    app.add_middleware(
        BodyGuardMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    app.add_middleware(RateLimitMiddleware)
    app.add_middleware(WidgetCorsMiddleware)
    app.add_middleware(metrics.MetricsMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.app_url.startswith("https://"))
    app.add_middleware(RequestContextMiddleware, trusted_proxies=settings.trusted_proxies)
    # In front of all of it: the fast door for provider webhooks, which does inline what the
    # middleware above would do for them (see docs/decisions.md).
    app.front = WebhookLane(
        partial(FastAPI.__call__, app),
        app.state,
        max_body_bytes=settings.max_body_bytes,
        hsts=settings.app_url.startswith("https://"),
        trusted_proxies=settings.trusted_proxies,
    )
    return app


def app_factory() -> FastAPI:
    """Entry point for `uvicorn --factory botplatform.main:app_factory`."""
    return create_app()
