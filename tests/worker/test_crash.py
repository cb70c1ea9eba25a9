"""A worker process killed with SIGKILL in the middle of a job: the job runs again in
another worker, and its effect (an email delivered over SMTP) happens once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from botplatform.config import Settings
from botplatform.email.service import queue_email
from botplatform.models import Email
from botplatform.runtime import Runtime
from tests.conftest import SmtpSink, eventually

# Not the queue the test app's worker consumes.
ISOLATED_REDIS = os.environ.get("TEST_REDIS_ISOLATED_URL", "redis://127.0.0.1:6379/14")


def _worker_env(settings: Settings, smtp: SmtpSink, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=ISOLATED_REDIS,
        SECRET_KEY=settings.signing_key,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(smtp.port),
        SMTP_STARTTLS="false",
        SMTP_TIMEOUT_SECONDS="2",
        QUEUE_HEARTBEAT_TIMEOUT_MS="1000",
        # None left to chance: the consumers' own periodic maintenance must find the dead
        # worker (an idle consumer blocks, so chance per dispatch would rarely come up).
        QUEUE_MAINTENANCE_CHANCE="0",
        WORKER_THREADS="2",
        LOG_DIR=str(tmp_path / "logs"),
        LOG_TO_STDOUT="false",
    )
    return env


@pytest.fixture
def isolated_queue() -> Iterator[None]:
    client = redis.Redis.from_url(ISOLATED_REDIS)
    client.flushdb()
    yield
    client.flushdb()
    client.close()


def _niceness(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])  # the 19th field of the line; the first two are before ")"


def _start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "botplatform", "worker"], env=env)


@pytest.mark.usefixtures("client", "isolated_queue")
async def test_killed_worker_job_runs_again_and_sends_once(
    settings: Settings, runtime: Runtime, smtp: SmtpSink, tmp_path: Path
) -> None:
    if not settings.redis_url:
        pytest.skip("separate worker processes exist in production mode (Redis) only")
    env = _worker_env(settings, smtp, tmp_path)
    sender = Runtime.create(
        settings.model_copy(update={"redis_url": ISOLATED_REDIS, "worker_in_process": False})
    )
    address = f"crash-{uuid.uuid4().hex[:8]}@example.com"
    smtp.stall[address] = 60  # the first worker gets stuck inside the SMTP conversation
    first = _start_worker(env)
    second = None
    try:
        async with sender.db.unit_of_work() as db:
            email = await queue_email(db, kind="test", to=address, subject="Once", text="x")
        await eventually(smtp.stalled.is_set, timeout=30)
        # The worker yields the CPU to `serve` on a shared host (WORKER_NICE, default 10).
        assert _niceness(first.pid) == 10
        first.send_signal(signal.SIGKILL)  # mid-job: leased, talking to SMTP, not sent
        first.wait(timeout=10)
        assert smtp.to(address) == []

        del smtp.stall[address]
        second = _start_worker(env)
        await eventually(lambda: smtp.to(address), timeout=45)

        async def sent() -> bool:
            async with runtime.db.unit_of_work() as db:
                row = await db.get(Email, email.id, populate_existing=True)
                return row is not None and row.status == "sent"

        await eventually(sent, timeout=15)
        import asyncio

        await asyncio.sleep(3)  # any further copy of the job would have sent by now
        assert len(smtp.to(address)) == 1
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0  # a graceful stop
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
        await sender.close()
