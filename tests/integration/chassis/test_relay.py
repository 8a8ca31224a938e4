"""The outbox relay on real PostgreSQL and JetStream: publish-then-mark, replicas, NATS away."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa

from chassis.events import Aggregate
from chassis.messaging import jetstream
from chassis.messaging.relay import OutboxRelay, PublishFailed
from chassis.messaging.schema import outbox
from orders.domain import events
from orders.domain.model import Actor, OrderStatus
from orders.service_layer.unit_of_work import CODEC, OrdersUnitOfWork

STREAMS = jetstream.streams(CODEC.subjects)


def write_events(engine: sa.Engine, count: int) -> None:
    """`count` events in the outbox, recorded by an aggregate the unit of work tracks."""
    recorder = Aggregate()
    with OrdersUnitOfWork(engine) as uow:
        uow.track(recorder)
        for i in range(count):
            recorder.record(
                events.OrderStatusChanged(
                    order_id=f"order-{i}",
                    from_status=OrderStatus.RECEIVED,
                    to_status=OrderStatus.IN_PREPARATION,
                    actor=Actor.KITCHEN,
                )
            )
        uow.commit()


async def wait_connected(nc: Any, timeout: float) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while not nc.is_connected:
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def unpublished(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).where(outbox.c.published_at.is_(None))).scalar()
            or 0
        )


async def test_two_relays_publish_every_row_exactly_once(orders_engine, nats_server):
    write_events(orders_engine, 600)
    clients = [await jetstream.connect(nats_server.url, f"relay-{i}") for i in range(2)]
    try:
        await jetstream.ensure_streams(clients[0].jetstream(), jetstream.StreamSettings(), STREAMS)
        relays = [OutboxRelay(orders_engine, nc, "test", batch_size=50) for nc in clients]

        async def drain(relay: OutboxRelay) -> int:
            total = 0
            while claimed := await relay.publish_once():
                total += claimed
            return total

        claimed = await asyncio.gather(*(drain(r) for r in relays))
        assert sum(claimed) == 600, f"each row claimed once, got {claimed}"
        assert all(c > 0 for c in claimed), f"both relays worked: {claimed}"
        assert unpublished(orders_engine) == 0
        info = await clients[0].jetstream().stream_info("ORDERS")
        assert info.state.messages == 600
    finally:
        for nc in clients:
            await nc.close()


async def test_nothing_is_marked_published_while_nats_is_away(orders_engine, nats_server):
    write_events(orders_engine, 5)
    nc = await jetstream.connect(nats_server.url, "relay")
    try:
        await jetstream.ensure_streams(nc.jetstream(), jetstream.StreamSettings(), STREAMS)
        nats_server.kill()
        relay = OutboxRelay(orders_engine, nc, "test", publish_timeout=1)
        try:
            await relay.publish_once()
            raise AssertionError("publishing without NATS must fail")
        except PublishFailed:
            pass
        assert unpublished(orders_engine) == 5, "rows stay unpublished until JetStream acks them"
        nats_server.restart()
        assert await wait_connected(nc, 15)
        assert await relay.publish_once() == 5
        assert unpublished(orders_engine) == 0
    finally:
        await nc.close()
