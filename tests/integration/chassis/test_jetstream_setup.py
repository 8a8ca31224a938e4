"""JetStream set-up is idempotent, and a changed configuration is applied."""

import dataclasses

import nats

from chassis.messaging import jetstream
from chassis.messaging.consumer import subscription
from orders.service_layer import handlers as orders_handlers
from orders.service_layer.unit_of_work import CODEC
from payment.service_layer import handlers as payment_handlers

STREAMS = jetstream.streams(CODEC.subjects)
PAYMENT_EVENTS = subscription(orders_handlers.CONSUMER, CODEC, list(orders_handlers.HANDLERS))
ORDER_EVENTS = subscription(payment_handlers.CONSUMER, CODEC, list(payment_handlers.HANDLERS))


async def test_setup_twice_changes_nothing_and_changes_are_applied(nats_server):
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    try:
        settings = jetstream.StreamSettings()
        first = await jetstream.ensure_streams(js, settings, STREAMS)
        assert first == [
            "created stream ORDERS",
            "created stream PAYMENTS",
            "created stream DEADLETTER",
        ]
        consumer_actions = [
            await jetstream.ensure_consumer(js, spec) for spec in (PAYMENT_EVENTS, ORDER_EVENTS)
        ]
        assert consumer_actions == [
            "created consumer PAYMENTS/orders-payment-events",
            "created consumer ORDERS/payment-order-events",
        ]
        before = {s.name: (await js.stream_info(s.name)).created for s in STREAMS}
        consumer_before = await js.consumer_info("ORDERS", "payment-order-events")

        assert await jetstream.ensure_streams(js, settings, STREAMS) == []
        assert await jetstream.ensure_consumer(js, ORDER_EVENTS) == ""
        assert {s.name: (await js.stream_info(s.name)).created for s in STREAMS} == before
        consumer_after = await js.consumer_info("ORDERS", "payment-order-events")
        assert consumer_after.created == consumer_before.created
        assert consumer_after.config == consumer_before.config

        changed = dataclasses.replace(ORDER_EVENTS, unanswered_deliveries=9)
        assert (
            await jetstream.ensure_consumer(js, changed)
            == "updated consumer ORDERS/payment-order-events"
        )
        assert (await js.consumer_info("ORDERS", "payment-order-events")).config.max_deliver == 9
        assert await jetstream.ensure_streams(
            js, dataclasses.replace(settings, duplicate_window_seconds=60), STREAMS
        ) == ["updated stream ORDERS", "updated stream PAYMENTS", "updated stream DEADLETTER"]
    finally:
        await nc.close()


def test_streams_and_subscriptions_are_derived_from_the_events_and_the_handlers():
    assert [(s.name, s.subjects) for s in STREAMS] == [
        ("ORDERS", ("orders.v1.>",)),
        ("PAYMENTS", ("payments.v1.>",)),
        ("DEADLETTER", ("deadletter.>",)),
    ]
    assert ORDER_EVENTS.stream == "ORDERS"
    assert ORDER_EVENTS.filter_subjects == (
        "orders.v1.order.created.>",
        "orders.v1.order.cancelled.>",
    ), "payment receives exactly the order events it has handlers for"
    assert PAYMENT_EVENTS.stream == "PAYMENTS"
    assert sorted(PAYMENT_EVENTS.filter_subjects) == sorted(
        f"{CODEC.subject(kind)}.>" for kind in orders_handlers.HANDLERS
    )
    assert len(PAYMENT_EVENTS.filter_subjects) == 6, PAYMENT_EVENTS.filter_subjects
