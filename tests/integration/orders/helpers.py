"""Products and orders made and moved through the service layer, for the integration tests."""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa

from comanda.events.v1 import events_pb2
from orders.domain.model import CartLine, Category, Order, OrderStatus, Product
from orders.service_layer import catalog, handlers, ordering
from orders.service_layer.unit_of_work import UowFactory

TIMEOUT = timedelta(minutes=12)
KITCHEN_PATH = (OrderStatus.IN_PREPARATION, OrderStatus.READY, OrderStatus.COMPLETED)


def new_product(
    uow: UowFactory, name: str = "X-Burger", price: int = 2590, category: Category = Category.BURGER
) -> Product:
    return catalog.create(uow, name, f"{name}, feito na hora", category, price, 300)


def check_out(
    uow: UowFactory,
    products: list[Product] | None = None,
    customer_cpf: str = "",
    timeout: timedelta = TIMEOUT,
    request_id: str | None = None,
) -> Order:
    products = products or [new_product(uow)]
    cart = [CartLine(p.id, 1, "") for p in products]
    return ordering.check_out(uow, request_id or f"req-{uuid.uuid4()}", customer_cpf, cart, timeout)


def pay(uow: UowFactory, order_id: str) -> Order:
    """The saga's step 5, as the payment events consumer runs it."""
    with uow() as unit:
        approved = events_pb2.PaymentApproved(
            event_id=str(uuid.uuid4()), order_id=order_id, payment_id=str(uuid.uuid4())
        )
        outcome = handlers.payment_approved(approved, unit)
        unit.commit()
    assert outcome.applied, outcome
    return ordering.get(uow, order_id)


def move_to(uow: UowFactory, order_id: str, status: OrderStatus) -> Order:
    """Drive a PENDING_PAYMENT order to `status` through the service layer."""
    if status is OrderStatus.PENDING_PAYMENT:
        return ordering.get(uow, order_id)
    if status is OrderStatus.CANCELLED:
        return ordering.cancel(uow, order_id, "changed my mind", by_staff=False)
    order = pay(uow, order_id)
    for step in KITCHEN_PATH:
        if order.status is status:
            break
        order = ordering.advance(uow, order_id, step)
    assert order.status is status, f"expected to reach {status.value}, got {order.status.value}"
    return order


def scalar(engine: sa.Engine, sql: str, **params: object) -> object:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()
