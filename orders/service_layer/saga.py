"""The orders side of the saga: reactions to the payment service's events (steps 5 and 6).

Each handler runs inside the consumer's unit of work (the inbox row commits with it) and
returns what it did, in words, for the timeline.
"""

from __future__ import annotations

from collections.abc import Callable

from orders.domain.model import Order, PaymentStatus
from orders.service_layer.unit_of_work import OrdersUnitOfWork


def _react(uow: OrdersUnitOfWork, order_id: str, change: Callable[[Order], str]) -> str:
    """Apply `change` to the locked order and store it if it changed."""
    order = uow.orders.get(order_id, for_update=True)
    if order is None:
        return "ignored: unknown order"
    before = order.updated_at
    outcome = change(order)
    if order.updated_at != before:  # every change of state touches it
        uow.orders.save(order)
    return outcome


def _note(status: PaymentStatus, payment_id: str) -> Callable[[Order], str]:
    def change(order: Order) -> str:
        if order.note_payment(status, payment_id):
            return f"noted: payment {payment_id} ({order.payment_status.value})"
        return f"ignored: payment already {order.payment_status.value}"

    return change


def payment_created(uow: OrdersUnitOfWork, order_id: str, payment_id: str) -> str:
    return _react(uow, order_id, _note(PaymentStatus.PENDING, payment_id))


def payment_cancelled(uow: OrdersUnitOfWork, order_id: str, payment_id: str) -> str:
    return _react(uow, order_id, _note(PaymentStatus.CANCELLED, payment_id))


def payment_approved(
    uow: OrdersUnitOfWork, order_id: str, payment_id: str, causation_id: str
) -> str:
    return _react(uow, order_id, lambda order: order.payment_approved(payment_id, causation_id))


def payment_failed(
    uow: OrdersUnitOfWork,
    order_id: str,
    payment_id: str,
    status: PaymentStatus,
    reason: str,
    causation_id: str,
) -> str:
    return _react(
        uow, order_id, lambda order: order.payment_failed(status, payment_id, reason, causation_id)
    )


def payment_refunded(
    uow: OrdersUnitOfWork, order_id: str, payment_id: str, causation_id: str
) -> str:
    return _react(uow, order_id, lambda order: order.payment_refunded(payment_id, causation_id))
