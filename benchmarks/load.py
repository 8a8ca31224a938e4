"""Load generators: closed loop (N calls, a fixed number in flight) and open loop (calls
started at a fixed rate whatever the answers do). Both count the CPU they use themselves, so
the benchmark can show that the load generator is not what limits a figure."""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


def own_cpu() -> float:
    """CPU seconds this process (the load generator) used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pct(values: list[float], q: float) -> float:
    """The q-quantile of `values` (seconds) in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


@dataclass
class Result:
    calls: int
    seconds: float
    latencies: list[float]
    generator_cpu: float  # CPU seconds the load generator used meanwhile
    errors: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    def figures(self) -> dict[str, float]:
        return {
            "per_second": round(self.rate, 1),
            "p50_ms": round(pct(self.latencies, 0.5), 2),
            "p99_ms": round(pct(self.latencies, 0.99), 2),
            "errors": self.errors,
            # The load generator's CPU per call, and its share of the two cores while it ran.
            "generator_cpu_us_per_call": round(self.generator_cpu * 1e6 / max(self.calls, 1), 1),
            "generator_cpu_share": round(self.generator_cpu / self.seconds, 3)
            if self.seconds
            else 0.0,
        }


async def closed(n: int, concurrency: int, call: Callable[[int], Awaitable[Any]]) -> Result:
    """`call(i)` for i in 0..n-1, `concurrency` at a time."""
    latencies: list[float] = []
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            t = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - t)

    cpu = own_cpu()
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(n, time.perf_counter() - start, latencies, own_cpu() - cpu)


async def open_loop(
    rate: float,
    seconds: float,
    call: Callable[[int], Awaitable[Any]],
    tick: Callable[[float], None] | None = None,
) -> Result:
    """Start `call(i)` every 1/rate seconds for `seconds`, however long the calls take, and
    wait for all of them; `tick(elapsed)` runs about twice a second meanwhile (sampling)."""
    n = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int) -> None:
        nonlocal errors
        t = time.perf_counter()
        try:
            await call(i)
        except Exception:
            errors += 1
            return
        latencies.append(time.perf_counter() - t)

    cpu = own_cpu()
    start = time.perf_counter()
    next_tick = 0.5
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        elapsed = time.perf_counter() - start
        if tick is not None and elapsed >= next_tick:
            tick(elapsed)
            next_tick += 0.5
    sent = time.perf_counter() - start
    await asyncio.gather(*tasks)
    result = Result(n, sent, latencies, own_cpu() - cpu, errors)
    result.extra["send_seconds"] = sent
    return result
