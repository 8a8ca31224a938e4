"""Events of payments: those the payment service publishes (comanda.events.v1, by name), and
`PaymentChanged`, which it keeps to itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chassis.events import DomainEvent, LocalEvent
from payment.domain.values import PaymentStatus


@dataclass(kw_only=True)
class PaymentEvent(DomainEvent):
    order_id: str  # the order the payment is for: the saga's aggregate id


@dataclass(kw_only=True)
class PaymentCreated(PaymentEvent):
    payment_id: str
    amount_centavos: int
    expire_time: datetime | None


@dataclass(kw_only=True)
class PaymentApproved(PaymentEvent):
    payment_id: str
    amount_centavos: int


@dataclass(kw_only=True)
class PaymentDeclined(PaymentEvent):
    payment_id: str
    reason: str


@dataclass(kw_only=True)
class PaymentExpired(PaymentEvent):
    payment_id: str


@dataclass(kw_only=True)
class PaymentCancelled(PaymentEvent):
    payment_id: str


@dataclass(kw_only=True)
class PaymentRefunded(PaymentEvent):
    payment_id: str
    amount_centavos: int
    reason: str


@dataclass(kw_only=True, slots=True)
class PaymentChanged(LocalEvent):
    """A payment entered a status. Recorded once per change and never published: after the
    commit it is the hook for what follows (`payment.service_layer.handlers.EFFECTS`)."""

    payment_id: str
    order_id: str
    status: PaymentStatus  # the status entered
    provider_reference: str
    amount_centavos: int
