"""The board and kitchen streams' pacing: what is news goes out as it comes, and a quiet
stream sends an empty message (a heartbeat) every `heartbeat` seconds."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from chassis.live import Subscription
from orders.entrypoints.grpc_api import _changes


async def test_a_quiet_stream_sends_heartbeats_and_news_goes_out_at_once():
    updates: Subscription[Any] = Subscription()
    stream = _changes(updates, heartbeat=0.2)
    started = time.monotonic()
    assert await asyncio.wait_for(anext(stream), 2) == []
    assert 0.15 <= time.monotonic() - started < 1.0, "a heartbeat after about 0.2 s"
    order = SimpleNamespace(id="o-1")
    updates.offer("o-1", order)
    sent = time.monotonic()
    assert await asyncio.wait_for(anext(stream), 2) == [order]
    assert time.monotonic() - sent < 0.1, "news is not held back"


async def test_changes_that_are_no_news_do_not_delay_the_heartbeat():
    updates: Subscription[Any] = Subscription()
    stream = _changes(updates, heartbeat=0.3, news=lambda orders: [])
    started = time.monotonic()
    next_message = asyncio.ensure_future(anext(stream))
    for _ in range(5):  # offered, but filtered out
        await asyncio.sleep(0.04)
        updates.offer("o-1", SimpleNamespace(id="o-1"))
    assert await asyncio.wait_for(next_message, 2) == []
    assert time.monotonic() - started < 0.3 + 0.25, "the heartbeat came on time"
