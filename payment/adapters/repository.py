"""Payments in and out of PostgreSQL (SQLAlchemy Core, one round trip per read)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from chassis.db import UnitOfWork, children_json, outbox_params, state_change_sql
from payment.adapters.tables import payment_history, payments, provider_notifications
from payment.domain.model import Payment, PaymentStatus, StatusChange

COLUMNS = [
    *payments.c,
    children_json(payment_history, "payment_id", payments.c.id, "id", "history"),
]


def payment_from_row(row: Any) -> Payment:
    m = dict(row._mapping)
    m["id"], m["order_id"], m["status"] = (
        str(m["id"]),
        str(m["order_id"]),
        PaymentStatus(m["status"]),
    )
    history = [
        StatusChange(PaymentStatus(h["status"]), h["reason"], datetime.fromisoformat(h["time"]))
        for h in m.pop("history")
    ]
    payment = Payment(**m, history=history)
    payment._saved_history = len(history)  # type: ignore[attr-defined]
    return payment


_SELECT = """
SELECT p.id, p.order_id, p.amount_centavos, p.status, p.provider, p.provider_reference, p.qr_code,
       p.expires_at, p.created_at, p.updated_at,
       COALESCE((SELECT json_agg(row_to_json(h) ORDER BY h.id) FROM payment_history AS h
                 WHERE h.payment_id = p.id), '[]') AS history
FROM payments AS p"""

_HISTORY_INSERT = """INSERT INTO payment_history (payment_id, status, reason, time)
    SELECT p.id, h.status::payment_status, h.reason, h.time
    FROM p, unnest(%(h_status)s::text[], %(h_reason)s::text[], %(h_time)s::timestamptz[])
         AS h(status, reason, time)"""

# A new payment, its first history entry and PaymentCreated in one statement; nothing at all
# is written when the order already has a payment.
_ADD = state_change_sql(
    "p",
    """INSERT INTO payments (id, order_id, amount_centavos, status, provider, provider_reference,
                             qr_code, expires_at, created_at, updated_at)
       VALUES (%(id)s::uuid, %(order_id)s::uuid, %(amount)s, %(status)s::payment_status,
               %(provider)s, %(reference)s, %(qr_code)s, %(expires_at)s, %(created_at)s,
               %(updated_at)s)
       ON CONFLICT (order_id) DO NOTHING
       RETURNING id""",
    _HISTORY_INSERT,
    only_if_written=True,
)

# A state change: the row, its new history entries and its events in one statement.
_SAVE = state_change_sql(
    "p",
    """UPDATE payments SET status = %(status)s::payment_status, expires_at = %(expires_at)s,
                           updated_at = %(updated_at)s
       WHERE id = %(id)s::uuid
       RETURNING id""",
    _HISTORY_INSERT,
)


def _history_params(history: list[StatusChange]) -> dict[str, Any]:
    return {
        "h_status": [h.status.value for h in history],
        "h_reason": [h.reason for h in history],
        "h_time": [h.time for h in history],
    }


class PaymentRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.connection

    def add(self, payment: Payment) -> bool:
        """Insert with its history and events; False (nothing written) when the order
        already has a payment."""
        params = {
            "id": payment.id,
            "order_id": payment.order_id,
            "amount": payment.amount_centavos,
            "status": payment.status.value,
            "provider": payment.provider,
            "reference": payment.provider_reference,
            "qr_code": payment.qr_code,
            "expires_at": payment.expires_at,
            "created_at": payment.created_at,
            "updated_at": payment.updated_at,
            **_history_params(payment.history),
            **outbox_params(self.uow.take_events(payment)),
        }
        if not self.conn.exec_driver_sql(_ADD, params).scalar():
            return False
        payment._saved_history = len(payment.history)  # type: ignore[attr-defined]
        self.uow.track(payment)
        return True

    def _one(self, where: str, params: dict[str, Any], for_update: bool) -> Payment | None:
        row = None
        if for_update:
            # Usually free: lock and read in one statement that never waits. If another
            # transaction holds the row, wait for the lock, then read: a statement that waited
            # would read the history as it was before the wait.
            row = self.conn.exec_driver_sql(
                f"{_SELECT} WHERE {where} FOR UPDATE OF p SKIP LOCKED", params
            ).first()
            if row is None:
                locked = self.conn.exec_driver_sql(
                    f"SELECT id FROM payments AS p WHERE {where} FOR UPDATE", params
                ).first()
                if locked is None:
                    return None
                where, params = "p.id = %(locked)s", {"locked": locked.id}
        if row is None:
            row = self.conn.exec_driver_sql(f"{_SELECT} WHERE {where}", params).first()
        if row is None:
            return None
        payment = payment_from_row(row)
        self.uow.track(payment)
        return payment

    def get(self, payment_id: str, for_update: bool = False) -> Payment | None:
        return self._one("p.id = %(id)s::uuid", {"id": payment_id}, for_update)

    def for_order(self, order_id: str, for_update: bool = False) -> Payment | None:
        return self._one("p.order_id = %(order_id)s::uuid", {"order_id": order_id}, for_update)

    def by_reference(
        self, provider: str, reference: str, for_update: bool = False
    ) -> Payment | None:
        return self._one(
            "p.provider = %(provider)s AND p.provider_reference = %(reference)s",
            {"provider": provider, "reference": reference},
            for_update,
        )

    def save(self, payment: Payment) -> None:
        saved = getattr(payment, "_saved_history", 0)
        params = {
            "id": payment.id,
            "status": payment.status.value,
            "expires_at": payment.expires_at,
            "updated_at": payment.updated_at,
            **_history_params(payment.history[saved:]),
            **outbox_params(self.uow.take_events(payment)),
        }
        self.conn.exec_driver_sql(_SAVE, params)
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

    def _pending(self, condition: str, order: str, limit: int) -> list[Payment]:
        """PENDING payments, locked, skipping those another transaction holds (a statement
        that never waits for a lock reads the history as it is)."""
        rows = self.conn.exec_driver_sql(
            f"{_SELECT} WHERE p.status = 'PENDING' AND {condition} ORDER BY {order} "
            "LIMIT %(limit)s FOR UPDATE OF p SKIP LOCKED",
            {"limit": limit},
        )
        found = [payment_from_row(row) for row in rows]
        for payment in found:
            self.uow.track(payment)
        return found

    def overdue(self, limit: int) -> list[Payment]:
        """PENDING payments past their expiry."""
        return self._pending("p.expires_at <= now()", "p.expires_at", limit)

    def pending_older_than(self, age: timedelta, limit: int) -> list[Payment]:
        seconds = max(age.total_seconds(), 0.0)
        return self._pending(
            f"p.created_at <= now() - interval '{seconds:.3f} seconds'", "p.created_at", limit
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
