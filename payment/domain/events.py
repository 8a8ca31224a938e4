"""Events the payment service emits (comanda.events.v1, by name)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chassis.events import DomainEvent


@dataclass(kw_only=True)
class PaymentCreated(DomainEvent):
    payment_id: str
    amount_centavos: int
    expire_time: datetime | None


@dataclass(kw_only=True)
class PaymentApproved(DomainEvent):
    payment_id: str
    amount_centavos: int


@dataclass(kw_only=True)
class PaymentDeclined(DomainEvent):
    payment_id: str
    reason: str


@dataclass(kw_only=True)
class PaymentExpired(DomainEvent):
    payment_id: str


@dataclass(kw_only=True)
class PaymentCancelled(DomainEvent):
    payment_id: str


@dataclass(kw_only=True)
class PaymentRefunded(DomainEvent):
    payment_id: str
    amount_centavos: int
    reason: str
