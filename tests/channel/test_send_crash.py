"""A worker process killed with SIGKILL during a burst of WhatsApp sends: every message is
sent, none twice. Sends the dead worker had in flight are recognised by the status webhooks
that carry our message id, so they are not repeated when their lease runs out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from botplatform.config import Settings
from botplatform.kit.scoping import enter_workspace, scoped
from botplatform.message.schemas import MessageBody
from botplatform.message.service import queue_outbound
from botplatform.models import Channel, Contact, Conversation, Message
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.conftest import GRAPH_PORT, Api, eventually

ISOLATED_REDIS = os.environ.get("TEST_REDIS_ISOLATED_URL", "redis://127.0.0.1:6379/14")
BURST = 40


def _env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=ISOLATED_REDIS,
        SECRET_KEY=settings.signing_key,
        WHATSAPP_API_BASE_URL=f"http://127.0.0.1:{GRAPH_PORT}",
        SEND_LEASE_SECONDS="3",
        QUEUE_HEARTBEAT_TIMEOUT_MS="1000",
        QUEUE_MAINTENANCE_CHANCE="1000000",
        WORKER_THREADS="4",
        LOG_DIR=str(tmp_path / "logs"),
        LOG_TO_STDOUT="false",
    )
    return env


async def _queue_burst(sender: Runtime, ws: str) -> None:
    import uuid

    async with sender.db.unit_of_work() as db:
        await enter_workspace(db, uuid.UUID(ws))
        conversation = (await db.execute(scoped(Conversation, uuid.UUID(ws)))).scalar_one()
        channel = await db.get(Channel, conversation.channel_id)
        contact = await db.get(Contact, conversation.contact_id)
        assert channel is not None
        assert contact is not None
        for index in range(BURST):
            await queue_outbound(
                db,
                channel=channel,
                contact=contact,
                conversation=conversation,
                body=MessageBody(text=f"burst {index}"),
                idempotency_key=f"burst-{index}",
                sender_user_id=None,
            )


@pytest.mark.usefixtures("client")
async def test_sigkill_during_a_burst_neither_loses_nor_duplicates(
    settings: Settings, runtime: Runtime, api: Api, wa: FakeGraph, tmp_path: Path
) -> None:
    if not settings.redis_url:
        pytest.skip("separate worker processes exist in production mode (Redis) only")
    redis.Redis.from_url(ISOLATED_REDIS).flushdb()
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    await api.inbound_text(channel["id"], "15557770000", "hi", name="Burst")
    await api.conversation_of(owner, ws, "Burst")
    wa.latency = 0.05

    sender = Runtime.create(
        settings.model_copy(update={"redis_url": ISOLATED_REDIS, "worker_in_process": False})
    )
    env = _env(settings, tmp_path)
    command = [sys.executable, "-m", "botplatform", "worker"]
    first = subprocess.Popen(command, env=env)
    second = None
    try:
        await _queue_burst(sender, ws)
        await eventually(lambda: len(wa.sent) >= 8, timeout=30)
        first.send_signal(signal.SIGKILL)  # mid-burst: some sends are in flight
        first.wait(timeout=10)
        second = subprocess.Popen(command, env=env)

        async def all_sent() -> bool:
            async with runtime.db.unit_of_work(write=False, system=True) as db:
                rows = (
                    (
                        await db.execute(
                            select(Message.status).where(Message.direction == "outbound")
                        )
                    )
                    .scalars()
                    .all()
                )
            return len(rows) == BURST and all(s in ("sent", "delivered", "read") for s in rows)

        await eventually(all_sent, timeout=60)
        import asyncio

        await asyncio.sleep(4)  # past any lease: a repeat would have happened by now
        texts = Counter(item["body"]["text"]["body"] for item in wa.sent)
        assert texts == Counter(f"burst {index}" for index in range(BURST))
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
        await sender.close()
        redis.Redis.from_url(ISOLATED_REDIS).flushdb()
