"""The order state machine, table-driven over every status and every move.

Legal moves (design.md):
    PENDING_PAYMENT --payment approved--> RECEIVED --kitchen--> IN_PREPARATION --kitchen--> READY
    READY --pickup--> COMPLETED
    PENDING_PAYMENT --payment declined / expired / customer cancel / timeout--> CANCELLED
    RECEIVED --customer or staff cancel (or a refund)--> CANCELLED
Anything else is FAILED_PRECONDITION (commands) or ignored (saga reactions), changing nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from chassis.errors import FailedPrecondition
from chassis.events import DomainEvent
from chassis.outcomes import Outcome
from orders.domain import events
from orders.domain.model import (
    Actor,
    CartLine,
    Category,
    Order,
    OrderStatus,
    PaymentStatus,
    Product,
)

S = OrderStatus
PAYMENT_ID = "0b7f5e2c-93a4-4f7e-9d0a-3f1c2b4d5e6f"
CAUSE = "7a0c1d2e-3f40-4b5c-8d9e-0f1a2b3c4d5e"


def order_in(status: OrderStatus) -> Order:
    """An order driven to `status` through legal moves, its events already stored."""
    product = Product.create("X-Burger", "", Category.BURGER, 2590, 60)
    order = Order.check_out(
        "req", None, [CartLine(product.id, 1, "")], {product.id: product}, timedelta(minutes=5)
    )
    if status is S.CANCELLED:
        order.cancel(Actor.CUSTOMER, "changed my mind")
    elif status is not S.PENDING_PAYMENT:
        order.payment_approved(PAYMENT_ID, CAUSE)
        for step in (S.IN_PREPARATION, S.READY, S.COMPLETED):
            if order.status is status:
                break
            order.advance(step)
    assert order.status is status, f"could not drive an order to {status}"
    order.events.clear()
    return order


def published(order: Order) -> list[DomainEvent]:
    return [e for e in order.events if isinstance(e, DomainEvent)]


def entered(order: Order) -> list[OrderStatus | None]:
    """The status each recorded OrderChanged (the hook of every change) says was entered."""
    return [e.entered for e in order.events if isinstance(e, events.OrderChanged)]


def snapshot(order: Order) -> tuple[Any, ...]:
    return (
        order.status,
        order.payment_status,
        order.payment_id,
        len(order.history),
        order.payment_deadline,
    )


# -- the kitchen's steps --------------------------------------------------------------------
KITCHEN_LEGAL = {
    (S.RECEIVED, S.IN_PREPARATION),
    (S.IN_PREPARATION, S.READY),
    (S.READY, S.COMPLETED),
}
ALL_PAIRS = [(current, target) for current in S for target in S]


@pytest.mark.parametrize(
    ("current", "target"), ALL_PAIRS, ids=[f"{c.value}->{t.value}" for c, t in ALL_PAIRS]
)
def test_kitchen_advance(current: OrderStatus, target: OrderStatus) -> None:
    order = order_in(current)
    before = snapshot(order)
    if (current, target) in KITCHEN_LEGAL:
        order.advance(target)
        assert order.status is target, (
            f"{current.value} -> {target.value}: status is {order.status.value}"
        )
        last = order.history[-1]
        assert (last.status, last.actor) == (target, Actor.KITCHEN), last
        assert len(order.history) == before[3] + 1
        (event,) = published(order)
        assert entered(order) == [target]
        assert isinstance(event, events.OrderStatusChanged), event
        assert (event.order_id, event.from_status, event.to_status, event.actor) == (
            order.id,
            current,
            target,
            Actor.KITCHEN,
        )
    else:
        with pytest.raises(FailedPrecondition) as caught:
            order.advance(target)
        message = caught.value.message
        assert current.value in message and target.value in message, (
            f"{current.value} -> {target.value}: the message should name both, got {message!r}"
        )
        assert (caught.value.current, caught.value.wanted) == (
            current.value,
            f"move to {target.value}",
        )
        assert order.id in caught.value.subject
        assert snapshot(order) == before, "a refused step must change nothing"
        assert order.events == [], "a refused step must record no event"


@pytest.mark.parametrize("current", [S.RECEIVED, S.IN_PREPARATION, S.READY])
def test_refused_kitchen_step_names_the_next_one(current: OrderStatus) -> None:
    order = order_in(current)
    with pytest.raises(FailedPrecondition) as caught:
        order.advance(S.CANCELLED)
    nxt = {S.RECEIVED: S.IN_PREPARATION, S.IN_PREPARATION: S.READY, S.READY: S.COMPLETED}[current]
    assert f"the next step is {nxt.value}" in caught.value.message, caught.value.message


# -- cancel -------------------------------------------------------------------------------
@pytest.mark.parametrize("actor", [Actor.CUSTOMER, Actor.STAFF])
@pytest.mark.parametrize("current", list(S))
def test_cancel(current: OrderStatus, actor: Actor) -> None:
    order = order_in(current)
    before = snapshot(order)
    if current in (S.PENDING_PAYMENT, S.RECEIVED):
        order.cancel(actor, "changed my mind", causation_id=CAUSE)
        assert order.status is S.CANCELLED
        assert order.payment_deadline is None, "a cancelled order has no payment deadline"
        last = order.history[-1]
        assert (last.status, last.actor, last.reason) == (S.CANCELLED, actor, "changed my mind")
        (event,) = published(order)
        assert entered(order) == [S.CANCELLED]
        assert isinstance(event, events.OrderCancelled), event
        assert (
            event.order_id,
            event.from_status,
            event.actor,
            event.reason,
            event.causation_id,
        ) == (order.id, current, actor, "changed my mind", CAUSE)
    else:
        with pytest.raises(FailedPrecondition) as caught:
            order.cancel(actor, "too late")
        assert current.value in caught.value.message and "cancel" in caught.value.message, (
            caught.value.message
        )
        assert snapshot(order) == before
        assert order.events == []


# -- saga reactions -----------------------------------------------------------------------
def _approved(order: Order) -> Outcome:
    return order.payment_approved(PAYMENT_ID, CAUSE)


def _declined(order: Order) -> Outcome:
    return order.payment_failed(PaymentStatus.DECLINED, PAYMENT_ID, "payment declined", CAUSE)


def _expired(order: Order) -> Outcome:
    return order.payment_failed(PaymentStatus.EXPIRED, PAYMENT_ID, "payment expired", CAUSE)


def _refunded(order: Order) -> Outcome:
    return order.payment_refunded(PAYMENT_ID, CAUSE)


REACTIONS = {
    "approved": _approved,
    "declined": _declined,
    "expired": _expired,
    "refunded": _refunded,
}
# (reaction, from) -> to; every other pair leaves the status alone
REACTION_MOVES = {
    ("approved", S.PENDING_PAYMENT): S.RECEIVED,
    ("declined", S.PENDING_PAYMENT): S.CANCELLED,
    ("expired", S.PENDING_PAYMENT): S.CANCELLED,
    ("refunded", S.RECEIVED): S.CANCELLED,
}
REACTION_CASES = [(name, current) for name in REACTIONS for current in S]


@pytest.mark.parametrize(
    ("reaction", "current"), REACTION_CASES, ids=[f"{n}@{c.value}" for n, c in REACTION_CASES]
)
def test_payment_reaction(reaction: str, current: OrderStatus) -> None:
    order = order_in(current)
    history = len(order.history)
    payment_before = (order.payment_status, order.payment_id)
    outcome = REACTIONS[reaction](order)
    target = REACTION_MOVES.get((reaction, current))
    if target is not None:
        assert order.status is target, (
            f"{reaction} at {current.value}: expected {target.value}, got {order.status.value}"
        )
        assert outcome.applied, outcome
        assert str(outcome).startswith(f"applied: {current.value} -> {target.value}"), outcome
        last = order.history[-1]
        assert (last.status, last.actor) == (target, Actor.PAYMENT)
        assert len(order.history) == history + 1
        (event,) = published(order)
        assert entered(order) == [target], "one change, one OrderChanged"
        assert event.causation_id == CAUSE, "the saga event that caused the move is recorded"
        if target is S.CANCELLED:
            assert isinstance(event, events.OrderCancelled), event
            assert (event.from_status, event.actor) == (current, Actor.PAYMENT)
        else:
            assert isinstance(event, events.OrderStatusChanged), event
            assert (event.from_status, event.to_status, event.actor) == (
                current,
                target,
                Actor.PAYMENT,
            )
    else:
        assert order.status is current, f"{reaction} at {current.value} must not move the order"
        noted = (order.payment_status, order.payment_id) != payment_before
        # Applied only when the payment's news was new to the order (it is then stored).
        assert outcome.applied is noted, outcome
        assert str(outcome).startswith("applied: payment" if noted else "ignored: "), outcome
        assert len(order.history) == history
        assert published(order) == [], f"{reaction} at {current.value} must publish no event"
        assert entered(order) == ([None] if noted else []), "news of the payment is a change"
    assert order.payment_id == PAYMENT_ID, "the payment id is remembered whatever the status"


def test_payment_declined_reason_is_kept_in_history() -> None:
    order = order_in(S.PENDING_PAYMENT)
    order.payment_failed(
        PaymentStatus.DECLINED, PAYMENT_ID, "payment declined: insufficient funds", CAUSE
    )
    assert order.history[-1].reason == "payment declined: insufficient funds"
    assert order.payment_status is PaymentStatus.DECLINED
    (cancelled,) = published(order)
    assert isinstance(cancelled, events.OrderCancelled)
    assert cancelled.reason == "payment declined: insufficient funds"


@pytest.mark.parametrize("current", list(S))
def test_time_out(current: OrderStatus) -> None:
    order = order_in(current)
    before = snapshot(order)
    outcome = order.time_out()
    if current is S.PENDING_PAYMENT:
        assert outcome.applied, outcome
        assert order.status is S.CANCELLED
        assert (order.history[-1].status, order.history[-1].actor) == (S.CANCELLED, Actor.TIMEOUT)
        (event,) = published(order)
        assert entered(order) == [S.CANCELLED]
        assert isinstance(event, events.OrderCancelled)
        assert (event.from_status, event.actor) == (S.PENDING_PAYMENT, Actor.TIMEOUT)
    else:
        assert not outcome.applied, f"time_out at {current.value} must do nothing: {outcome}"
        assert snapshot(order) == before
        assert order.events == []


def test_full_happy_path_records_one_event_per_change() -> None:
    order = order_in(S.PENDING_PAYMENT)
    order.payment_approved(PAYMENT_ID, CAUSE)
    for step in (S.IN_PREPARATION, S.READY, S.COMPLETED):
        order.advance(step)
    assert [h.status for h in order.history] == [
        S.PENDING_PAYMENT,
        S.RECEIVED,
        S.IN_PREPARATION,
        S.READY,
        S.COMPLETED,
    ]
    assert [h.actor for h in order.history] == [
        Actor.CUSTOMER,
        Actor.PAYMENT,
        Actor.KITCHEN,
        Actor.KITCHEN,
        Actor.KITCHEN,
    ]
    moves = [
        (e.from_status, e.to_status)
        for e in order.events
        if isinstance(e, events.OrderStatusChanged)
    ]
    assert moves == [
        (S.PENDING_PAYMENT, S.RECEIVED),
        (S.RECEIVED, S.IN_PREPARATION),
        (S.IN_PREPARATION, S.READY),
        (S.READY, S.COMPLETED),
    ], moves
    times = [h.time for h in order.history]
    assert times == sorted(times), "history is in time order"
    assert order.payment_deadline is None, "no payment deadline once paid"


# -- payment status: never moves back -----------------------------------------------------
P = PaymentStatus
RANK = {
    P.UNSPECIFIED: 0,
    P.PENDING: 1,
    P.APPROVED: 2,
    P.DECLINED: 2,
    P.EXPIRED: 2,
    P.CANCELLED: 2,
    P.REFUNDED: 3,
}
PAYMENT_PAIRS = [(a, b) for a in P for b in P]


@pytest.mark.parametrize(
    ("current", "told"), PAYMENT_PAIRS, ids=[f"{a.value}<-{b.value}" for a, b in PAYMENT_PAIRS]
)
def test_payment_status_is_monotonic(current: PaymentStatus, told: PaymentStatus) -> None:
    order = order_in(S.PENDING_PAYMENT)
    order.payment_id = PAYMENT_ID
    order.payment_status = current
    changed = order.note_payment(told, PAYMENT_ID).applied
    expected = told if RANK[told] > RANK[current] else current
    assert order.payment_status is expected, (
        f"{current.value} told {told.value}: got {order.payment_status.value}"
    )
    assert changed is (expected is not current)
    assert order.status is S.PENDING_PAYMENT, "noting a payment status never moves the order"


def test_payment_id_is_set_once() -> None:
    order = order_in(S.PENDING_PAYMENT)
    assert order.note_payment(P.PENDING, PAYMENT_ID).applied is True
    again = order.note_payment(P.PENDING, PAYMENT_ID)
    assert again.applied is False, f"the same news again changes nothing: {again}"
    order.note_payment(P.APPROVED, "another-payment")
    assert order.payment_id == PAYMENT_ID, "the first payment id stays"


def test_stale_decline_after_approval_keeps_the_order_and_the_payment_status() -> None:
    order = order_in(S.PENDING_PAYMENT)
    order.payment_approved(PAYMENT_ID, CAUSE)
    order.events.clear()
    outcome = _declined(order)
    assert (order.status, order.payment_status) == (S.RECEIVED, P.APPROVED), outcome
    assert order.events == []
