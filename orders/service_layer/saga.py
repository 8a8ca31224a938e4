"""The orders side of the saga: reactions to the payment service's events (steps 5 and 6).

Each handler runs inside the consumer's unit of work (the inbox row commits with it) and
returns its outcome.
"""

from __future__ import annotations

from collections.abc import Callable

from chassis.outcomes import Outcome
from orders.domain.model import Order, PaymentStatus
from orders.service_layer.unit_of_work import OrdersUnitOfWork


def _react(uow: OrdersUnitOfWork, order_id: str, change: Callable[[Order], Outcome]) -> Outcome:
    """Apply `change` to the locked order and store it if it changed."""
    order = uow.orders.get(order_id, for_update=True)
    if order is None:
        return Outcome.ignored("unknown order")
    outcome = change(order)
    if outcome.applied:
        uow.orders.save(order)
    return outcome


def payment_created(uow: OrdersUnitOfWork, order_id: str, payment_id: str) -> Outcome:
    return _react(
        uow, order_id, lambda order: order.note_payment(PaymentStatus.PENDING, payment_id)
    )


def payment_cancelled(uow: OrdersUnitOfWork, order_id: str, payment_id: str) -> Outcome:
    return _react(
        uow, order_id, lambda order: order.note_payment(PaymentStatus.CANCELLED, payment_id)
    )


def payment_approved(
    uow: OrdersUnitOfWork, order_id: str, payment_id: str, causation_id: str
) -> Outcome:
    return _react(uow, order_id, lambda order: order.payment_approved(payment_id, causation_id))


def payment_failed(
    uow: OrdersUnitOfWork,
    order_id: str,
    payment_id: str,
    status: PaymentStatus,
    reason: str,
    causation_id: str,
) -> Outcome:
    return _react(
        uow, order_id, lambda order: order.payment_failed(status, payment_id, reason, causation_id)
    )


def payment_refunded(
    uow: OrdersUnitOfWork, order_id: str, payment_id: str, causation_id: str
) -> Outcome:
    return _react(uow, order_id, lambda order: order.payment_refunded(payment_id, causation_id))
