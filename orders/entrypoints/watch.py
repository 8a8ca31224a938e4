"""Change notifications for WatchOrder, across replicas.

Every transaction that changes an order runs `pg_notify('order_changed', <order id>)`;
PostgreSQL delivers it on commit to every listening connection. Each process keeps one
listening connection (in a thread) and wakes the streams watching that order. If the
listener loses its connection it reconnects; watchers also re-read on a slow timer, so a
missed notification delays an update but never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
from collections import defaultdict

import psycopg2
import psycopg2.extensions
from sqlalchemy.engine import Engine

from orders.adapters.repository import ORDER_CHANGED_CHANNEL

log = logging.getLogger(__name__)


class OrderChanges:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._watchers: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._loop: asyncio.AbstractEventLoop | None = None

    @contextlib.contextmanager
    def watch(self, order_id: str):  # type: ignore[no-untyped-def]
        event = asyncio.Event()
        self._watchers[order_id].add(event)
        try:
            yield event
        finally:
            self._watchers[order_id].discard(event)
            if not self._watchers[order_id]:
                del self._watchers[order_id]

    def _wake(self, order_id: str) -> None:
        for event in self._watchers.get(order_id, ()):
            event.set()

    async def run(self, stopping: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        while not stopping.is_set():
            try:
                await asyncio.to_thread(self._listen, stopping)
            except Exception as exc:
                log.warning(
                    "order change listener: %s; reconnecting", str(exc).strip().splitlines()[:1]
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), 1.0)

    def _listen(self, stopping: asyncio.Event) -> None:
        url = self.engine.url.set(drivername="postgresql")
        conn = psycopg2.connect(url.render_as_string(hide_password=False), connect_timeout=5)
        try:
            conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
            with conn.cursor() as cur:
                cur.execute(f"LISTEN {ORDER_CHANGED_CHANNEL}")
            assert self._loop is not None
            for order_id in list(self._watchers):  # changes missed while reconnecting
                self._loop.call_soon_threadsafe(self._wake, order_id)
            while not stopping.is_set():
                if select.select([conn], [], [], 0.5) == ([], [], []):
                    continue
                conn.poll()
                while conn.notifies:
                    note = conn.notifies.pop(0)
                    if note.payload in self._watchers:  # most changes have no watcher here
                        self._loop.call_soon_threadsafe(self._wake, note.payload)
        finally:
            conn.close()
