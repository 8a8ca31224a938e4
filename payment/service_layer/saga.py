"""The payment side of the saga: reactions to the orders service's events (steps 2 and 8).

Each handler runs inside the consumer's unit of work (the inbox row commits with it) and
returns its outcome.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from chassis.events import utcnow
from chassis.outcomes import Outcome
from payment.adapters.provider import PaymentProvider
from payment.domain.model import Payment
from payment.service_layer.payments import save
from payment.service_layer.unit_of_work import PaymentUnitOfWork


def order_created(
    uow: PaymentUnitOfWork,
    provider: PaymentProvider,
    expiry: timedelta,
    order_id: str,
    amount_centavos: int,
    causation_id: str,
) -> Outcome:
    """Step 2: one PENDING payment per order, however often the event arrives."""
    existing = uow.payments.for_order(order_id)
    if existing is not None:
        return Outcome.ignored(
            f"the order already has payment {existing.id} ({existing.status.value})"
        )
    payment_id = str(uuid.uuid4())
    charge = provider.issue_charge(payment_id, amount_centavos, utcnow() + expiry)
    payment = Payment.open(order_id, amount_centavos, charge, expiry, causation_id, payment_id)
    if not uow.payments.add(payment):  # a concurrent delivery won: nothing written here
        return Outcome.ignored("payment created concurrently")
    return Outcome.done(f"payment {payment.id} PENDING")


def order_cancelled(
    uow: PaymentUnitOfWork, provider: PaymentProvider, order_id: str, causation_id: str
) -> Outcome:
    """Step 8: cancel the pending charge, or refund the paid one (compensation)."""
    payment = uow.payments.for_order(order_id, for_update=True)
    if payment is None:
        tombstone = Payment.cancelled_before_created(order_id, causation_id)
        if uow.payments.add(tombstone):
            return Outcome.done("no payment yet; recorded as CANCELLED")
        payment = uow.payments.for_order(order_id, for_update=True)
        assert payment is not None
    outcome = payment.order_cancelled(causation_id)
    if outcome.applied:
        save(uow, provider, payment)
    return outcome
