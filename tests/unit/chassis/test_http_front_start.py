"""How a server starts its HTTP API (`chassis.service._start_front`), with fronts of this
test's own: it goes on once the front takes requests, and a front that ends before that stops
the start-up with a one-line reason. (The real front: tests/integration/chassis.)"""

from __future__ import annotations

import asyncio
import socket
from types import SimpleNamespace
from typing import Any

import pytest

from chassis.service import StartupError, _start_front

SERVER: Any = SimpleNamespace(handlers={"/t.S/M": object()})


class Front:
    def __init__(self, start: bool, fail: Exception | None = None) -> None:
        self.start, self.fail = start, fail
        self.handlers: Any = None

    def settings(self) -> list[tuple[str, str, str]]:
        return []

    async def serve(
        self,
        service: str,
        handlers: Any,
        sock: socket.socket,
        started: asyncio.Event,
        stopping: asyncio.Event,
    ) -> None:
        self.handlers = handlers
        if self.fail is not None:
            raise self.fail
        if self.start:
            started.set()
            await stopping.wait()


async def test_a_front_that_takes_requests_runs_until_stopping() -> None:
    front, stopping = Front(start=True), asyncio.Event()
    with socket.socket() as sock:
        task = await _start_front(front, "orders", SERVER, sock, stopping)
        assert not task.done() and front.handlers is SERVER.handlers
        stopping.set()
        async with asyncio.timeout(2):
            await task


@pytest.mark.parametrize(
    ("fail", "reason"),
    [(None, "(see the lines above)"), (OSError("no route table"), "no route table")],
)
async def test_a_front_that_ends_before_taking_requests_stops_the_start_up(
    fail: Exception | None, reason: str
) -> None:
    with socket.socket() as sock, pytest.raises(StartupError) as raised:
        await _start_front(Front(start=False, fail=fail), "orders", SERVER, sock, asyncio.Event())
    assert "the HTTP API did not start" in str(raised.value) and reason in str(raised.value)
