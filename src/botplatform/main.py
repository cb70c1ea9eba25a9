"""create_app(): middleware, routers, lifespan — assembly only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from botplatform import __version__
from botplatform.api import api_router
from botplatform.config import Settings, load_settings
from botplatform.health.endpoints import router as health_router
from botplatform.kit.handlers import install_error_handlers
from botplatform.kit.logging import configure_logging, get_logger
from botplatform.kit.middleware import BodyGuardMiddleware, RequestContextMiddleware
from botplatform.runtime import Runtime

log = get_logger("botplatform.app")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_dir, settings.log_level, settings.log_to_stdout)
        runtime = Runtime.create(settings)
        app.state.runtime = runtime
        log.info("started", database=runtime.db.dialect, embedded=settings.is_embedded)
        try:
            yield
        finally:
            await runtime.close()
            log.info("stopped")

    app = FastAPI(
        title="WhatsApp Bot Platform",
        version=__version__,
        lifespan=lifespan,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    install_error_handlers(app)
    app.include_router(api_router)
    app.include_router(health_router)
    # Added last = outermost: the request id wraps everything, even a refused body.
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(BodyGuardMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    return app


def app_factory() -> FastAPI:
    """Entry point for `uvicorn --factory botplatform.main:app_factory`."""
    return create_app()
