"""Repositories: aggregates in and out of PostgreSQL (SQLAlchemy Core, one round trip per read)."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from chassis import metrics
from chassis.db import UnitOfWork, children_json
from chassis.errors import AlreadyExists
from orders.adapters.tables import customers, order_history, order_items, orders, products
from orders.domain.model import (
    KITCHEN_QUEUE,
    Actor,
    Category,
    Customer,
    Order,
    OrderItem,
    OrderStatus,
    Product,
    StatusChange,
)

ORDER_CHANGED_CHANNEL = "order_changed"


class CustomerRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, customer: Customer) -> None:
        inserted = self.conn.execute(
            insert(customers)
            .values(**vars(customer))
            .on_conflict_do_nothing()
            .returning(customers.c.id)
        ).first()
        if inserted is None:
            raise AlreadyExists("customer", "a customer with this CPF is already registered")

    def get(self, customer_id: str, for_update: bool = False) -> Customer | None:
        query = sa.select(customers).where(customers.c.id == customer_id)
        row = self.conn.execute(query.with_for_update() if for_update else query).first()
        return Customer(**row._mapping) if row else None

    def by_cpf(self, cpf: str) -> Customer | None:
        row = self.conn.execute(sa.select(customers).where(customers.c.cpf == cpf)).first()
        return Customer(**row._mapping) if row else None

    def save(self, customer: Customer) -> None:
        values = {k: v for k, v in vars(customer).items() if k != "id"}
        self.conn.execute(customers.update().where(customers.c.id == customer.id).values(**values))

    def detach_orders(self, customer_id: str) -> None:
        self.conn.execute(
            orders.update().where(orders.c.customer_id == customer_id).values(customer_id=None)
        )


class ProductRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, product: Product) -> None:
        self.conn.execute(products.insert().values(**vars(product)))

    def get(self, product_id: str, for_update: bool = False) -> Product | None:
        query = sa.select(products).where(products.c.id == product_id)
        row = self.conn.execute(query.with_for_update() if for_update else query).first()
        return Product(**row._mapping) if row else None

    def get_many(self, ids: list[str]) -> dict[str, Product]:
        rows = self.conn.execute(sa.select(products).where(products.c.id.in_(set(ids))))
        return {row.id: Product(**row._mapping) for row in rows}

    def save(self, product: Product) -> None:
        values = {k: v for k, v in vars(product).items() if k != "id"}
        self.conn.execute(products.update().where(products.c.id == product.id).values(**values))

    def search(
        self, category: Category | None, include_archived: bool, after: list[Any] | None, limit: int
    ) -> list[Product]:
        query = (
            sa.select(products)
            .order_by(products.c.category, products.c.name, products.c.id)
            .limit(limit)
        )
        if category is not None:
            query = query.where(products.c.category == category)
        if not include_archived:
            query = query.where(products.c.active)
        if after is not None:
            key = sa.tuple_(products.c.category, products.c.name, products.c.id)
            query = query.where(
                key > sa.tuple_(sa.cast(after[0], products.c.category.type), after[1], after[2])
            )
        return [Product(**row._mapping) for row in self.conn.execute(query)]


ORDER_COLUMNS = [
    *orders.c,
    children_json(order_items, "order_id", orders.c.id, "line", "items"),
    children_json(order_history, "order_id", orders.c.id, "id", "history"),
]


def order_from_row(row: Any) -> Order:
    m = row._mapping
    items = [
        OrderItem(
            i["product_id"],
            i["name"],
            Category(i["category"]),
            i["unit_price_centavos"],
            i["quantity"],
            i["notes"],
        )
        for i in m["items"]
    ]
    history = [
        StatusChange(
            OrderStatus(h["status"]),
            Actor(h["actor"]),
            h["reason"],
            datetime.fromisoformat(h["time"]),
        )
        for h in m["history"]
    ]
    order = Order(
        id=m["id"],
        number=m["number"],
        customer_id=m["customer_id"],
        request_id=m["request_id"],
        items=items,
        status=m["status"],
        payment_status=m["payment_status"],
        payment_id=m["payment_id"],
        payment_deadline=m["payment_deadline"],
        history=history,
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )
    order._saved_history = len(history)  # type: ignore[attr-defined]
    return order


class OrderRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.connection

    def add(self, order: Order) -> bool:
        """Insert a new order; False if its request id was taken meanwhile (nothing written)."""
        row = self.conn.execute(
            insert(orders)
            .values(
                id=order.id,
                customer_id=order.customer_id,
                request_id=order.request_id,
                status=order.status,
                payment_status=order.payment_status,
                payment_id=order.payment_id,
                payment_deadline=order.payment_deadline,
                total_centavos=order.total_centavos,
                created_at=order.created_at,
                updated_at=order.updated_at,
            )
            .on_conflict_do_nothing(index_elements=["request_id"])
            .returning(orders.c.number)
        ).first()
        if row is None:
            return False
        order.number = row.number
        self.conn.execute(
            order_items.insert(),
            [
                {
                    "order_id": order.id,
                    "line": n,
                    "product_id": i.product_id,
                    "name": i.name,
                    "category": i.category,
                    "unit_price_centavos": i.unit_price_centavos,
                    "quantity": i.quantity,
                    "notes": i.notes,
                }
                for n, i in enumerate(order.items)
            ],
        )
        order._saved_history = 0  # type: ignore[attr-defined]
        self._save_history(order)
        self.uow.track(order)
        self._notify(order.id)
        return True

    def get(self, order_id: str, for_update: bool = False) -> Order | None:
        if for_update:
            # Lock, then read in a second statement: a statement that waited for the lock reads
            # the newest row but its subqueries keep the snapshot taken before the wait, so the
            # items and history read along with the lock could miss a change just committed.
            locked = self.conn.execute(
                sa.select(orders.c.id).where(orders.c.id == order_id).with_for_update()
            ).first()
            if locked is None:
                return None
        row = self.conn.execute(sa.select(*ORDER_COLUMNS).where(orders.c.id == order_id)).first()
        if row is None:
            return None
        order = order_from_row(row)
        self.uow.track(order)
        return order

    def id_for_order(self, order_id: str) -> str | None:
        return self.conn.execute(sa.select(orders.c.id).where(orders.c.id == order_id)).scalar()

    def id_for_request(self, request_id: str) -> str | None:
        return self.conn.execute(
            sa.select(orders.c.id).where(orders.c.request_id == request_id)
        ).scalar()

    def save(self, order: Order) -> None:
        self.conn.execute(
            orders.update()
            .where(orders.c.id == order.id)
            .values(
                status=order.status,
                payment_status=order.payment_status,
                payment_id=order.payment_id,
                payment_deadline=order.payment_deadline,
                updated_at=order.updated_at,
            )
        )
        self._save_history(order)
        self._notify(order.id)

    def _save_history(self, order: Order) -> None:
        saved = getattr(order, "_saved_history", 0)
        new = order.history[saved:]
        if new:
            self.conn.execute(
                order_history.insert(),
                [
                    {
                        "order_id": order.id,
                        "status": h.status,
                        "actor": h.actor,
                        "reason": h.reason,
                        "time": h.time,
                    }
                    for h in new
                ],
            )
            for h in new:
                if h.status is OrderStatus.RECEIVED:  # paid: the saga's happy path is done
                    paid_after = (h.time - order.created_at).total_seconds()
                    self.uow.after_commit(
                        functools.partial(metrics.CHECKOUT_TO_PAID.observe, paid_after)
                    )
        order._saved_history = len(order.history)  # type: ignore[attr-defined]

    def _notify(self, order_id: str) -> None:
        """Wake WatchOrder streams in every replica once this transaction commits."""
        self.conn.execute(sa.select(sa.func.pg_notify(ORDER_CHANGED_CHANNEL, order_id)))

    def search(
        self,
        status: OrderStatus | None,
        customer_id: str | None,
        created_after: datetime | None,
        created_before: datetime | None,
        after: list[Any] | None,
        limit: int,
    ) -> list[Order]:
        query = (
            sa.select(*ORDER_COLUMNS)
            .order_by(orders.c.created_at.desc(), orders.c.id.desc())
            .limit(limit)
        )
        if status is not None:
            query = query.where(orders.c.status == status)
        if customer_id is not None:
            query = query.where(orders.c.customer_id == customer_id)
        if created_after is not None:
            query = query.where(orders.c.created_at >= created_after)
        if created_before is not None:
            query = query.where(orders.c.created_at < created_before)
        if after is not None:
            query = query.where(
                sa.tuple_(orders.c.created_at, orders.c.id)
                < sa.tuple_(
                    sa.cast(after[0], orders.c.created_at.type), sa.cast(after[1], orders.c.id.type)
                )
            )
        return [order_from_row(row) for row in self.conn.execute(query)]

    def kitchen_queue(self, limit: int) -> list[Order]:
        """READY, then IN_PREPARATION, then RECEIVED, oldest first in each: one index range each."""
        parts = [
            sa.select(orders.c.id, sa.literal(rank).label("rank"), orders.c.created_at)
            .where(orders.c.status == status)
            .order_by(orders.c.created_at, orders.c.id)
            .limit(limit)
            for rank, status in enumerate(KITCHEN_QUEUE)
        ]
        queue = sa.union_all(*parts).subquery("queue")
        query = (
            sa.select(*ORDER_COLUMNS)
            .join(queue, queue.c.id == orders.c.id)
            .order_by(queue.c.rank, queue.c.created_at, orders.c.id)
            .limit(limit)
        )
        return [order_from_row(row) for row in self.conn.execute(query)]

    def overdue(self, limit: int) -> list[str]:
        """Ids of PENDING_PAYMENT orders past their deadline, locked for this transaction."""
        query = (
            sa.select(orders.c.id)
            .where(
                orders.c.status == OrderStatus.PENDING_PAYMENT,
                orders.c.payment_deadline < sa.func.now(),
            )
            .order_by(orders.c.payment_deadline)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [str(i) for i in self.conn.execute(query).scalars()]
