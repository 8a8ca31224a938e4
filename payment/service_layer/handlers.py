"""The payment service's two tables for its message bus (`chassis.messagebus`):

- `HANDLERS`: the orders service's events (the saga's steps 2 and 8). Each handler runs inside
  the consumer's unit of work, so its effect commits with the event's inbox row, and returns
  its outcome. The consumer subscribes to exactly these event types.
- `EFFECTS`: what follows a committed change of a payment (`PaymentChanged`): metrics, and
  the provider's refund call (after the commit, so a rolled back refund asks for nothing), and
  waking the fake provider's auto-approval for a new charge.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

from prometheus_client import Counter

from chassis.events import utcnow
from chassis.messagebus import Effects, Handlers, batched
from chassis.outcomes import Outcome
from comanda.events.v1 import events_pb2
from payment.adapters.provider import PaymentProvider
from payment.domain.events import PaymentChanged
from payment.domain.model import Payment, PaymentStatus
from payment.service_layer.unit_of_work import PaymentUnitOfWork

PAYMENTS = Counter(
    "comanda_payments_total", "Payment status changes, by the status entered", ["status"]
)

# The durable JetStream consumer that delivers HANDLERS' events (replicas share it).
CONSUMER = "payment-order-events"


@batched
def order_created(
    events: list[events_pb2.OrderCreated],
    uow: PaymentUnitOfWork,
    provider: PaymentProvider,
    expiry: timedelta,
) -> list[Outcome]:
    """Step 2: one PENDING payment per order, however often the event arrives; a run of
    OrderCreated is written in one statement. No charge is issued at the provider for an
    order that already has a payment (or the record of its cancellation)."""
    existing = uow.payments.ids_for_orders([event.order_id for event in events])
    opened: list[Payment | None] = []  # one per event, None where the order has a payment
    for event in events:
        if event.order_id in existing:
            opened.append(None)
            continue
        payment_id = str(uuid.uuid4())
        charge = provider.issue_charge(payment_id, event.total_centavos, utcnow() + expiry)
        opened.append(
            Payment.open(
                event.order_id, event.total_centavos, charge, expiry, event.event_id, payment_id
            )
        )
    new = [payment for payment in opened if payment is not None]
    written = uow.payments.add_many(new) if new else set()
    outcomes = []
    for event, payment in zip(events, opened, strict=True):
        if payment is None:
            other, status = existing[event.order_id]
            outcomes.append(
                Outcome.ignored(f"the order already has payment {other} ({status.value})")
            )
        elif payment.id in written:
            outcomes.append(Outcome.done(f"payment {payment.id} PENDING"))
        else:  # a concurrent delivery (another replica) won the insert
            outcomes.append(Outcome.ignored("payment created concurrently"))
    return outcomes


def order_cancelled(event: events_pb2.OrderCancelled, uow: PaymentUnitOfWork) -> Outcome:
    """Step 8: cancel the pending charge, or refund the paid one (compensation)."""
    payment = uow.payments.for_order(event.order_id, for_update=True)
    if payment is None:
        tombstone = Payment.cancelled_before_created(event.order_id, event.event_id)
        if uow.payments.add(tombstone):
            return Outcome.done("no payment yet; recorded as CANCELLED")
        payment = uow.payments.for_order(event.order_id, for_update=True)
        assert payment is not None
    outcome = payment.order_cancelled(event.event_id)
    if outcome.applied:
        uow.payments.save(payment)
    return outcome


HANDLERS: Handlers = {
    events_pb2.OrderCreated: order_created,
    events_pb2.OrderCancelled: order_cancelled,
}


def count_status(event: PaymentChanged) -> None:
    PAYMENTS.labels(event.status.value).inc()


def give_money_back(event: PaymentChanged, provider: PaymentProvider) -> None:
    """A refund was committed: the provider returns the money (a real adapter passes the
    payment id as its idempotency key, since this can repeat after a crash)."""
    if event.status is PaymentStatus.REFUNDED:
        provider.refund(event.provider_reference, event.amount_centavos)


def offer_to_auto_approval(event: PaymentChanged, auto_approval: Callable[[], None]) -> None:
    """A new charge: the fake provider's demo mode (when on) looks for due charges now rather
    than at its next tick."""
    if event.status is PaymentStatus.PENDING:
        auto_approval()


EFFECTS: Effects = {
    PaymentChanged: [count_status, give_money_back, offer_to_auto_approval],
}
