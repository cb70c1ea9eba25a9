"""Cron-style jobs declared in code, fired by exactly one scheduler among many.

Every scheduler process ticks each second. Only the holder of the leader lock (a key set
with NX and a TTL, renewed each tick) fires, and each fire also claims a key named after the
job and its scheduled time, so even a leader handover cannot fire one tick twice. The lock
lives in Redis in production and in-process when embedded.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from croniter import croniter

from botplatform.config import Settings
from botplatform.kit.clock import utcnow
from botplatform.kit.kv import KeyValueStore
from botplatform.kit.logging import get_logger

log = get_logger("botplatform.scheduler")
LEADER_KEY = "scheduler:leader"


@dataclass(frozen=True)
class Schedule:
    job: str
    cron: str  # five fields, or six with seconds last ("*/5 * * * * *")


#: The platform's scheduled jobs.
SCHEDULES = [
    Schedule("sweep_pending_work", "* * * * *"),
    Schedule("release_idle_handoffs", "* * * * *"),
    # Website chat replies a visitor went away without reading: by email, once.
    Schedule("webchat_email_unseen_replies", "* * * * *"),
    # The broadcasts' safety net (the jobs were lost with Redis, a scheduled start's own
    # delayed job too): each minute, like the sweeps, so an idle process stays asleep.
    Schedule("broadcast_tick", "* * * * *"),
    # Daily, off the hour: deletes (and archives) messages past each workspace's retention.
    Schedule("retention_sweep", "17 3 * * *"),
    # Hourly: folds what changed (late statuses, resolves) into the closed days' rollups.
    Schedule("analytics_rollup", "41 * * * *"),
]

Fire = Callable[[str], object]
BACKUP_JOB = "backup.scheduled"  # botplatform.backup.tasks


def schedules_for(settings: Settings) -> list[Schedule]:
    """The fixed schedules, plus the backup when BACKUP_SCHEDULE sets one."""
    if not settings.backup_schedule:
        return list(SCHEDULES)
    return [*SCHEDULES, Schedule(BACKUP_JOB, settings.backup_schedule)]


class Scheduler:
    def __init__(
        self,
        kv: KeyValueStore,
        fire: Fire,
        schedules: list[Schedule],
        *,
        lock_seconds: int = 10,
        tick_seconds: float = 1.0,
        instance_id: str | None = None,
    ) -> None:
        self.kv = kv
        self.fire = fire
        self.schedules = schedules
        self.lock_seconds = lock_seconds
        self.tick_seconds = tick_seconds
        self.instance_id = instance_id or uuid.uuid4().hex
        self._last_checked: datetime | None = None
        self.is_leader = False

    async def _hold_leadership(self) -> bool:
        if await self.kv.put_if_absent(LEADER_KEY, self.instance_id, self.lock_seconds):
            return True
        if await self.kv.get(LEADER_KEY) == self.instance_id:
            await self.kv.expire(LEADER_KEY, self.lock_seconds)
            return True
        return False

    async def tick(self, now: datetime | None = None) -> list[tuple[str, datetime]]:
        """Fires whatever fell due since the last tick, if this instance leads."""
        now = now or utcnow()
        was_leader, self.is_leader = self.is_leader, await self._hold_leadership()
        if not self.is_leader:
            self._last_checked = None
            return []
        if not was_leader or self._last_checked is None:
            # A new leader starts from now: a missed tick is not replayed on takeover.
            self._last_checked = now
            log.info("scheduler_leading", instance=self.instance_id)
            return []
        fired = []
        for schedule in self.schedules:
            for due in _due_times(schedule.cron, self._last_checked, now):
                claim = f"scheduler:fired:{schedule.job}:{int(due.timestamp())}"
                if await self.kv.put_if_absent(claim, self.instance_id, 3600):
                    self.fire(schedule.job)
                    fired.append((schedule.job, due))
        self._last_checked = now
        return fired

    async def run(self, stop: asyncio.Event) -> None:
        log.info("scheduler_started", instance=self.instance_id, jobs=len(self.schedules))
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:  # Redis blip: keep ticking, leadership is re-checked next time
                log.exception("scheduler_tick_failed")
                self.is_leader = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.tick_seconds)
        if self.is_leader and await self.kv.get(LEADER_KEY) == self.instance_id:
            await self.kv.delete(LEADER_KEY)  # hand over at once instead of after the TTL


def _due_times(cron: str, after: datetime, until: datetime) -> list[datetime]:
    times: list[datetime] = []
    iterator = croniter(cron, after)
    while True:
        due: datetime = iterator.get_next(datetime)
        if due > until:
            return times
        times.append(due)
