"""The orders service's two tables for its message bus (`chassis.messagebus`):

- `HANDLERS`: the payment service's events (the saga's steps 5 and 6, and the news of each
  order's payment). Each handler runs inside the consumer's unit of work, so its effect
  commits with the event's inbox row, and returns its outcome. The consumer subscribes to
  exactly these event types.
- `EFFECTS`: what follows a committed change of an order. `OrderChanged` is the one hook: every
  change of an order records it, whoever made the change (an RPC, an event, a deadline).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from prometheus_client import Histogram

from chassis.messagebus import Effects, Handlers
from chassis.outcomes import Outcome
from comanda.events.v1 import events_pb2
from orders.domain.events import OrderChanged
from orders.domain.model import Order, OrderStatus, PaymentStatus
from orders.service_layer.unit_of_work import OrdersUnitOfWork

CHECKOUT_TO_PAID = Histogram(
    "comanda_checkout_to_paid_seconds",
    "Time from checkout to the order entering the kitchen queue (payment approved)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)

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
    return _failed(uow, event, PaymentStatus.DECLINED, reason)


def payment_expired(event: events_pb2.PaymentExpired, uow: OrdersUnitOfWork) -> Outcome:
    return _failed(uow, event, PaymentStatus.EXPIRED, "payment expired")


def _failed(
    uow: OrdersUnitOfWork,
    event: events_pb2.PaymentDeclined | events_pb2.PaymentExpired,
    status: PaymentStatus,
    reason: str,
) -> Outcome:
    return _react(
        uow,
        event.order_id,
        lambda o: o.payment_failed(status, event.payment_id, reason, event.event_id),
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


class Watchers(Protocol):
    def changed(self, order_id: str) -> None:
        """Wake whoever follows this order, in every replica (safe from any thread)."""


def announce_change(event: OrderChanged, watchers: Watchers) -> None:
    """Whoever follows the order (WatchOrder streams, on every replica) reads it again."""
    watchers.changed(event.order_id)


def time_checkout_to_paid(event: OrderChanged) -> None:
    if event.entered is OrderStatus.RECEIVED:  # paid: the saga's happy path is done
        CHECKOUT_TO_PAID.observe((event.time - event.checked_out_at).total_seconds())


EFFECTS: Effects = {
    OrderChanged: [announce_change, time_checkout_to_paid],
}
