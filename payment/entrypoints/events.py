"""The payment service's consumer of order events: each event type to its saga handler."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from chassis.db import UnitOfWork
from chassis.messaging.jetstream import ConsumerSpec
from chassis.outcomes import Outcome
from comanda.events.v1 import events_pb2
from payment.adapters.provider import PaymentProvider
from payment.service_layer import saga
from payment.service_layer.unit_of_work import PaymentUnitOfWork

ORDER_EVENTS = ConsumerSpec(
    stream="ORDERS",
    durable="payment-order-events",
    filter_subjects=("orders.v1.order.created.>", "orders.v1.order.cancelled.>"),
)


def handler(provider: PaymentProvider, expiry: timedelta) -> Callable[[UnitOfWork, Any], Outcome]:
    def handle(uow: UnitOfWork, event: Any) -> Outcome:
        assert isinstance(uow, PaymentUnitOfWork)
        if isinstance(event, events_pb2.OrderCreated):
            return saga.order_created(
                uow, provider, expiry, event.order_id, event.total_centavos, event.event_id
            )
        if isinstance(event, events_pb2.OrderCancelled):
            return saga.order_cancelled(uow, provider, event.order_id, event.event_id)
        return Outcome.ignored(f"{event.DESCRIPTOR.full_name} is not for the payment service")

    return handle
