"""A whole platform of the test's own, to be broken on purpose: a throwaway PostgreSQL cluster
(`initdb` + `pg_ctl`, as the `postgres` system user when the tests run as root) and a Redis
server, each on a free loopback port and restartable; the app in process (its worker off),
`botplatform worker` processes, and the fake Graph API. Never the shared servers: restarting
those would break everyone else's tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from asgi_lifespan import LifespanManager

from botplatform import migrate
from botplatform.config import Settings
from botplatform.main import create_app
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from botplatform.sandbox import create_app as create_graph_app
from tests.conftest import APP_ROLE, APP_SECRET, CHANNEL_TOKEN, Api, base_settings
from tests.serving import free_port, serving

WORKER = [sys.executable, "-m", "botplatform", "worker"]
#: One directory for the logs of every stack of the session: the app's log handlers outlive
#: a stack (logging is configured per process).
LOGS = Path(tempfile.gettempdir()) / "botplatform-test-stacks"
LEASE_SECONDS = 3  # send and driver leases: a dead worker's work comes back this soon


def _as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: the commands run as the `postgres` user then."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def postgres_binaries() -> Path | None:
    """The directory with `initdb` and `pg_ctl`, or None when PostgreSQL is not installed."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return candidates[-1].parent if candidates else None


def _wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@dataclass
class Postgres:
    """A throwaway cluster: trust authentication on loopback, no fsync (a throwaway)."""

    binaries: Path
    directory: Path
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/botplatform"

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres(
                [str(self.binaries / "pg_ctl"), "-D", str(self.directory / "data"), *args]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def create(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.directory, user.pw_uid, user.pw_gid)
        subprocess.run(
            _as_postgres(
                [
                    str(self.binaries / "initdb"),
                    *("-D", str(self.directory / "data")),
                    *("-U", "postgres", "--auth=trust", "--no-sync"),
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.start()

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=100"
        )
        self._pg_ctl("-o", options, "-l", str(self.directory / "log"), "-w", "start")
        _wait_for_port(self.port)

    def crash(self) -> None:
        """Stops it the way a crash does (`immediate`: no checkpoint, clients cut off)."""
        self._pg_ctl("-m", "immediate", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._pg_ctl("-m", "immediate", "-w", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)

    async def create_database(self) -> None:
        connection = await asyncpg.connect(self.url.rsplit("/", 1)[0] + "/postgres", timeout=10)
        try:
            await connection.execute("CREATE DATABASE botplatform")
            await connection.execute(f'CREATE ROLE "{APP_ROLE}" LOGIN')
        finally:
            await connection.close()


@dataclass
class RedisServer:
    """A Redis server of this test's own, without persistence (a restart loses its queues,
    the worst case the platform must survive)."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port)]
        argv += ["--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        _wait_for_port(self.port)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


@dataclass
class Stack:
    settings: Settings
    runtime: Runtime
    api: Api
    wa: FakeGraph
    postgres: Postgres
    redis: RedisServer
    tmp: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def worker_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
        env.update(
            DATABASE_URL=self.settings.database_url,
            REDIS_URL=self.redis.url,
            SECRET_KEY=self.settings.signing_key,
            WHATSAPP_API_BASE_URL=self.settings.whatsapp_api_base_url,
            SEND_LEASE_SECONDS=str(LEASE_SECONDS),
            SEND_UNKNOWN_GRACE_SECONDS=str(LEASE_SECONDS),
            SWEEP_AFTER_SECONDS="60",
            QUEUE_HEARTBEAT_TIMEOUT_MS="1000",
            QUEUE_MAINTENANCE_CHANCE="1000000",
            WORKER_THREADS="4",
            WORKER_NICE="0",
            WORKER_METRICS_PORT="0",
            LOG_DIR=str(LOGS / "logs"),
            LOG_TO_STDOUT="false",
        )
        env.update(extra)
        return env

    def start_worker(self, **extra: str) -> subprocess.Popen[bytes]:
        self.workers.append(subprocess.Popen(WORKER, env=self.worker_env(**extra)))
        return self.workers[-1]

    def send_job(self, name: str) -> None:
        """A system job, as the scheduler would send it (only sooner); while Redis is down
        there is nobody to send it to, and the next try will."""
        with contextlib.suppress(Exception):
            self.runtime.jobs.send(name)

    def stop_workers(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)


@contextlib.asynccontextmanager
async def own_stack(graph: type[FakeGraph] = FakeGraph, **overrides: Any) -> AsyncIterator[Stack]:
    """The whole stack, torn down (cluster removed) when the block ends; `graph` the fake
    provider's class (the benchmark's counts when each message arrived)."""
    binaries = postgres_binaries()
    if binaries is None or shutil.which("redis-server") is None:
        raise RuntimeError("PostgreSQL's initdb/pg_ctl and redis-server are needed")
    tmp = Path(tempfile.mkdtemp(prefix="bp-stack-"))
    # The postgres user reaches its cluster's directory below (mkdtemp made it 0700).
    os.chmod(tmp, 0o755)  # noqa: S103 - a throwaway directory of the test's own
    postgres = Postgres(binaries, tmp / "pg")
    redis_server = RedisServer()
    graph_port = free_port()
    try:
        postgres.create()
        await postgres.create_database()
        redis_server.start()
        settings = base_settings(
            LOGS,
            database_url=postgres.url.replace("postgres@", f"{APP_ROLE}@"),
            database_owner_url=postgres.url,
            redis_url=redis_server.url,
            worker_in_process=False,
            whatsapp_api_base_url=f"http://127.0.0.1:{graph_port}",
            send_lease_seconds=LEASE_SECONDS,
            send_unknown_grace_seconds=LEASE_SECONDS,
            # Every send brings its status webhooks (sent, delivered, read) back at once.
            rate_limit_webhooks="1000000/minute",
            **overrides,
        )
        await asyncio.to_thread(migrate.upgrade, settings)
        app = create_app(settings)
        async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                fake = graph(
                    access_tokens={CHANNEL_TOKEN},
                    app_secret=APP_SECRET,
                    status_delay=0.01,
                    # Uncapped: the stack compresses the 900 s grace for a status into 3 s
                    # (LEASE_SECONDS), which statuses waiting their turn behind a cap would
                    # outlast; the cap is for a provider in a process of its own (the bench).
                    status_concurrency=1_000_000,
                    webhook_client=httpx.AsyncClient(
                        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
                    ),
                )
                async with serving(create_graph_app(fake), graph_port, lifespan="on"):
                    stack = Stack(
                        settings, app.state.runtime, Api(http), fake, postgres, redis_server, tmp
                    )
                    try:
                        yield stack
                    finally:
                        await asyncio.to_thread(stack.stop_workers)
    finally:
        redis_server.kill()
        postgres.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
