"""Serving an ASGI app on a loopback port for the length of a test (or a session): the fake
providers, customer endpoints, and the app itself for real browsers and WebSocket clients."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import httpx
import redis
import uvicorn

from botplatform.config import Settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def serving(
    app: Any, port: int | None = None, *, lifespan: Literal["on", "off"] = "off"
) -> AsyncIterator[int]:
    """Serves `app` on 127.0.0.1 (on `port`, or a free one) until the block ends; yields the
    port. `lifespan="off"` for an app whose lifespan already ran (the app under test)."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan=lifespan)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():  # failed to start (port taken): say why
            await task
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


#: The Redis database that app processes started by `app_processes` share.
SHARED_REDIS = os.environ.get("TEST_REDIS_SHARED_URL", "redis://127.0.0.1:6379/13")


@asynccontextmanager
async def app_processes(
    settings: Settings, log_dir: Path, count: int = 2, **env: str
) -> AsyncIterator[list[str]]:
    """Starts `count` real `botplatform serve` processes on the test database and one shared
    Redis database (emptied before and after), waits until each answers, and yields their
    base URLs. `env` adds settings (e.g. RATE_LIMIT_AUTH="4/minute")."""
    redis.Redis.from_url(SHARED_REDIS).flushdb()
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    environment.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=SHARED_REDIS,
        SECRET_KEY=settings.signing_key,
        AUTO_MIGRATE="false",
        WORKER_IN_PROCESS="false",
        SCHEDULER_IN_PROCESS="false",
        ARGON2_TIME_COST="1",
        ARGON2_MEMORY_COST_KIB="1024",
        ARGON2_PARALLELISM="1",
        LOG_DIR=str(log_dir),
        LOG_TO_STDOUT="false",
        **env,
    )
    ports = [free_port() for _ in range(count)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "botplatform", "serve", "--port", str(port)],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        async with httpx.AsyncClient(timeout=5) as http:

            async def up(base: str) -> bool:
                try:
                    return (await http.get(f"{base}/health/live")).status_code == 200
                except httpx.HTTPError:
                    return False

            for base in bases:
                # Generous: the import and start-up of several processes on a busy machine.
                await _until(lambda base=base: up(base), timeout=90)
        yield bases
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        redis.Redis.from_url(SHARED_REDIS).flushdb()


async def _until(predicate: Callable[[], Awaitable[bool]], timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"an app process did not answer within {timeout}s")
        await asyncio.sleep(0.1)
