"""The wait of a group commit that lets a small group fill (the webhook intake's groups, the
worker's inbound batches): one waiter at a time, for at most a set time, and no longer than
it takes the group to be large enough.

While one waits (`active`), the others neither start a group of their own nor take what is
waiting: that is the waiting group, filling. A writer that took it anyway would leave the
lingering one a group of one or two, and the timer would buy nothing (see docs/decisions.md,
"Lingering groups").
"""

from __future__ import annotations

import asyncio


class GroupLinger:
    def __init__(self) -> None:
        self._wake: asyncio.Future[None] | None = None

    @property
    def active(self) -> bool:
        return self._wake is not None

    async def wait(self, seconds: float) -> None:
        """Waits `seconds`, or less when `end` is called meanwhile."""
        loop = asyncio.get_running_loop()
        wake = self._wake = loop.create_future()
        timer = loop.call_later(seconds, self.end)
        try:
            await wake
        finally:
            timer.cancel()
            self._wake = None

    def end(self) -> None:
        """Ends the wait under way, if any (its group is large enough)."""
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
