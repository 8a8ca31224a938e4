"""The orders side of the saga against stale, late and stray payment events (design: "stale and
out-of-order events are recognised by the state machines and ignored"): each is answered with
an outcome saying why, and writes nothing."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from orders.domain.model import PaymentStatus
from orders.service_layer import ordering, saga
from orders.service_layer.unit_of_work import UowFactory
from tests.integration.orders.helpers import check_out, pay, scalar


def react(uow: UowFactory, handler, *args: object) -> str:
    with uow() as unit:
        outcome = handler(unit, *args)
        unit.commit()
    return str(outcome)


def test_a_payment_event_for_an_order_this_service_never_had_is_ignored(uow, orders_engine):
    stray = str(uuid.uuid4())

    outcomes = [
        react(uow, saga.payment_created, stray, str(uuid.uuid4())),
        react(uow, saga.payment_approved, stray, str(uuid.uuid4()), str(uuid.uuid4())),
    ]

    assert outcomes == ["ignored: unknown order"] * 2
    assert scalar(orders_engine, "SELECT count(*) FROM orders") == 0


def test_the_payment_is_noted_once_and_never_moves_back(uow, orders_engine: sa.Engine):
    order = check_out(uow)
    payment = str(uuid.uuid4())

    first = react(uow, saga.payment_created, order.id, payment)
    again = react(uow, saga.payment_created, order.id, payment)
    paid = pay(uow, order.id)
    late = react(uow, saga.payment_created, order.id, payment)  # overtaken by the approval
    # A final status never gives way to another of the same rank.
    crossed = react(uow, saga.payment_cancelled, order.id, payment)

    assert first == f"noted: payment {payment} (PENDING)", first
    assert again == "ignored: payment already PENDING", again
    assert late == "ignored: payment already APPROVED", late
    assert crossed == "ignored: payment already APPROVED", crossed
    after = ordering.get(uow, order.id)
    assert after.payment_status is PaymentStatus.APPROVED
    assert after.updated_at == paid.updated_at, "an ignored event changes nothing"
