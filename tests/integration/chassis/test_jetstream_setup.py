"""JetStream set-up is idempotent, and a changed configuration is applied."""

import dataclasses

import nats

from chassis.messaging import jetstream
from orders.entrypoints.events import PAYMENT_EVENTS
from payment.entrypoints.events import ORDER_EVENTS


async def test_setup_twice_changes_nothing_and_changes_are_applied(nats_server):
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    try:
        settings = jetstream.StreamSettings()
        first = await jetstream.ensure_streams(js, settings)
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
        before = {s.name: (await js.stream_info(s.name)).created for s in jetstream.STREAMS}
        consumer_before = await js.consumer_info("ORDERS", "payment-order-events")

        assert await jetstream.ensure_streams(js, settings) == []
        assert await jetstream.ensure_consumer(js, ORDER_EVENTS) == ""
        assert {s.name: (await js.stream_info(s.name)).created for s in jetstream.STREAMS} == before
        consumer_after = await js.consumer_info("ORDERS", "payment-order-events")
        assert consumer_after.created == consumer_before.created
        assert consumer_after.config == consumer_before.config

        changed = dataclasses.replace(ORDER_EVENTS, max_deliver=9)
        assert (
            await jetstream.ensure_consumer(js, changed)
            == "updated consumer ORDERS/payment-order-events"
        )
        assert (await js.consumer_info("ORDERS", "payment-order-events")).config.max_deliver == 9
        assert await jetstream.ensure_streams(
            js, dataclasses.replace(settings, duplicate_window_seconds=60)
        ) == ["updated stream ORDERS", "updated stream PAYMENTS", "updated stream DEADLETTER"]
    finally:
        await nc.close()
