"""The periodic task: runs on its interval, again at once after a full batch, sooner when
woken, and keeps going after a failure."""

import asyncio
import itertools
import threading
import time

from chassis.periodic import Periodic, busy
from tests.support.waiting import until


async def test_a_full_batch_runs_again_at_once_and_a_failure_is_retried():
    results: list[int | Exception] = [10, 10, 3, RuntimeError("database away"), 0]
    runs: list[float] = []
    stopping = asyncio.Event()

    async def work() -> int:
        runs.append(time.monotonic())
        if not results:
            stopping.set()
            return 0
        result = results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    task = Periodic("test", 0.2, work, batch=10, backoff=0.05)
    await asyncio.wait_for(task.run(stopping), 5)
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    assert len(runs) == 6, runs
    assert gaps[0] < 0.1 and gaps[1] < 0.1, f"full batches run again at once: {gaps}"
    assert gaps[2] >= 0.15, f"a short batch waits the interval: {gaps}"
    assert gaps[3] < 0.15, f"a failure is retried after the backoff, not the interval: {gaps}"


async def test_wake_runs_the_work_before_the_interval_ends():
    stopping = asyncio.Event()
    ran = [threading.Event(), threading.Event()]
    runs = 0

    def work() -> int:  # blocking work runs in a worker thread
        nonlocal runs
        ran[min(runs, 1)].set()
        runs += 1
        return 0

    task = Periodic("test", 30, work)
    running = asyncio.create_task(task.run(stopping))
    assert await asyncio.to_thread(ran[0].wait, 5), "the first run starts at once"
    task.wake()
    assert await asyncio.to_thread(ran[1].wait, 5), "woken: a second run within the 30 s interval"
    stopping.set()
    await asyncio.wait_for(running, 5)
    assert runs == 2


async def test_a_delayed_wake_runs_the_work_that_much_later_and_not_before():
    stopping = asyncio.Event()
    runs: list[float] = []
    second = asyncio.Event()

    async def work() -> int:
        runs.append(time.monotonic())
        if len(runs) == 2:
            second.set()
        return 0

    task = Periodic("test", 30, work)
    running = asyncio.create_task(task.run(stopping))
    await until(lambda: runs, 5, "the first run")
    woken = time.monotonic()
    await asyncio.to_thread(task.wake, 0.3)  # from another thread, as the effects call it
    await asyncio.wait_for(second.wait(), 5)
    stopping.set()
    await asyncio.wait_for(running, 5)
    assert 0.3 <= runs[1] - woken < 5, f"expected the second run 0.3 s after the wake: {runs}"


async def test_a_long_outage_does_not_end_the_task():
    """More than a thousand failures in a row (a long outage, retried every few seconds): the
    backoff stays at its cap and the task keeps trying (2 ** failures once overflowed)."""
    failures = 1100
    stopping = asyncio.Event()
    calls = 0

    async def work() -> int:
        nonlocal calls
        calls += 1
        if calls <= failures:
            raise RuntimeError("database away")
        stopping.set()
        return 0

    task = Periodic("test", 10, work, backoff=1e-6)
    await asyncio.wait_for(task.run(stopping), 30)
    assert calls == failures + 1


def test_busy_means_more_than_one_and_less_than_a_full_batch():
    assert [busy(n) for n in (0, 1, 2, 500)] == [False, False, True, True]
    assert [busy(n, batch=10) for n in (1, 2, 9, 10)] == [False, True, True, False]


async def test_a_round_after_a_busy_one_lingers_and_one_after_a_single_thing_does_not():
    """Woken at once after each round: after a round of 3 the next waits the linger (what
    arrives meanwhile joins it); after a round of 1 the next starts at once."""
    counts = [3, 1, 1]
    runs: list[float] = []
    stopping = asyncio.Event()
    task: Periodic

    async def work() -> int:
        runs.append(time.monotonic())
        if not counts:
            stopping.set()
            return 0
        task.wake()  # more work is already waiting
        return counts.pop(0)

    task = Periodic("test", 30, work, linger=0.3)
    await asyncio.wait_for(task.run(stopping), 5)
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    assert len(runs) == 4, runs
    assert gaps[0] >= 0.3, f"after a round of 3: lingers {gaps}"
    assert gaps[1] < 0.2 and gaps[2] < 0.2, f"after a round of 1: at once {gaps}"
