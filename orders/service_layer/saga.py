"""The orders side of the saga: reactions to the payment service's events (steps 5 and 6).

Each handler runs inside the consumer's unit of work (the inbox row commits with it) and
returns what it did, in words, for the timeline.
"""

from __future__ import annotations

from orders.domain.model import Order, PaymentStatus
from orders.service_layer.unit_of_work import OrdersUnitOfWork


def _order(uow: OrdersUnitOfWork, order_id: str) -> Order | None:
    return uow.orders.get(order_id, for_update=True)


def payment_created(uow: OrdersUnitOfWork, order_id: str, payment_id: str) -> str:
    order = _order(uow, order_id)
    if order is None:
        return "ignored: unknown order"
    if order.note_payment(PaymentStatus.PENDING, payment_id):
        uow.orders.save(order)
        return f"noted: payment {payment_id} ({order.payment_status.value})"
    return f"ignored: payment already {order.payment_status.value}"


def payment_approved(
    uow: OrdersUnitOfWork, order_id: str, payment_id: str, causation_id: str
) -> str:
    order = _order(uow, order_id)
    if order is None:
        return "ignored: unknown order"
    outcome = order.payment_approved(payment_id, causation_id)
    uow.orders.save(order)
    return outcome


def payment_failed(
    uow: OrdersUnitOfWork,
    order_id: str,
    payment_id: str,
    status: PaymentStatus,
    reason: str,
    causation_id: str,
) -> str:
    order = _order(uow, order_id)
    if order is None:
        return "ignored: unknown order"
    outcome = order.payment_failed(status, payment_id, reason, causation_id)
    uow.orders.save(order)
    return outcome


def payment_cancelled(uow: OrdersUnitOfWork, order_id: str, payment_id: str) -> str:
    order = _order(uow, order_id)
    if order is None:
        return "ignored: unknown order"
    if order.note_payment(PaymentStatus.CANCELLED, payment_id):
        uow.orders.save(order)
        return "noted: payment CANCELLED"
    return f"ignored: payment already {order.payment_status.value}"


def payment_refunded(
    uow: OrdersUnitOfWork, order_id: str, payment_id: str, causation_id: str
) -> str:
    order = _order(uow, order_id)
    if order is None:
        return "ignored: unknown order"
    outcome = order.payment_refunded(payment_id, causation_id)
    uow.orders.save(order)
    return outcome
