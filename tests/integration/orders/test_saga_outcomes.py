"""The orders side of the saga against stale, late and stray payment events (design: "stale and
out-of-order events are recognised by the state machines and ignored"): each is answered with
an outcome saying why, and writes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from chassis.messagebus import MessageBus
from comanda.events.v1 import events_pb2
from orders.domain.model import OrderStatus, PaymentStatus
from orders.service_layer import handlers, ordering
from orders.service_layer.unit_of_work import OrdersUnitOfWork, UowFactory
from tests.integration.orders.helpers import check_out, pay, scalar


def react(uow: UowFactory, handler: Callable[[Any, Any], object], event: Any) -> str:
    with uow() as unit:
        outcome = handler(event, unit)
        unit.commit()
    return str(outcome)


def created(order_id: str, payment_id: str) -> events_pb2.PaymentCreated:
    return events_pb2.PaymentCreated(
        event_id=str(uuid.uuid4()), order_id=order_id, payment_id=payment_id
    )


def test_a_payment_event_for_an_order_this_service_never_had_is_ignored(uow, orders_engine):
    stray = str(uuid.uuid4())
    approved = events_pb2.PaymentApproved(
        event_id=str(uuid.uuid4()), order_id=stray, payment_id=str(uuid.uuid4())
    )

    outcomes = [
        react(uow, handlers.payment_created, created(stray, str(uuid.uuid4()))),
        react(uow, handlers.payment_approved, approved),
    ]

    assert outcomes == ["ignored: unknown order"] * 2
    assert scalar(orders_engine, "SELECT count(*) FROM orders") == 0


def test_the_payment_is_noted_once_and_never_moves_back(uow):
    order = check_out(uow)
    payment = str(uuid.uuid4())

    first = react(uow, handlers.payment_created, created(order.id, payment))
    again = react(uow, handlers.payment_created, created(order.id, payment))
    paid = pay(uow, order.id)
    # Overtaken by the approval (two payment relays may publish in either order).
    late = react(uow, handlers.payment_created, created(order.id, payment))
    # A final status never gives way to another of the same rank.
    crossed = react(
        uow,
        handlers.payment_cancelled,
        events_pb2.PaymentCancelled(
            event_id=str(uuid.uuid4()), order_id=order.id, payment_id=payment
        ),
    )

    assert first == f"applied: payment {payment} noted (PENDING)", first
    assert again == "ignored: payment already PENDING", again
    assert late == "ignored: payment already APPROVED", late
    assert crossed == "ignored: payment already APPROVED", crossed
    after = ordering.get(uow, order.id)
    assert after.payment_status is PaymentStatus.APPROVED
    assert after.updated_at == paid.updated_at, "an ignored event changes nothing"


def test_a_batch_of_events_about_many_orders_costs_the_same_few_statements(uow, orders_engine):
    """The consumer's unit of work locks a batch's orders together and writes their changes
    together: the statements do not grow with the batch; every change, history entry and event
    is stored, and an unknown order in the batch is ignored."""
    bus = MessageBus[OrdersUnitOfWork](handlers.HANDLERS)

    def apply(count: int) -> int:
        orders = [check_out(uow) for _ in range(count)]
        batch: list[Any] = []
        for o in orders:
            payment = str(uuid.uuid4())
            batch.append(created(o.id, payment))
            batch.append(
                events_pb2.PaymentApproved(
                    event_id=str(uuid.uuid4()), order_id=o.id, payment_id=payment
                )
            )
        batch.append(created(str(uuid.uuid4()), str(uuid.uuid4())))  # an unknown order
        statements: list[str] = []

        def count_statement(*_args: Any) -> None:
            statements.append("")

        sa.event.listen(orders_engine, "before_cursor_execute", count_statement)
        try:
            with uow() as unit:
                unit.lock(sorted({e.order_id for e in batch}))
                outcomes = [str(o) for o in bus.handle_many(batch, unit)]
                unit.commit()
        finally:
            sa.event.remove(orders_engine, "before_cursor_execute", count_statement)
        assert outcomes[-1] == "ignored: unknown order"
        assert not [o for o in outcomes[:-1] if o.startswith(("ignored", "duplicate"))], outcomes
        for o in orders:
            with uow().reading() as unit:
                stored = unit.orders.get(o.id)
            assert stored is not None
            assert stored.status is OrderStatus.RECEIVED
            assert stored.payment_status is PaymentStatus.APPROVED
            assert stored.history[-1].status is OrderStatus.RECEIVED
            assert (
                scalar(
                    orders_engine,
                    "SELECT count(*) FROM outbox WHERE order_id = :id "
                    "AND event_type LIKE '%OrderStatusChanged'",
                    id=o.id,
                )
                == 1
            ), "one OrderStatusChanged (PENDING_PAYMENT -> RECEIVED)"
        return len(statements)

    few, many = apply(2), apply(20)
    assert many == few, f"{few} statements for 2 orders, {many} for 20"
