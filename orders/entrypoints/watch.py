"""Change notifications for WatchOrder, across replicas.

After a transaction that changed an order commits, the `OrderChanged` effect
(`orders.service_layer.handlers.announce_change`) calls `changed(order_id)`: local watchers
wake at once, and a core NATS message on `comanda.live.order.<id>` (not a JetStream subject:
nothing is stored) wakes the watchers of every other replica. Watchers also re-read on a slow
timer, so a lost notification (NATS away) delays an update but never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterator

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

log = logging.getLogger(__name__)

SUBJECT = "comanda.live.order"


class OrderChanges:
    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self._watchers: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._loop: asyncio.AbstractEventLoop | None = None

    @contextlib.contextmanager
    def watch(self, order_id: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._watchers[order_id].add(event)
        try:
            yield event
        finally:
            self._watchers[order_id].discard(event)
            if not self._watchers[order_id]:
                del self._watchers[order_id]

    def changed(self, order_id: str) -> None:
        """An order changed (its transaction committed). Safe to call from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._announce, order_id)

    def _announce(self, order_id: str) -> None:
        self._wake(order_id)
        if self.nc.is_connected:
            task = asyncio.ensure_future(self.nc.publish(f"{SUBJECT}.{order_id}", b""))
            task.add_done_callback(_ignore_failure)

    def _wake(self, order_id: str) -> None:
        for event in self._watchers.get(order_id, ()):
            event.set()

    async def _on_message(self, msg: Msg) -> None:
        self._wake(msg.subject.rsplit(".", 1)[-1])

    async def run(self, stopping: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        subscription = await self.nc.subscribe(f"{SUBJECT}.*", cb=self._on_message)
        try:
            await stopping.wait()
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()


def _ignore_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("live order notification not sent: %r", task.exception())
