"""Payments in and out of PostgreSQL (SQLAlchemy Core, one round trip per read)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from chassis import metrics
from chassis.db import UnitOfWork, children_json
from payment.adapters.tables import payment_history, payments, provider_notifications
from payment.domain.model import Payment, PaymentStatus, StatusChange

COLUMNS = [
    *payments.c,
    children_json(payment_history, "payment_id", payments.c.id, "id", "history"),
]


def payment_from_row(row: Any) -> Payment:
    m = dict(row._mapping)
    history = [
        StatusChange(PaymentStatus(h["status"]), h["reason"], datetime.fromisoformat(h["time"]))
        for h in m.pop("history")
    ]
    payment = Payment(**m, history=history)
    payment._saved_history = len(history)  # type: ignore[attr-defined]
    return payment


class PaymentRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.connection

    def add(self, payment: Payment) -> bool:
        """Insert; False (nothing written) when the order already has a payment."""
        values = {k: v for k, v in vars(payment).items() if k in payments.c and k != "history"}
        row = self.conn.execute(
            insert(payments)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["order_id"])
            .returning(payments.c.id)
        ).first()
        if row is None:
            return False
        payment._saved_history = 0  # type: ignore[attr-defined]
        self._save_history(payment)
        self.uow.track(payment)
        return True

    def _one(self, where: Any, for_update: bool) -> Payment | None:
        query = sa.select(*COLUMNS).where(where)
        if for_update:
            query = query.with_for_update(of=payments)
        row = self.conn.execute(query).first()
        if row is None:
            return None
        payment = payment_from_row(row)
        self.uow.track(payment)
        return payment

    def get(self, payment_id: str, for_update: bool = False) -> Payment | None:
        return self._one(payments.c.id == payment_id, for_update)

    def for_order(self, order_id: str, for_update: bool = False) -> Payment | None:
        return self._one(payments.c.order_id == order_id, for_update)

    def by_reference(
        self, provider: str, reference: str, for_update: bool = False
    ) -> Payment | None:
        return self._one(
            sa.and_(payments.c.provider == provider, payments.c.provider_reference == reference),
            for_update,
        )

    def save(self, payment: Payment) -> None:
        self.conn.execute(
            payments.update()
            .where(payments.c.id == payment.id)
            .values(
                status=payment.status, expires_at=payment.expires_at, updated_at=payment.updated_at
            )
        )
        self._save_history(payment)

    def _save_history(self, payment: Payment) -> None:
        new = payment.history[getattr(payment, "_saved_history", 0) :]
        if new:
            self.conn.execute(
                payment_history.insert(),
                [
                    {
                        "payment_id": payment.id,
                        "status": h.status,
                        "reason": h.reason,
                        "time": h.time,
                    }
                    for h in new
                ],
            )
            for h in new:
                self.uow.after_commit(metrics.PAYMENTS.labels(h.status.value).inc)
        payment._saved_history = len(payment.history)  # type: ignore[attr-defined]

    def search(
        self, status: PaymentStatus | None, after: list[Any] | None, limit: int
    ) -> list[Payment]:
        query = (
            sa.select(*COLUMNS)
            .order_by(payments.c.created_at.desc(), payments.c.id.desc())
            .limit(limit)
        )
        if status is not None:
            query = query.where(payments.c.status == status)
        if after is not None:
            query = query.where(
                sa.tuple_(payments.c.created_at, payments.c.id)
                < sa.tuple_(
                    sa.cast(after[0], payments.c.created_at.type),
                    sa.cast(after[1], payments.c.id.type),
                )
            )
        return [payment_from_row(row) for row in self.conn.execute(query)]

    def _pending_ids(self, condition: Any, order: Any, limit: int) -> list[str]:
        query = (
            sa.select(payments.c.id)
            .where(payments.c.status == PaymentStatus.PENDING, condition)
            .order_by(order)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [str(i) for i in self.conn.execute(query).scalars()]

    def overdue(self, limit: int) -> list[str]:
        """PENDING payments past their expiry, locked (skipping rows another replica holds)."""
        return self._pending_ids(
            payments.c.expires_at <= sa.func.now(), payments.c.expires_at, limit
        )

    def pending_older_than(self, age: timedelta, limit: int) -> list[str]:
        return self._pending_ids(
            payments.c.created_at <= sa.func.now() - age, payments.c.created_at, limit
        )

    def record_notification(
        self, provider: str, notification_id: str, payment_id: str, status: str, outcome: str
    ) -> bool:
        """Remember a provider notification; False if it was received before (a replay)."""
        row = self.conn.execute(
            insert(provider_notifications)
            .values(
                provider=provider,
                notification_id=notification_id,
                payment_id=payment_id,
                status=status,
                outcome=outcome,
            )
            .on_conflict_do_nothing()
            .returning(provider_notifications.c.notification_id)
        ).first()
        return row is not None
