"""Payments in and out of PostgreSQL (SQLAlchemy Core, one round trip per read)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from chassis.db import UnitOfWork
from chassis.repository import (
    OUTBOX_INSERT,
    AggregateRead,
    Arrays,
    ChangeSet,
    HistoryRows,
    Prepared,
    SavedHistory,
    StateChanges,
    children_json,
    compiled,
    insert_new,
    page_after,
)
from payment.adapters.tables import payment_history, payments
from payment.domain.model import Payment, PaymentStatus, StatusChange

COLUMNS = [
    *payments.c,
    children_json(payment_history, "payment_id", payments.c.id, "id", "history"),
]


def _payment(row: Any) -> Payment:
    m = dict(row._mapping)
    m["id"], m["order_id"], m["status"] = (
        str(m["id"]),
        str(m["order_id"]),
        PaymentStatus(m["status"]),
    )
    history = [
        StatusChange(
            PaymentStatus(h["status"]),
            h["reason"],
            datetime.fromisoformat(h["time"]),
            h["actor_subject"],
        )
        for h in m.pop("history")
    ]
    return Payment(**m, history=history)


KEY = (payments.c.created_at, payments.c.id)  # newest first
_SELECT = compiled(sa.select(*COLUMNS))
_BY_ID = AggregateRead("payments", _SELECT, "payments.id = %(id)s::uuid")
_BY_ORDER = AggregateRead("payments", _SELECT, "payments.order_id = %(order_id)s::uuid")
_BY_REFERENCE = AggregateRead(
    "payments",
    _SELECT,
    "payments.provider = %(provider)s AND payments.provider_reference = %(reference)s",
)

# A payment's history, as a statement writes it.
_HISTORY = HistoryRows(
    "payment_history",
    "payment_id",
    {"status": "payment_status", "reason": "text", "time": "timestamptz", "actor_subject": "text"},
    lambda h: {
        "status": h.status.value,
        "reason": h.reason,
        "time": h.time,
        "actor_subject": h.actor_subject,
    },
)

_IDS_FOR_ORDERS = Prepared(
    "SELECT order_id, id, status FROM payments WHERE order_id = ANY(%(ids)s::uuid[])"
)


# New payments, their first history entries and their events in one statement; nothing of a
# payment is written when its order already has one.
_ADD_MANY = Prepared(f"""
WITH p AS (
  INSERT INTO payments (id, order_id, amount_centavos, status, provider, provider_reference,
                        qr_code, expires_at, created_at, updated_at)
  SELECT * FROM unnest(%(id)s::uuid[], %(order_id)s::uuid[], %(amount)s::bigint[],
                       %(status)s::payment_status[], %(provider)s::text[], %(reference)s::text[],
                       %(qr_code)s::text[], %(expires_at)s::timestamptz[],
                       %(created_at)s::timestamptz[], %(updated_at)s::timestamptz[])
  ON CONFLICT (order_id) DO NOTHING
  RETURNING id, order_id),
{_HISTORY.cte("p")},
events AS ({OUTBOX_INSERT} WHERE ob.aggregate_id IN (SELECT order_id::text FROM p))
SELECT id::text FROM p""")
_ADD_MANY_ARRAYS = [
    "id",
    "order_id",
    "amount",
    "status",
    "provider",
    "reference",
    "qr_code",
    "expires_at",
    "created_at",
    "updated_at",
    *_HISTORY.names,
]

# State changes: the payments' rows, their new history entries and their events (about their
# orders), in one statement for all the payments a transaction changed.
_SAVE = StateChanges(
    "payments",
    {"status": "payment_status", "expires_at": "timestamptz", "updated_at": "timestamptz"},
    lambda payment: {
        "status": payment.status.value,
        "expires_at": payment.expires_at,
        "updated_at": payment.updated_at,
    },
    _HISTORY,
    event_key="order_id",
)
# PENDING payments, locked, skipping those another transaction holds (a statement that never
# waits for a lock reads the history as it is).
_PENDING = (
    "WHERE payments.status = 'PENDING' AND {} ORDER BY {} LIMIT %(limit)s "
    "FOR UPDATE OF payments SKIP LOCKED"
)
_OVERDUE = Prepared(
    f"{_SELECT} " + _PENDING.format("payments.expires_at <= now()", "payments.expires_at")
)
_OLDER_THAN = Prepared(
    f"{_SELECT} "
    + _PENDING.format(
        "payments.created_at <= now() - %(seconds)s::float8 * interval '1 second'",
        "payments.created_at",
    )
)
# Provider notifications, each remembered once: the ids of those not received before.
_RECORD_NOTIFICATIONS = Prepared("""
INSERT INTO provider_notifications (provider, notification_id, payment_id, status, outcome)
SELECT %(provider)s, n.* FROM unnest(%(ids)s::text[], %(payments)s::uuid[], %(statuses)s::text[],
                                     %(outcomes)s::text[]) AS n(id, payment_id, status, outcome)
ON CONFLICT DO NOTHING
RETURNING notification_id""")


class PaymentRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.connection
        self.history = SavedHistory()
        self._saved = ChangeSet(uow, self.history, _SAVE)

    def add(self, payment: Payment) -> bool:
        """Insert with its history and events; False (nothing written) when the order
        already has a payment."""
        return bool(self.add_many([payment]))

    def add_many(self, new: list[Payment]) -> set[str]:
        """Insert payments with their history and events in one statement; the ids of those
        written (not one whose order already has a payment)."""
        rows = Arrays(_ADD_MANY_ARRAYS)
        for payment in new:
            rows.add(
                id=payment.id,
                order_id=payment.order_id,
                amount=payment.amount_centavos,
                status=payment.status.value,
                provider=payment.provider,
                reference=payment.provider_reference,
                qr_code=payment.qr_code,
                expires_at=payment.expires_at,
                created_at=payment.created_at,
                updated_at=payment.updated_at,
            )
            _HISTORY.add(rows, payment.id, payment.history)
        return insert_new(self.uow, self.history, _ADD_MANY, rows, new)

    def ids_for_orders(self, order_ids: list[str]) -> dict[str, tuple[str, PaymentStatus]]:
        """Order id -> (its payment's id, status), for those of `order_ids` with a payment."""
        rows = _IDS_FOR_ORDERS.run(self.conn, {"ids": order_ids})
        return {str(r.order_id): (str(r.id), PaymentStatus(r.status)) for r in rows}

    def _loaded(self, row: Any) -> Payment:
        payment = _payment(row)
        self.history.saved(payment, payment.history)
        self.uow.track(payment)
        return payment

    def _one(self, read: AggregateRead, params: dict[str, Any], for_update: bool) -> Payment | None:
        row = read.one(self.conn, params, for_update)
        return None if row is None else self._loaded(row)

    def get(self, payment_id: str, for_update: bool = False) -> Payment | None:
        return self._one(_BY_ID, {"id": payment_id}, for_update)

    def for_order(self, order_id: str, for_update: bool = False) -> Payment | None:
        return self._one(_BY_ORDER, {"order_id": order_id}, for_update)

    def by_reference(
        self, provider: str, reference: str, for_update: bool = False
    ) -> Payment | None:
        return self._one(_BY_REFERENCE, {"provider": provider, "reference": reference}, for_update)

    def save(self, payment: Payment) -> None:
        """Store the payment's new state, new history entries and events at the commit, with
        every other payment this transaction saves."""
        self._saved.save(payment)

    def search(
        self, status: PaymentStatus | None, after: list[Any] | None, limit: int
    ) -> list[Payment]:
        """Payments, newest first, from just after the key `after`."""
        query = page_after(sa.select(*COLUMNS), KEY, after, limit, descending=True)
        if status is not None:
            query = query.where(payments.c.status == status)
        return [_payment(row) for row in self.conn.execute(query)]

    def _pending(self, query: Prepared, params: dict[str, Any]) -> list[Payment]:
        return [self._loaded(row) for row in query.run(self.conn, params)]

    def overdue(self, limit: int) -> list[Payment]:
        """PENDING payments past their expiry."""
        return self._pending(_OVERDUE, {"limit": limit})

    def pending_older_than(self, age: timedelta, limit: int) -> list[Payment]:
        seconds = max(age.total_seconds(), 0.0)
        return self._pending(_OLDER_THAN, {"limit": limit, "seconds": seconds})

    def record_notifications(
        self, provider: str, notifications: list[tuple[str, str, str, str]]
    ) -> set[str]:
        """Remember provider notifications, each (notification id, payment id, status,
        outcome), in one statement; the ids of those not received before (not replays)."""
        if not notifications:
            return set()
        ids, payment_ids, statuses, outcomes = (
            list(column) for column in zip(*notifications, strict=True)
        )
        rows = _RECORD_NOTIFICATIONS.run(
            self.conn,
            {
                "provider": provider,
                "ids": ids,
                "payments": payment_ids,
                "statuses": statuses,
                "outcomes": outcomes,
            },
        )
        return {row[0] for row in rows}
