"""A worker process killed with SIGKILL during a burst of WhatsApp sends, then restarted:
never a duplicate at the provider, never a silent loss (channels/delivery.py).

A send the dead worker had not yet started (no `send_attempted_at` marker) is sent by the new
one. A send it had started may have reached the provider: it is never sent again; its status
webhook (which carries our id) settles it, or, when none comes, it ends `failed` with
`delivery_unknown` after SEND_UNKNOWN_GRACE_SECONDS — at most the sends in flight when it died.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import select

from botplatform.config import Settings
from botplatform.kit.scoping import enter_workspace, scoped
from botplatform.message.schemas import MessageBody
from botplatform.message.service import queue_outbound
from botplatform.models import Channel, Contact, Conversation, Event, Message
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.conftest import GRAPH_PORT, Api, eventually
from tests.serving import free_port

ISOLATED_REDIS = os.environ.get("TEST_REDIS_ISOLATED_URL", "redis://127.0.0.1:6379/14")
THREADS = 4  # of each worker process: at most this many sends are in flight when one dies
WORKER = [sys.executable, "-m", "botplatform", "worker"]


def _env(settings: Settings, tmp_path: Path, metrics_port: int = 0) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=ISOLATED_REDIS,
        SECRET_KEY=settings.signing_key,
        WHATSAPP_API_BASE_URL=f"http://127.0.0.1:{GRAPH_PORT}",
        SEND_LEASE_SECONDS="3",
        SEND_UNKNOWN_GRACE_SECONDS="3",
        # The killed worker's jobs come back through the queue (heartbeat timeout); the sweeper
        # only ends unknown sends here, instead of re-queueing every row of a long backlog.
        SWEEP_AFTER_SECONDS="60",
        QUEUE_HEARTBEAT_TIMEOUT_MS="1000",
        QUEUE_MAINTENANCE_CHANCE="1000000",
        WORKER_THREADS=str(THREADS),
        WORKER_NICE="0",
        WORKER_METRICS_PORT=str(metrics_port),
        LOG_DIR=str(tmp_path / "logs"),
        LOG_TO_STDOUT="false",
    )
    return env


async def _queue_burst(sender: Runtime, ws: str, count: int) -> None:
    async with sender.db.unit_of_work() as db:
        await enter_workspace(db, uuid.UUID(ws))
        conversation = (await db.execute(scoped(Conversation, uuid.UUID(ws)))).scalar_one()
        channel = await db.get(Channel, conversation.channel_id)
        contact = await db.get(Contact, conversation.contact_id)
        assert channel is not None
        assert contact is not None
        for index in range(count):
            await queue_outbound(
                db,
                channel=channel,
                contact=contact,
                conversation=conversation,
                body=MessageBody(text=f"burst {index}"),
                idempotency_key=f"burst-{index}",
                sender_user_id=None,
            )


async def _outbound(runtime: Runtime) -> list[Message]:
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        statement = select(Message).where(Message.direction == "outbound")
        return list((await db.execute(statement)).scalars().all())


async def _settled(runtime: Runtime, sender: Runtime, count: int) -> bool:
    """Every message ended (sent or failed); meanwhile the sweeper runs in the worker (as the
    scheduler would start it, only more often)."""
    rows = await _outbound(runtime)
    if len(rows) == count and all(row.status not in ("queued", "sending") for row in rows):
        return True
    sender.jobs.send("sweep_pending_work")
    await asyncio.sleep(1)
    return False


def _in_flight(wa: FakeGraph) -> bool:
    """A send request has reached the fake provider, which has not answered it yet (it
    records a message after its latency): killed now, the worker never learns the outcome."""
    requests = [r for r in wa.received if r["method"] == "POST" and r["path"].endswith("/messages")]
    return len(requests) > len(wa.sent)


async def _start(api: Api, wa: FakeGraph, name: str) -> str:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    await api.subscribe(owner, ws)  # so that its events are stored, to be read below
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    await api.inbound_text(channel["id"], "15557770000", "hi", name=name)
    await api.conversation_of(owner, ws, name)
    return ws


@dataclass
class Workers:
    """`botplatform worker` processes on the isolated Redis database, and a runtime that
    queues their jobs there."""

    sender: Runtime
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, env: dict[str, str]) -> subprocess.Popen[bytes]:
        self.processes.append(subprocess.Popen(WORKER, env=env))
        return self.processes[-1]


@pytest.fixture
async def workers(settings: Settings) -> AsyncIterator[Workers]:
    if not settings.redis_url:
        pytest.skip("separate worker processes exist in production mode (Redis) only")
    redis.Redis.from_url(ISOLATED_REDIS).flushdb()
    sender = Runtime.create(
        settings.model_copy(update={"redis_url": ISOLATED_REDIS, "worker_in_process": False})
    )
    started = Workers(sender)
    yield started
    for process in started.processes:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
    await sender.close()
    redis.Redis.from_url(ISOLATED_REDIS).flushdb()


async def _burst_with_a_kill(
    workers: Workers, runtime: Runtime, ws: str, wa: FakeGraph, env: dict[str, str], count: int
) -> list[Message]:
    """Queues `count` replies, SIGKILLs the (already started) worker mid-burst, starts
    another, and returns the rows once all have ended. The second one is left running."""
    (first,) = workers.processes
    await _queue_burst(workers.sender, ws, count)
    await eventually(lambda: len(wa.sent) >= count // 4 and _in_flight(wa), timeout=30)
    first.send_signal(signal.SIGKILL)  # mid-burst, while the provider holds a request
    first.wait(timeout=10)
    assert len(wa.sent) < count, "the worker was killed after the burst, not during it"
    workers.start(env)
    await eventually(lambda: _settled(runtime, workers.sender, count), timeout=40)
    return await _outbound(runtime)


@pytest.mark.usefixtures("client")
async def test_sigkill_during_a_burst_neither_loses_nor_duplicates(
    settings: Settings,
    runtime: Runtime,
    api: Api,
    wa: FakeGraph,
    workers: Workers,
    tmp_path: Path,
) -> None:
    """With status webhooks: what the dead worker had sent is recognised by its statuses."""
    env = _env(settings, tmp_path)
    workers.start(env)  # its start-up overlaps the set-up below
    ws = await _start(api, wa, "Burst")
    wa.latency = 0.05
    rows = await _burst_with_a_kill(workers, runtime, ws, wa, env, 40)
    await asyncio.sleep(3.5)  # past any lease: a repeat would have happened by now
    texts = Counter(item["body"]["text"]["body"] for item in wa.sent)
    assert max(texts.values()) == 1  # never a duplicate
    for row in rows:  # never a silent loss
        assert row.status in ("sent", "delivered", "read") or (
            row.error_code == "delivery_unknown" and row.text not in texts  # it never arrived
        ), (row.status, row.error_code)
        assert row.status == "failed" or row.text in texts
    assert len([row for row in rows if row.status == "failed"]) <= THREADS


@pytest.mark.usefixtures("client")
async def test_sigkill_with_no_status_callbacks_never_duplicates_and_marks_the_unknown(
    settings: Settings,
    runtime: Runtime,
    api: Api,
    wa: FakeGraph,
    workers: Workers,
    tmp_path: Path,
) -> None:
    """Issue 14's test: 200 replies, a provider that posts no status callbacks, the worker
    SIGKILLed mid-burst and restarted: 0 duplicates, and every reply either received by the
    provider or marked `delivery_unknown` (at most the sends in flight), counted in metrics."""
    metrics_port = free_port()
    env = _env(settings, tmp_path, metrics_port)
    workers.start(env)  # its start-up overlaps the set-up below
    ws = await _start(api, wa, "Quiet")
    wa.auto_status = False  # from here on the provider never posts a status
    wa.latency = 0.02
    try:
        rows = await _burst_with_a_kill(workers, runtime, ws, wa, env, 200)
    finally:
        wa.auto_status = True
    texts = Counter(item["body"]["text"]["body"] for item in wa.sent)
    assert max(texts.values()) == 1, [t for t, n in texts.items() if n > 1]  # 0 duplicates
    unknown = [row for row in rows if row.status == "failed"]
    assert all(row.error_code == "delivery_unknown" for row in unknown)
    assert all(row.status == "sent" and row.text in texts for row in rows if row not in unknown)
    # At least the request the provider held when the worker died, at most what was in flight.
    assert 1 <= len(unknown) <= THREADS
    assert len(texts) + len([row for row in unknown if row.text not in texts]) == 200

    async with runtime.db.unit_of_work(write=False, system=True) as db:
        failed = (await db.execute(select(Event).where(Event.type == "message.failed"))).scalars()
        marked = [e for e in failed if e.data["message"]["error"]["code"] == "delivery_unknown"]
    # Each one was announced (a slow live send ended early by the sweeper is moved on to
    # `sent` by its answer, so there may be more announcements than rows still unknown).
    assert len(marked) >= len(unknown)
    async with httpx.AsyncClient() as http:  # the restarted worker's own /metrics
        scraped = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
    assert f"messages_delivery_unknown_total {float(len(marked))}" in scraped
