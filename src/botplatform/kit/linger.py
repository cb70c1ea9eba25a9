"""The wait of a group commit that lets a small group fill (the webhook intake's groups, the
worker's inbound batches): one waiter at a time, for at most a set time, and no longer than
it takes the group to be large enough.

While one waits (`active`), the others neither start a group of their own nor take what is
waiting: that is the waiting group, filling. A writer that took it anyway would leave the
lingering one a group of one or two, and the timer would buy nothing (see docs/decisions.md,
"Lingering groups").

A waiter may first ask whether waiting pays (`pays`): at the rate the last arrivals came
in, at least one more is expected within the wait. Below that rate a lone arrival would wait
for nothing, as a rule, and its answer would be late by the whole wait. The worker's batches
ask (their jobs are the intake's groups, which have lingered already: see docs/decisions.md,
"Lingering groups"); the intake does not, so a customer's reply waits the same at any low
rate, whatever the neighbours send.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

#: How many of the last arrivals the rate is judged by.
EVIDENCE = 8
_now = time.monotonic


class Arrivals:
    """The times of the last EVIDENCE arrivals of something (jobs, webhooks), and what they
    say about the next one."""

    def __init__(self) -> None:
        self._times: deque[float] = deque(maxlen=EVIDENCE)

    def arrived(self) -> None:
        self._times.append(_now())

    def mean_gap(self) -> float | None:
        """The mean time between the last EVIDENCE arrivals, counted up to now (so a pause
        lengthens it); None until that many were seen."""
        if len(self._times) < EVIDENCE:
            return None
        return (_now() - self._times[0]) / EVIDENCE


class GroupLinger:
    def __init__(self) -> None:
        self._wake: asyncio.Future[None] | None = None
        self._arrivals = Arrivals()

    def arrived(self) -> None:
        """Notes one arrival (a webhook, a job): what `pays` judges by."""
        self._arrivals.arrived()

    def pays(self, seconds: float) -> bool:
        """Whether waiting `seconds` is likely to bring another arrival: at the rate of the
        last EVIDENCE arrivals (counted up to now, so a pause lowers it), at least one is
        expected meanwhile. Before that many were seen (a process just started), it is
        assumed to."""
        gap = self._arrivals.mean_gap()
        return gap is None or gap <= seconds

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
