"""The payment unit of work: one transaction with the payment repository."""

from __future__ import annotations

from collections.abc import Callable

from chassis.db import UnitOfWork
from chassis.messaging.codec import EventCodec
from comanda.events.v1 import events_pb2
from payment.adapters.repository import PaymentRepository

# The saga's events (comanda.events.v1), each about the order named in its order_id.
CODEC = EventCodec(events_pb2, aggregate_field="order_id")


class PaymentUnitOfWork(UnitOfWork):
    codec = CODEC
    payments: PaymentRepository

    def _open(self) -> None:
        self.payments = PaymentRepository(self)


UowFactory = Callable[[], PaymentUnitOfWork]
