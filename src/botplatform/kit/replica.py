"""A streaming replica for reads that may lag a moment (lists, analytics, exports).

    DATABASE_REPLICA_URL=postgresql://app@replica:5432/botplatform
    DATABASE_REPLICA_MAX_LAG_SECONDS=2

Endpoints opt in (`db.reads_replica`); everything else, and every write, stays on the
primary. The replica answers only while it is reachable, still a standby, and at most
`max_lag` seconds behind: each process checks at most once a second (the primary's WAL
position against the replica's replayed one; when they differ, the age of the replica's last
replayed transaction). Otherwise the read goes to the primary, so a replica that is down,
promoted or far behind costs a read nothing but the check.

Read-your-writes: a caller that wrote (any request other than a read) is kept on the primary
for `max_lag` + one check interval afterwards. The replica cannot show an older state than
that window allows, so a client never reads a list that lacks what it has just written."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from botplatform.kit.logging import get_logger

log = get_logger("botplatform.replica")

CHECK_EVERY_SECONDS = 1.0
CHECK_TIMEOUT_SECONDS = 2.0
_PRIMARY_POSITION = text("SELECT pg_current_wal_lsn()::text")
_REPLICA_STATE = text(
    "SELECT pg_is_in_recovery(),"
    " pg_wal_lsn_diff(CAST(CAST(:primary AS text) AS pg_lsn), pg_last_wal_replay_lsn()),"
    " EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())"
)


class Replica:
    def __init__(self, engine: AsyncEngine, primary: AsyncEngine, max_lag_seconds: float) -> None:
        self.engine = engine
        self.max_lag_seconds = max_lag_seconds
        self._primary = primary
        self._usable = False
        self._checked_at = -math.inf
        self._checking: asyncio.Task[None] | None = None
        #: Seconds behind the primary at the last check (None: not reachable, or no standby).
        self.lag_seconds: float | None = None

    @property
    def sticky_seconds(self) -> int:
        """How long a caller that wrote stays on the primary."""
        return math.ceil(self.max_lag_seconds + CHECK_EVERY_SECONDS)

    async def usable(self) -> bool:
        """May a read go to the replica now? (Checked again once the last check is a second
        old; callers meanwhile share one check.)"""
        if time.monotonic() - self._checked_at >= CHECK_EVERY_SECONDS:
            if self._checking is None or self._checking.done():
                self._checking = asyncio.ensure_future(self._check())
            with contextlib.suppress(Exception):
                await asyncio.shield(self._checking)
        return self._usable

    def mark_down(self) -> None:
        """A read could not reach the replica: the primary answers until the next check."""
        self._usable, self._checked_at, self.lag_seconds = False, time.monotonic(), None

    async def _check(self) -> None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                lag = await self._lag()
        except Exception as error:  # unreachable, or not a standby: the primary answers
            if self._usable or self._checked_at == -math.inf:
                log.warning("replica_unavailable", error=type(error).__name__)
            lag = None
        usable = lag is not None and lag <= self.max_lag_seconds
        if usable != self._usable:
            log.info("replica_in_use" if usable else "replica_not_used", lag_seconds=lag)
        self._usable, self.lag_seconds, self._checked_at = usable, lag, time.monotonic()

    async def _lag(self) -> float | None:
        async with self._primary.connect() as primary:
            position = (await primary.execute(_PRIMARY_POSITION)).scalar_one()
        async with self.engine.connect() as replica:
            row = (await replica.execute(_REPLICA_STATE, {"primary": position})).one()
        in_recovery, bytes_behind, replay_age = row
        if not in_recovery:
            return None  # promoted, or never a standby: not a replica of this primary
        if bytes_behind is None or bytes_behind <= 0:
            return 0.0  # replayed everything the primary had written when we asked
        return None if replay_age is None else max(0.0, float(replay_age))


def caller_key(authorization: str | None, cookie: str | None) -> str | None:
    """Who is asking, for read-your-writes: their credentials, hashed (never stored)."""
    credentials = authorization or cookie
    if not credentials:
        return None
    return "replica-sticky:" + hashlib.sha256(credentials.encode()).hexdigest()[:32]
