"""The consumer against real PostgreSQL and JetStream: two replicas' overlapping batches take
their row locks in one order (no deadlock), and a lock conflict it could not avoid is retried
at once without spending a delivery."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import uuid

import nats
import pytest

from chassis import metrics
from chassis.messagebus import MessageBus
from chassis.messaging import codec, jetstream
from chassis.messaging.consumer import DLQ_DELIVERIES, DLQ_REASON, EventConsumer, subscription
from orders.domain import model
from orders.service_layer import handlers
from orders.service_layer.unit_of_work import CODEC, OrdersUnitOfWork
from payment.domain.events import PaymentCreated
from payment.service_layer.unit_of_work import CODEC as PAYMENT_CODEC
from tests.integration.orders.helpers import check_out
from tests.support.servers import connect
from tests.support.waiting import wait_for

PAYMENT_EVENTS = subscription(handlers.CONSUMER, CODEC, list(handlers.HANDLERS))


def replica(nc, engine, after_each=None) -> EventConsumer:
    """One orders replica's consumer of payment events; `after_each(uow)` runs after each
    event's handler."""

    def wrap(handler):
        def handle(event, uow):
            outcome = handler(event, uow)
            if after_each is not None:
                after_each(uow)
            return outcome

        return handle

    bus = MessageBus[OrdersUnitOfWork]({t: wrap(h) for t, h in handlers.HANDLERS.items()})
    return EventConsumer(nc, PAYMENT_EVENTS, bus, lambda: OrdersUnitOfWork(engine), CODEC, "orders")


def conflicts() -> float:
    return metrics.CONSUMER_CONFLICTS.labels("orders", PAYMENT_EVENTS.durable)._value.get()


def two_orders(engine) -> list[model.Order]:
    """Two PENDING_PAYMENT orders, sorted by id (the consumer's lock order)."""
    orders = [check_out(lambda: OrdersUnitOfWork(engine)) for _ in range(2)]
    return sorted(orders, key=lambda o: o.id)


async def fetch(nats_url: str, orders: list[str]):
    """Publish a PaymentCreated per order id (in this order) and fetch them back as
    JetStream messages of the orders service's consumer; returns (client, messages)."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    streams = jetstream.streams([*CODEC.subjects, *PAYMENT_CODEC.subjects])
    await jetstream.ensure_streams(js, jetstream.StreamSettings(), streams)
    await jetstream.ensure_consumer(js, PAYMENT_EVENTS)
    for order_id in orders:
        envelope = PAYMENT_CODEC.encode(
            PaymentCreated(
                order_id=order_id,
                payment_id=str(uuid.uuid4()),
                amount_centavos=100,
                expire_time=None,
            )
        )
        await js.publish(
            envelope.subject,
            envelope.payload,
            headers={
                codec.EVENT_TYPE_HEADER: envelope.event_type,
                codec.MSG_ID_HEADER: envelope.event_id,
            },
        )
    sub = await js.pull_subscribe_bind(durable=PAYMENT_EVENTS.durable, stream="PAYMENTS")
    messages = await sub.fetch(len(orders), timeout=5)
    assert len(messages) == len(orders)
    return nc, messages


async def settled(nc) -> tuple[int, int]:
    """(messages not acked, messages redelivered) once the acks arrived (5 s at most)."""
    for _ in range(100):
        await nc.flush()
        info = await nc.jetstream().consumer_info("PAYMENTS", PAYMENT_EVENTS.durable)
        if info.num_ack_pending == 0:
            break
        await asyncio.sleep(0.05)
    return info.num_ack_pending, info.num_redelivered


@pytest.mark.parametrize("arrival", ["same", "opposite"])
async def test_overlapping_batches_of_two_replicas_never_deadlock(
    orders_engine, nats_server, arrival
):
    first, second = two_orders(orders_engine)
    ids = [first.id, second.id, second.id, first.id]
    if arrival == "same":
        ids = [first.id, second.id, first.id, second.id]
    nc, messages = await fetch(nats_server.url, ids)
    # Each transaction pauses after its first event until the other one got that far too
    # (or for 2 s): locking in arrival order, the two would then each hold one order and
    # want the other's (a deadlock); in the consumer's order the second one waits instead.
    barrier = threading.Barrier(2)
    started: set[int] = set()

    def pause_after_the_first(uow) -> None:
        if id(uow) not in started:
            started.add(id(uow))
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=2)

    before = conflicts()
    try:
        await asyncio.gather(
            replica(nc, orders_engine, pause_after_the_first)._process_batch(messages[:2]),
            replica(nc, orders_engine, pause_after_the_first)._process_batch(messages[2:]),
        )
        assert conflicts() == before, "no deadlock, no serialization failure"
        assert await settled(nc) == (0, 0), "every message acked on its first delivery"
    finally:
        await nc.close()


async def test_a_lock_conflict_is_retried_at_once_without_spending_a_delivery(
    orders_engine, nats_server
):
    first, second = two_orders(orders_engine)
    nc, messages = await fetch(nats_server.url, [first.id, second.id])
    other = connect(orders_engine.url.render_as_string(hide_password=False))
    lock = "SELECT id FROM orders WHERE id = %s FOR UPDATE"
    try:
        with other.cursor() as cur:
            # Another transaction holds the second order and will soon want the first, which
            # the consumer takes before it: a real deadlock. This side waits longer before
            # looking for one, so PostgreSQL aborts the consumer's transaction.
            cur.execute("SET deadlock_timeout = '10s'")
            cur.execute(lock, (second.id,))
            consumer = replica(nc, orders_engine)
            before = conflicts()
            applying = asyncio.create_task(consumer._process_batch(messages))

            def consumer_waits() -> bool:
                with other.cursor() as probe:
                    probe.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
                    (waiting,) = probe.fetchone() or (0,)
                    return bool(waiting)

            await asyncio.to_thread(wait_for, consumer_waits, 10, "the consumer to wait")

            def deadlock_then_commit() -> None:
                cur.execute(lock, (first.id,))
                other.commit()

            await asyncio.to_thread(deadlock_then_commit)
            await asyncio.wait_for(applying, 20)
        assert conflicts() == before + 1, "the consumer lost the deadlock once"
        assert await settled(nc) == (0, 0), "both acked, neither redelivered"
        with OrdersUnitOfWork(orders_engine).reading() as uow:
            for order in (first, second):
                stored = uow.orders.get(order.id)
                assert stored is not None
                assert stored.payment_status is model.PaymentStatus.PENDING
    finally:
        other.close()
        await nc.close()


async def test_the_last_delivery_of_a_never_answered_message_is_dead_lettered_unapplied(
    orders_engine, nats_server
):
    """A message whose every delivery ended without an answer (its process died on it, say)
    reaches JetStream's last delivery: it is dead-lettered there, not applied (applying could
    kill the process once more, and then nothing would ever answer it)."""
    (order, _) = two_orders(orders_engine)
    spec = dataclasses.replace(PAYMENT_EVENTS, unanswered_deliveries=3)
    nc, (first,) = await fetch(nats_server.url, [order.id])
    js = nc.jetstream()
    try:
        await jetstream.ensure_consumer(js, spec)
        await first.nak()  # the first two deliveries: never answered (nak = redeliver now)
        sub = await js.pull_subscribe_bind(durable=spec.durable, stream="PAYMENTS")
        (second,) = await sub.fetch(1, timeout=5)
        await second.nak()
        (last,) = await sub.fetch(1, timeout=5)
        assert last.metadata.num_delivered == 3

        bus = MessageBus[OrdersUnitOfWork](handlers.HANDLERS)
        consumer = EventConsumer(
            nc, spec, bus, lambda: OrdersUnitOfWork(orders_engine), CODEC, "orders"
        )
        await consumer._process_batch([last])

        letter = await js.get_last_msg("DEADLETTER", f"deadletter.{spec.durable}")
        assert letter.headers is not None
        assert letter.headers[DLQ_DELIVERIES] == "3"
        assert "without an answer" in letter.headers[DLQ_REASON]
        assert letter.data == last.data
        pending, _ = await settled(nc)
        assert pending == 0, "terminated"
        with OrdersUnitOfWork(orders_engine).reading() as uow:
            stored = uow.orders.get(order.id)
            assert stored is not None
            assert stored.payment_status is model.PaymentStatus.UNSPECIFIED, "not applied"
            assert stored.payment_id is None
    finally:
        await nc.close()
