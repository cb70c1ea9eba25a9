"""The one driver of a broadcast: a lease on the broadcast row (`driver_until`), renewed as
it goes; its value is the fencing token of everything the driver writes."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.channels.base import ChannelInfo
from botplatform.kit.clock import utcnow
from botplatform.kit.scoping import enter_workspace
from botplatform.models import Broadcast

if TYPE_CHECKING:
    from botplatform.runtime import Runtime


#: How long the event loop may have kept other work (a reply, a webhook) waiting before a
#: broadcast steps back: past it, the broadcast pauses in proportion (`give_way`).
LOOP_LAG_BUDGET = 0.010
#: The longest such pause: a busy loop slows a broadcast down, never stops it.
MAX_GIVE_WAY = 0.25


async def give_way() -> None:
    """A broadcast is background work sharing its process's one event loop with the message
    path. Called between its steps (every few dozen recipients), this lets whatever is ready
    run first, and when that took longer than LOOP_LAG_BUDGET (the loop is busy with others'
    work), pauses twice as long again: on a busy loop the broadcast takes about a third of
    it, on an idle one it runs at full speed."""
    started = time.monotonic()
    await asyncio.sleep(0)
    lag = time.monotonic() - started
    if lag > LOOP_LAG_BUDGET:
        await asyncio.sleep(min(2 * lag, MAX_GIVE_WAY))


async def take_driver(runtime: Runtime, ws: uuid.UUID, broadcast_id: uuid.UUID) -> datetime | None:
    """Becomes the broadcast's one driver: its lease value, or None (not running, or held)."""
    now = utcnow()
    lease_until = now + timedelta(seconds=runtime.settings.send_lease_seconds)
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        result = await db.execute(
            update(Broadcast)
            .where(
                Broadcast.workspace_id == ws,
                Broadcast.id == broadcast_id,
                Broadcast.status == "running",
                (Broadcast.driver_until.is_(None)) | (Broadcast.driver_until < now),
            )
            .values(driver_until=lease_until)
            .returning(Broadcast.id)
            .execution_options(synchronize_session=False)
        )
        return lease_until if result.scalar_one_or_none() else None


@dataclass
class Driver:
    runtime: Runtime
    ws: uuid.UUID
    broadcast_id: uuid.UUID
    lease_until: datetime
    channel: ChannelInfo | None = None
    broadcast: dict[str, Any] = field(default_factory=dict)
    pace: float = 0.0  # sends per second this broadcast allows itself (≤ the channel's)
    backoff: float = 0.0  # seconds to wait before the next chunk after throttling
    last_chunk: float = 0.0
    chunk: int = 0  # the next chunk's size (engine.next_chunk); 0: the first one's
    #: The last chunk's outcomes being written meanwhile (broadcast/sending.py).
    writing: asyncio.Future[None] | None = None

    async def renew(self, db: AsyncSession) -> str | None:
        """Extends the lease while it is still ours; the broadcast's status, or None when
        another driver took over (then this one stops)."""
        new = utcnow() + timedelta(seconds=self.runtime.settings.send_lease_seconds)
        result = await db.execute(
            update(Broadcast)
            .where(
                Broadcast.workspace_id == self.ws,
                Broadcast.id == self.broadcast_id,
                Broadcast.driver_until == self.lease_until,
            )
            .values(driver_until=new)
            .returning(Broadcast.status)
            .execution_options(synchronize_session=False)
        )
        status = result.scalar_one_or_none()
        if status is not None:
            self.lease_until = new
        return status

    async def release(self, **values: Any) -> None:
        async with self.runtime.db.unit_of_work() as db:
            await enter_workspace(db, self.ws)
            await db.execute(
                update(Broadcast)
                .where(
                    Broadcast.workspace_id == self.ws,
                    Broadcast.id == self.broadcast_id,
                    Broadcast.driver_until == self.lease_until,
                )
                .values(driver_until=None, **values)
                .execution_options(synchronize_session=False)
            )
