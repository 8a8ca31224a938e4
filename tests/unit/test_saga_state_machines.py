"""Hypothesis drives the order and payment state machines (the pure domain models) through
random sequences of commands — customers, kitchen and staff, the provider's approvals and
declines, expiries and timeouts — while the saga's events travel between them late, out of
order and more than once (each consumer's inbox applies an event once, as in production).

Whatever the sequence:
- every status history follows the legal transitions (design.md), and a refused command
  changes nothing;
- an order is in the kitchen only after its payment was approved; nothing is refunded that was
  not received, nor refunded twice;
- once every event has arrived, both services agree on each payment's outcome, a cancelled
  order keeps no money, and the money adds up: what the provider approved minus what was
  refunded equals what the paid orders cost.

The saga's reactions below are the table of design.md, step by step.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from chassis.errors import FailedPrecondition
from chassis.events import DomainEvent
from orders.domain import events as order_events
from orders.domain.model import (
    CANCELLABLE,
    KITCHEN_STEPS,
    Actor,
    CartLine,
    Category,
    Order,
    OrderStatus,
    PaymentStatus,
    Product,
)
from payment.domain import events as payment_events
from payment.domain.model import Charge, Payment
from payment.domain.model import PaymentStatus as PS

ORDER_MOVES = {
    (OrderStatus.PENDING_PAYMENT, OrderStatus.RECEIVED),
    (OrderStatus.PENDING_PAYMENT, OrderStatus.CANCELLED),
    (OrderStatus.RECEIVED, OrderStatus.IN_PREPARATION),
    (OrderStatus.RECEIVED, OrderStatus.CANCELLED),
    (OrderStatus.IN_PREPARATION, OrderStatus.READY),
    (OrderStatus.READY, OrderStatus.COMPLETED),
}
PAYMENT_MOVES = {
    (PS.PENDING, PS.APPROVED),
    (PS.PENDING, PS.DECLINED),
    (PS.PENDING, PS.EXPIRED),
    (PS.PENDING, PS.CANCELLED),
    (PS.APPROVED, PS.REFUNDED),
    # an approval arriving after the payment was closed unpaid is refunded at once
    (PS.DECLINED, PS.REFUNDED),
    (PS.EXPIRED, PS.REFUNDED),
    (PS.CANCELLED, PS.REFUNDED),
}
IN_KITCHEN = (
    OrderStatus.RECEIVED,
    OrderStatus.IN_PREPARATION,
    OrderStatus.READY,
    OrderStatus.COMPLETED,
)
TIMEOUT = timedelta(minutes=12)
EXPIRY = timedelta(minutes=10)


@dataclass
class Ledger:
    """The provider's side of the money, per order."""

    received: dict[str, int] = field(default_factory=dict)
    refunded: dict[str, int] = field(default_factory=dict)

    def add(self, book: dict[str, int], order_id: str, amount: int) -> None:
        book[order_id] = book.get(order_id, 0) + amount


class Saga(RuleBasedStateMachine):
    orders = Bundle("orders")

    @initialize()
    def open_shop(self) -> None:
        self.catalogue = {
            p.id: p
            for p in (
                Product.create("X-Burger", "", Category.BURGER, 2590, 300),
                Product.create("Refri", "", Category.DRINK, 700, 0),
            )
        }
        self.by_id: dict[str, Order] = {}
        self.payments: dict[str, Payment] = {}  # by order id
        self.in_flight: list[tuple[str, Any]] = []  # (consumer, event)
        self.inbox: set[tuple[str, str]] = set()
        self.ledger = Ledger()

    # -- plumbing: events out of the aggregates, into the other service ------------------
    def _publish(self, aggregate: Order | Payment) -> None:
        consumer = "payment" if isinstance(aggregate, Order) else "orders"
        for event in aggregate.events:
            if not isinstance(event, DomainEvent):
                continue  # a local event (effects after commit): never published
            if isinstance(event, payment_events.PaymentRefunded):
                self.ledger.add(self.ledger.refunded, event.order_id, event.amount_centavos)
            self.in_flight.append((consumer, event))
        aggregate.events.clear()

    def _refused(self, aggregate: Order | Payment, command: object) -> None:
        """Run a command that may be refused; a refusal must change nothing."""
        before = (aggregate.status, len(aggregate.history))
        try:
            command()  # type: ignore[operator]
        except FailedPrecondition:
            assert (aggregate.status, len(aggregate.history)) == before
            assert not aggregate.events, "a refused command records no event"
        self._publish(aggregate)

    # -- commands -------------------------------------------------------------------------
    @rule(
        target=orders,
        lines=st.lists(
            st.tuples(st.sampled_from([0, 1]), st.integers(1, 99)), min_size=1, max_size=3
        ),
    )
    def check_out(self, lines: list[tuple[int, int]]) -> str:
        ids = list(self.catalogue)
        cart = [CartLine(ids[i], quantity, "") for i, quantity in lines]
        order = Order.check_out(uuid.uuid4().hex, None, cart, self.catalogue, TIMEOUT, 1)
        order.record_created()
        self.by_id[order.id] = order
        self._publish(order)
        return order.id

    @rule(order_id=orders, by_staff=st.booleans())
    def cancel(self, order_id: str, by_staff: bool) -> None:
        order = self.by_id[order_id]
        allowed = order.status in CANCELLABLE
        actor = Actor.STAFF if by_staff else Actor.CUSTOMER
        self._refused(order, lambda: order.cancel(actor, "changed my mind"))
        if allowed:
            assert order.status is OrderStatus.CANCELLED

    @rule(order_id=orders, to=st.sampled_from(list(KITCHEN_STEPS.values())))
    def kitchen(self, order_id: str, to: OrderStatus) -> None:
        order = self.by_id[order_id]
        legal = KITCHEN_STEPS.get(order.status) is to
        self._refused(order, lambda: order.advance(to))
        if legal:
            assert order.status is to

    @rule(order_id=orders)
    def order_deadline_passes(self, order_id: str) -> None:
        order = self.by_id[order_id]
        order.time_out()
        self._publish(order)

    def _payment(self, order_id: str) -> Payment | None:
        return self.payments.get(order_id)

    @rule(order_id=orders)
    def provider_approves(self, order_id: str) -> None:
        payment = self._payment(order_id)
        if payment is None or not payment.provider_reference:
            return  # no charge was issued: nothing the customer could pay
        before = payment.status
        outcome = payment.approve()
        if outcome.applied:  # the provider charged the customer
            self.ledger.add(self.ledger.received, order_id, payment.amount_centavos)
        else:
            assert payment.status is before
        self._publish(payment)

    @rule(order_id=orders)
    def provider_declines(self, order_id: str) -> None:
        payment = self._payment(order_id)
        if payment is not None:
            payment.decline("insufficient funds")
            self._publish(payment)

    @rule(order_id=orders)
    def charge_expires(self, order_id: str) -> None:
        payment = self._payment(order_id)
        if payment is not None:
            payment.expire()
            self._publish(payment)

    @rule(order_id=orders)
    def staff_refunds(self, order_id: str) -> None:
        payment = self._payment(order_id)
        if payment is not None:
            self._refused(payment, lambda: payment.refund("refunded by the manager"))

    @precondition(lambda self: bool(self.in_flight))
    @rule(data=st.data(), again=st.booleans())
    def deliver(self, data: st.DataObject, again: bool) -> None:
        """An event in flight arrives; sometimes it stays in flight to arrive again."""
        self._deliver(data.draw(st.integers(0, len(self.in_flight) - 1)), again)

    @precondition(lambda self: bool(self.in_flight))
    @rule(data=st.data())
    def everything_arrives(self, data: st.DataObject) -> None:
        """The system goes quiet: every event in flight (and those they cause) arrives, in
        an order Hypothesis picks."""
        while self.in_flight:
            self._deliver(data.draw(st.integers(0, len(self.in_flight) - 1)), False)

    def _deliver(self, index: int, again: bool) -> None:
        consumer, event = self.in_flight[index] if again else self.in_flight.pop(index)
        if (consumer, event.event_id) in self.inbox:
            return  # the inbox: already applied
        self.inbox.add((consumer, event.event_id))
        if consumer == "payment":
            self._payment_consumes(event)
        else:
            self._orders_consume(event)

    # -- the saga's reactions (design.md, steps 2, 5, 6, 8) --------------------------------
    def _payment_consumes(self, event: Any) -> None:
        payment = self.payments.get(event.order_id)
        if isinstance(event, order_events.OrderCreated):
            if payment is None:  # step 2: one payment per order
                charge = Charge("fake", uuid.uuid4().hex, "000201...")
                payment = Payment.open(
                    event.order_id, event.total_centavos, charge, EXPIRY, event.event_id
                )
                self.payments[event.order_id] = payment
        elif isinstance(event, order_events.OrderCancelled):  # step 8
            if payment is None:
                payment = Payment.cancelled_before_created(event.order_id, event.event_id)
                self.payments[event.order_id] = payment
            else:
                payment.order_cancelled(event.event_id)
        if payment is not None:
            self._publish(payment)

    def _orders_consume(self, event: Any) -> None:
        order = self.by_id[event.order_id]
        e = payment_events
        if isinstance(event, e.PaymentCreated):
            order.note_payment(PaymentStatus.PENDING, event.payment_id)
        elif isinstance(event, e.PaymentCancelled):
            order.note_payment(PaymentStatus.CANCELLED, event.payment_id)
        elif isinstance(event, e.PaymentApproved):
            order.payment_approved(event.payment_id, event.event_id)
        elif isinstance(event, e.PaymentDeclined):
            order.payment_failed(PaymentStatus.DECLINED, event.payment_id, "declined", "")
        elif isinstance(event, e.PaymentExpired):
            order.payment_failed(PaymentStatus.EXPIRED, event.payment_id, "expired", "")
        elif isinstance(event, e.PaymentRefunded):
            order.payment_refunded(event.payment_id, event.event_id)
        self._publish(order)

    # -- what must always hold ------------------------------------------------------------
    @invariant()
    def histories_follow_the_legal_transitions(self) -> None:
        for order in getattr(self, "by_id", {}).values():
            statuses = [h.status for h in order.history]
            assert statuses[0] is OrderStatus.PENDING_PAYMENT
            assert statuses[-1] is order.status
            for move in itertools.pairwise(statuses):
                assert move in ORDER_MOVES, f"illegal order move {move}"
        for payment in getattr(self, "payments", {}).values():
            statuses = [h.status for h in payment.history]
            assert statuses[-1] is payment.status
            for move in itertools.pairwise(statuses):
                assert move in PAYMENT_MOVES, f"illegal payment move {move}"

    @invariant()
    def the_kitchen_only_gets_paid_orders_and_money_never_goes_negative(self) -> None:
        ledger = getattr(self, "ledger", Ledger())
        for order in getattr(self, "by_id", {}).values():
            if OrderStatus.RECEIVED in [h.status for h in order.history]:
                assert ledger.received.get(order.id, 0) == order.total_centavos, (
                    "an order entered the kitchen without its price being received"
                )
        for order_id, refunded in ledger.refunded.items():
            assert refunded <= ledger.received.get(order_id, 0), "refunded what never came in"
            assert refunded in (0, self.by_id[order_id].total_centavos), "refunded twice"

    @precondition(lambda self: not self.in_flight)
    @invariant()
    def once_settled_both_services_agree_and_the_money_adds_up(self) -> None:
        paid = 0
        for order in self.by_id.values():
            payment = self.payments.get(order.id)
            assert payment is not None, "every order's creation or cancellation reached payment"
            assert order.payment_status.value == payment.status.value, (
                f"orders thinks {order.payment_status.value}, payment is {payment.status.value}"
            )
            if order.status is OrderStatus.CANCELLED:
                assert payment.status is not PS.APPROVED, "a cancelled order kept its money"
            if payment.status is PS.APPROVED:
                assert order.status in IN_KITCHEN
            if order.status in IN_KITCHEN and order.payment_status is PaymentStatus.APPROVED:
                paid += order.total_centavos
        received = sum(self.ledger.received.values())
        refunded = sum(self.ledger.refunded.values())
        assert received - refunded == paid, (
            f"approved {received} - refunded {refunded} != paid orders {paid}"
        )


TestSaga = Saga.TestCase
TestSaga.settings = settings(max_examples=400, stateful_step_count=30, deadline=None)
