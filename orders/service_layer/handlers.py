"""What the orders service does with the messages it receives: the payment service's events
(the saga's steps 5 and 6, and the news of each order's payment).

Each handler runs inside the consumer's unit of work, so its effect commits with the event's
inbox row, and returns its outcome. `HANDLERS` is the table the service's message bus
dispatches by; the consumer subscribes to exactly its event types.
"""

from __future__ import annotations

from collections.abc import Callable

from chassis.messagebus import Handlers
from chassis.outcomes import Outcome
from comanda.events.v1 import events_pb2
from orders.domain.model import Order, PaymentStatus
from orders.service_layer.unit_of_work import OrdersUnitOfWork

# The durable JetStream consumer that delivers HANDLERS' events (replicas share it).
CONSUMER = "orders-payment-events"


def _react(uow: OrdersUnitOfWork, order_id: str, change: Callable[[Order], Outcome]) -> Outcome:
    """Apply `change` to the locked order and store it if it changed."""
    order = uow.orders.get(order_id, for_update=True)
    if order is None:
        return Outcome.ignored("unknown order")
    outcome = change(order)
    if outcome.applied:
        uow.orders.save(order)
    return outcome


def payment_created(event: events_pb2.PaymentCreated, uow: OrdersUnitOfWork) -> Outcome:
    return _react(
        uow, event.order_id, lambda o: o.note_payment(PaymentStatus.PENDING, event.payment_id)
    )


def payment_approved(event: events_pb2.PaymentApproved, uow: OrdersUnitOfWork) -> Outcome:
    return _react(
        uow, event.order_id, lambda o: o.payment_approved(event.payment_id, event.event_id)
    )


def payment_declined(event: events_pb2.PaymentDeclined, uow: OrdersUnitOfWork) -> Outcome:
    reason = f"payment declined: {event.reason}" if event.reason else "payment declined"
    return _react(
        uow,
        event.order_id,
        lambda o: o.payment_failed(
            PaymentStatus.DECLINED, event.payment_id, reason, event.event_id
        ),
    )


def payment_expired(event: events_pb2.PaymentExpired, uow: OrdersUnitOfWork) -> Outcome:
    return _react(
        uow,
        event.order_id,
        lambda o: o.payment_failed(
            PaymentStatus.EXPIRED, event.payment_id, "payment expired", event.event_id
        ),
    )


def payment_cancelled(event: events_pb2.PaymentCancelled, uow: OrdersUnitOfWork) -> Outcome:
    return _react(
        uow, event.order_id, lambda o: o.note_payment(PaymentStatus.CANCELLED, event.payment_id)
    )


def payment_refunded(event: events_pb2.PaymentRefunded, uow: OrdersUnitOfWork) -> Outcome:
    return _react(
        uow, event.order_id, lambda o: o.payment_refunded(event.payment_id, event.event_id)
    )


HANDLERS: Handlers = {
    events_pb2.PaymentCreated: payment_created,
    events_pb2.PaymentApproved: payment_approved,
    events_pb2.PaymentDeclined: payment_declined,
    events_pb2.PaymentExpired: payment_expired,
    events_pb2.PaymentCancelled: payment_cancelled,
    events_pb2.PaymentRefunded: payment_refunded,
}
