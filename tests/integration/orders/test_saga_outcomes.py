"""The orders side of the saga against stale, late and stray payment events (design: "stale and
out-of-order events are recognised by the state machines and ignored"): each is answered with
an outcome saying why, and writes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from comanda.events.v1 import events_pb2
from orders.domain.model import PaymentStatus
from orders.service_layer import handlers, ordering
from orders.service_layer.unit_of_work import UowFactory
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
