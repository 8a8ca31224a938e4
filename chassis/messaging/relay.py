"""The outbox relay: publishes outbox rows to JetStream, then marks them published.

It runs in the service's workers. It wakes right after a commit that wrote events: at once
for a commit in its own process, and on a core NATS message (`RelayWake`, nothing stored) for
a commit in a server process; it also sweeps every `sweep_interval` seconds (a wake-up lost
while NATS was away, rows left by a crash). Rows are
claimed with `FOR UPDATE SKIP LOCKED`, so several relays never publish the same row at the
same time; a row is marked published only after JetStream acknowledged it. Each message
carries `Nats-Msg-Id` = event id, so a row published twice (crash between the ack and the
commit) is dropped by JetStream's duplicate window, and after it by the consumers' inbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import sqlalchemy as sa
from nats.aio.client import Client as NATS
from sqlalchemy.engine import Connection, Engine

from chassis import metrics
from chassis.messaging import codec
from chassis.messaging.schema import outbox
from chassis.periodic import Periodic
from chassis.repository import Prepared

log = logging.getLogger(__name__)


_CLAIM = Prepared(
    "SELECT id, event_id, event_type, subject, payload, headers FROM outbox "
    "WHERE published_at IS NULL ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED"
)
_MARK = Prepared("UPDATE outbox SET published_at = now() WHERE id = ANY(%(ids)s::bigint[])")


def wake_subject(service: str) -> str:
    return f"comanda.outbox.{service}"


class RelayWake:
    """What a server process calls after a commit that wrote outbox rows (from any thread): a
    core NATS message that wakes the workers' relays. Calls made while one is on its way are
    folded into it."""

    def __init__(self, nc: NATS, service: str) -> None:
        self.nc = nc
        self.subject = wake_subject(service)
        self.loop = asyncio.get_running_loop()
        self._pending = False

    def send(self) -> None:
        if self._pending or self.loop.is_closed():
            return
        self._pending = True
        self.loop.call_soon_threadsafe(self._publish)

    def _publish(self) -> None:
        self._pending = False
        if self.nc.is_connected:
            task = asyncio.ensure_future(self.nc.publish(self.subject, b""))
            task.add_done_callback(_quiet)


def _quiet(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("relay wake-up not sent: %r", task.exception())


class PublishFailed(Exception):
    pass


class OutboxRelay:
    def __init__(
        self,
        engine: Engine,
        nc: NATS,
        service: str,
        batch_size: int = 256,
        sweep_interval: float = 1.0,
        publish_timeout: float = 5.0,
        max_backoff: float = 5.0,
        linger: float = 0.0,
    ) -> None:
        self.engine = engine
        self.nc = nc
        self.js = nc.jetstream()
        self.service = service
        self.batch_size = batch_size
        self.publish_timeout = publish_timeout
        self.task = Periodic(
            "outbox relay",
            sweep_interval,
            self.publish_once,
            batch=batch_size,
            backoff=max_backoff,
            linger=linger,
        )

    def wake(self) -> None:
        """Ask the relay to publish now. Safe to call from any thread."""
        self.task.wake()

    async def listen(self, stopping: asyncio.Event) -> None:
        """Wake on the service's servers' `RelayWake` messages until `stopping` is set."""

        async def woken(_msg: Any) -> None:
            self.wake()

        # A queue group: each wake-up goes to one worker's relay, not to all of them (the
        # others would claim nothing and roll back).
        subscription = await self.nc.subscribe(wake_subject(self.service), queue="relays", cb=woken)
        try:
            await stopping.wait()
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def publish_once(self) -> int:
        """Publish one batch; returns how many rows it claimed. The batch is published at once
        and its acks awaited together; two thread hops: claim, then mark and commit."""
        if not self.nc.is_connected:
            raise PublishFailed("NATS is not connected")
        conn, rows = await asyncio.to_thread(self._claim)
        if conn is None:
            return 0
        done: list[Any] = []
        try:
            futures = []
            for row in rows:
                headers = {
                    codec.MSG_ID_HEADER: str(row.event_id),
                    codec.EVENT_TYPE_HEADER: row.event_type,
                    **row.headers,
                }
                futures.append(
                    await self.js.publish_async(row.subject, row.payload, headers=headers)
                )
            results = await asyncio.wait_for(
                asyncio.gather(*futures, return_exceptions=True), self.publish_timeout
            )
        except TimeoutError:
            raise PublishFailed(f"no JetStream ack within {self.publish_timeout}s") from None
        else:
            done = [
                row
                for row, result in zip(rows, results, strict=True)
                if not isinstance(result, BaseException)
            ]
        finally:
            await asyncio.to_thread(self._finish, conn, [row.id for row in done])
        for row in done:
            metrics.EVENTS_PUBLISHED.labels(self.service, row.event_type).inc()
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise PublishFailed(f"{len(failures)} of {len(rows)} publishes failed: {failures[0]!r}")
        return len(rows)

    def _claim(self) -> tuple[Connection | None, list[Any]]:
        """A transaction holding the oldest unpublished rows (skipping those another relay
        holds), or (None, []) when there are none."""
        conn = self.engine.connect()
        try:
            rows = list(_CLAIM.run(conn, {"limit": self.batch_size}))
        except BaseException:
            conn.close()
            raise
        if not rows:
            conn.close()  # rolls back the transaction that read nothing
            return None, []
        return conn, rows

    @staticmethod
    def _finish(conn: Connection, published: list[int]) -> None:
        """Mark the published rows and end the transaction (releasing the others)."""
        try:
            if published:
                _MARK.run(conn, {"ids": published})
                conn.commit()
        finally:
            conn.close()

    def backlog(self) -> tuple[int, float]:
        """(unpublished rows, age in seconds of the oldest), for metrics."""
        with self.engine.connect() as conn:
            count, oldest = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.coalesce(
                        sa.func.extract("epoch", sa.func.now() - sa.func.min(outbox.c.created_at)),
                        0,
                    ),
                ).where(outbox.c.published_at.is_(None))
            ).one()
        return int(count), float(oldest)
