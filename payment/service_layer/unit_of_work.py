"""The payment unit of work: one transaction with the payment repository."""

from __future__ import annotations

from collections.abc import Callable

from chassis.db import UnitOfWork
from payment.adapters.repository import PaymentRepository


class PaymentUnitOfWork(UnitOfWork):
    payments: PaymentRepository

    def _open(self) -> None:
        self.payments = PaymentRepository(self)


UowFactory = Callable[[], PaymentUnitOfWork]
