"""The orders service's consumer of payment events: each event type to its saga handler."""

from __future__ import annotations

from typing import Any

from chassis.db import UnitOfWork
from chassis.messaging.jetstream import ConsumerSpec
from chassis.outcomes import Outcome
from comanda.events.v1 import events_pb2
from orders.domain.model import PaymentStatus
from orders.service_layer import saga
from orders.service_layer.unit_of_work import OrdersUnitOfWork

# Every payment event: the saga needs approved/declined/expired/refunded, and the others
# keep the order's payment status and timeline complete.
PAYMENT_EVENTS = ConsumerSpec(
    stream="PAYMENTS", durable="orders-payment-events", filter_subjects=("payments.v1.>",)
)


def handle(uow: UnitOfWork, event: Any) -> Outcome:
    assert isinstance(uow, OrdersUnitOfWork)
    if isinstance(event, events_pb2.PaymentCreated):
        return saga.payment_created(uow, event.order_id, event.payment_id)
    if isinstance(event, events_pb2.PaymentApproved):
        return saga.payment_approved(uow, event.order_id, event.payment_id, event.event_id)
    if isinstance(event, events_pb2.PaymentDeclined):
        return saga.payment_failed(
            uow,
            event.order_id,
            event.payment_id,
            PaymentStatus.DECLINED,
            f"payment declined: {event.reason}" if event.reason else "payment declined",
            event.event_id,
        )
    if isinstance(event, events_pb2.PaymentExpired):
        return saga.payment_failed(
            uow,
            event.order_id,
            event.payment_id,
            PaymentStatus.EXPIRED,
            "payment expired",
            event.event_id,
        )
    if isinstance(event, events_pb2.PaymentCancelled):
        return saga.payment_cancelled(uow, event.order_id, event.payment_id)
    if isinstance(event, events_pb2.PaymentRefunded):
        return saga.payment_refunded(uow, event.order_id, event.payment_id, event.event_id)
    return Outcome.ignored(f"{event.DESCRIPTOR.full_name} is not for the orders service")
