"""Back-off under pressure: bulk work (a broadcast's chunks, a flood of delivery statuses)
steps back while the message path (customers' messages, replies, bots) runs late.

The message path measures its own lateness where it is felt: how long after it was queued
(or due) a job of a message-path queue starts. Past `MESSAGE_PATH_BUDGET_MS` the process
raises a short-lived flag: locally, and in Redis (`SET … EX 1`, at most a few times a second)
so that the bulk lanes of other processes see it — a worker's bulk child (worker/bulk.py) is
another process than its message path. Bulk work asks before each step (`step_back`): while
the flag is up it sleeps a little, a bounded time, so a busy message path slows a broadcast
down and never stops it. The flag clears by itself a second after the last late job.

Wall clock on both sides (the job's enqueue time is taken in the process that queued it):
processes on one host share it; across hosts, a skewed clock only moves the budget."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from botplatform.kit.logging import get_logger

if TYPE_CHECKING:
    from botplatform.kit.kv import KeyValueStore

log = get_logger("botplatform.pressure")

KEY = "botplatform:pressure:message_path_late"
#: The queues whose lateness counts: customers' messages, replies and bots. Not `webhooks`:
#: a broadcast's own `message.sent` deliveries to slow endpoints must not slow it down.
MESSAGE_PATH = frozenset({"default"})
#: How long the flag stays up after the last late job (the Redis key's own expiry too).
HOLD_SECONDS = 1
#: At most this often a process writes the flag to Redis (a burst of late jobs writes once).
PUBLISH_EVERY = 0.25
#: At most this often a bulk lane reads it (between reads, the last answer stands).
READ_EVERY = 0.1
#: One step back: how long bulk work sleeps before it asks again.
STEP_SECONDS = 0.05


class Pressure:
    """One process's view of the message path's lateness. `note_start` and `is_late` run on
    the process's job loop; `kv` is shared between processes when `shared` (Redis)."""

    def __init__(self, budget_ms: int, kv: KeyValueStore | None, *, shared: bool) -> None:
        self.budget_ms = budget_ms
        self._kv = kv if shared else None
        self._late_until = 0.0  # monotonic: this process saw a late job
        self._published_at = -HOLD_SECONDS * 10.0
        self._read_at = -HOLD_SECONDS * 10.0
        self._seen = False
        self._writes: set[asyncio.Task[None]] = set()

    def note_start(self, queue: str, queued_at_ms: int) -> None:
        """A job of `queue` starts; it was queued (or due) at `queued_at_ms` (unix ms)."""
        if not self.budget_ms or queue not in MESSAGE_PATH:
            return
        late_ms = time.time() * 1000 - queued_at_ms
        if late_ms <= self.budget_ms:
            return
        now = time.monotonic()
        self._late_until = now + HOLD_SECONDS
        if self._kv is not None and now - self._published_at >= PUBLISH_EVERY:
            self._published_at = now
            task = asyncio.get_running_loop().create_task(self._publish(self._kv))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def _publish(self, kv: KeyValueStore) -> None:
        try:
            await kv.put(KEY, "1", ttl_seconds=HOLD_SECONDS)
        except Exception:  # Redis gone: bulk work then runs as it would without the flag
            log.warning("pressure_not_published", exc_info=True)

    async def is_late(self) -> bool:
        """Whether the message path ran late within the last second, here or elsewhere."""
        now = time.monotonic()
        if now < self._late_until:
            return True
        if self._kv is None:
            return False
        if now - self._read_at >= READ_EVERY:
            self._read_at = now
            self._seen = False
            with contextlib.suppress(Exception):  # no Redis, no flag
                self._seen = await self._kv.get(KEY) is not None
        return self._seen

    async def step_back(self, most_seconds: float) -> float:
        """Sleeps while the message path is late, at most `most_seconds`; how long it slept."""
        if not self.budget_ms:
            return 0.0
        waited = 0.0
        while waited < most_seconds and await self.is_late():
            step = min(STEP_SECONDS, most_seconds - waited)
            await asyncio.sleep(step)
            waited += step
        return waited
