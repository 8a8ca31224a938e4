"""Periodic tasks: the one loop behind everything a service does on a timer (the outbox relay's
sweep, deadlines, the fake provider's auto-approval, housekeeping, backlog metrics).

A task runs its work every `interval` seconds until the service stops. The work returns how
much it did: a count that reaches `batch` (a full batch) runs it again at once, and a nonzero
count is logged with `report`. `wake()` runs it now, `wake(after)` that many seconds from now,
from any thread. A failure is logged and
retried after the interval, or sooner with `backoff` (doubling from 0.1 s up to it).

With a `linger`, a run that follows one that did more than one thing (work is arriving
together) first waits that long, so that what arrives meanwhile joins it: fewer, larger rounds
under load, and no wait when work comes one piece at a time (`busy`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Awaitable, Callable
from typing import cast

log = logging.getLogger(__name__)

Work = Callable[[], int] | Callable[[], Awaitable[int]]


class Periodic:
    def __init__(
        self,
        name: str,
        interval: float,
        work: Work,
        *,
        report: str = "",
        batch: int = 0,
        backoff: float = 0.0,
        jitter: float = 0.0,
        wait_first: bool = False,
        linger: float = 0.0,
    ) -> None:
        """`work` is a blocking function (run in a worker thread) or a coroutine function;
        `report` a log message with one %d; `jitter` a fraction of the interval by which each
        wait varies; `wait_first` waits an interval before the first run."""
        self.name = name
        self.interval = interval
        self.work = work
        self.report = report
        self.batch = batch
        self.backoff = backoff
        self.jitter = jitter
        self.wait_first = wait_first
        self.linger = linger
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self, after: float = 0.0) -> None:
        """Run the work now, or in `after` seconds (if it is waiting then). Safe to call from
        any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            if after > 0:
                loop.call_soon_threadsafe(loop.call_later, after, self._wake.set)
            else:
                loop.call_soon_threadsafe(self._wake.set)

    async def run(self, stopping: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        if self.wait_first:
            await self._pause(stopping, self.interval)
        failures = 0
        linger = False
        while not stopping.is_set():
            if linger:
                await asyncio.sleep(self.linger)
            self._wake.clear()  # a wake-up during the work runs it again
            try:
                count = await self._run_work()
            except Exception as exc:
                failures += 1
                # Doubling from 0.1 s up to `backoff` (the exponent capped: after a long
                # outage 2 ** failures would overflow a float and end the task).
                delay = min(0.1 * 2 ** min(failures - 1, 30), self.backoff) or self.interval
                log.warning("%s failed: %r; again in %.1fs", self.name, exc, delay)
                await self._pause(stopping, delay)
                continue
            failures = 0
            linger = bool(self.linger) and busy(count, self.batch)
            if count and self.report:
                log.info(self.report, count)
            if not (self.batch and count >= self.batch):
                await self._pause(stopping, self.interval)

    async def _run_work(self) -> int:
        if inspect.iscoroutinefunction(self.work):
            return await cast(Callable[[], Awaitable[int]], self.work)()
        return await asyncio.to_thread(cast(Callable[[], int], self.work))

    async def _pause(self, stopping: asyncio.Event, seconds: float) -> None:
        """Wait `seconds` (with jitter), or less if woken or stopping."""
        seconds *= random.uniform(1 - self.jitter, 1 + self.jitter) if self.jitter else 1
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stopping.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


def busy(count: int, batch: int = 0) -> bool:
    """Whether a round that handled `count` things (of at most `batch`, 0 = no limit) says work
    is arriving together, so the next round should linger: more than one, but not a full
    batch (a backlog, which is worked off at once)."""
    return count > 1 and not (batch and count >= batch)
