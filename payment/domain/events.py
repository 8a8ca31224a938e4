"""Events the payment service publishes (comanda.events.v1, by name)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chassis.events import DomainEvent


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
