"""Repositories: aggregates in and out of PostgreSQL (SQLAlchemy Core, one round trip per read)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from chassis.db import UnitOfWork
from chassis.errors import AlreadyExists
from chassis.repository import (
    AggregateRead,
    SavedHistory,
    children_json,
    compiled,
    outbox_params,
    page_after,
    state_change_sql,
)
from orders.adapters.tables import customers, order_history, order_items, orders, products
from orders.domain.model import (
    KITCHEN_QUEUE,
    Actor,
    Category,
    Customer,
    Order,
    OrderItem,
    OrderStatus,
    PaymentStatus,
    Product,
    StatusChange,
)


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
        # Lock the customer's orders by id, the order in which every other transaction that
        # locks several orders (a consumer's batch) takes them: no deadlock with those.
        locked = (
            sa.select(orders.c.id)
            .where(orders.c.customer_id == customer_id)
            .order_by(orders.c.id)
            .with_for_update()
        )
        self.conn.execute(
            orders.update()
            .where(orders.c.id.in_(locked.scalar_subquery()))
            .values(customer_id=None)
        )


PRODUCT_KEY = (products.c.category, products.c.name, products.c.id)
ORDER_KEY = (orders.c.created_at, orders.c.id)  # newest first


class ProductRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, product: Product) -> None:
        self.conn.execute(products.insert().values(**vars(product)))

    def get(self, product_id: str, for_update: bool = False) -> Product | None:
        query = sa.select(products).where(products.c.id == product_id)
        row = self.conn.execute(query.with_for_update() if for_update else query).first()
        return Product(**row._mapping) if row else None

    def save(self, product: Product) -> None:
        values = {k: v for k, v in vars(product).items() if k != "id"}
        self.conn.execute(products.update().where(products.c.id == product.id).values(**values))

    def search(
        self, category: Category | None, include_archived: bool, after: list[Any] | None, limit: int
    ) -> list[Product]:
        """Products by category, name and id, from just after the key `after`."""
        query = page_after(sa.select(products), PRODUCT_KEY, after, limit)
        if category is not None:
            query = query.where(products.c.category == category)
        if not include_archived:
            query = query.where(products.c.active)
        return [Product(**row._mapping) for row in self.conn.execute(query)]


ORDER_COLUMNS = [
    *orders.c,
    children_json(order_items, "order_id", orders.c.id, "line", "items"),
    children_json(order_history, "order_id", orders.c.id, "id", "history"),
]


_BY_ID = AggregateRead(
    "orders", compiled(sa.select(*ORDER_COLUMNS)), "orders.id = %(order_id)s::uuid"
)
# Several orders by id, for the live views' shared reads (read only).
_BY_IDS = compiled(sa.select(*ORDER_COLUMNS)) + " WHERE orders.id = ANY(%(order_ids)s::uuid[])"


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _order(row: Any) -> Order:
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
            h["actor_subject"],
        )
        for h in m["history"]
    ]
    return Order(
        id=str(m["id"]),
        number=m["number"],
        customer_id=_str_or_none(m["customer_id"]),
        request_id=m["request_id"],
        items=items,
        status=OrderStatus(m["status"]),
        payment_status=PaymentStatus(m["payment_status"]),
        payment_id=_str_or_none(m["payment_id"]),
        payment_deadline=m["payment_deadline"],
        history=history,
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def _history_params(history: list[StatusChange]) -> dict[str, Any]:
    return {
        "h_status": [h.status.value for h in history],
        "h_actor": [h.actor.value for h in history],
        "h_reason": [h.reason for h in history],
        "h_time": [h.time for h in history],
        "h_by": [h.actor_subject for h in history],
    }


_HISTORY_INSERT = """INSERT INTO order_history (order_id, status, actor, reason, time,
                                   actor_subject)
    SELECT o.id, h.status::order_status, h.actor::actor, h.reason, h.time, h.by
    FROM o, unnest(%(h_status)s::text[], %(h_actor)s::text[], %(h_reason)s::text[],
                   %(h_time)s::timestamptz[], %(h_by)s::text[])
         AS h(status, actor, reason, time, by)"""

_CHECKOUT_CATALOGUE = """
SELECT n.number, p.id, p.name, p.description, p.category, p.price_centavos,
       p.preparation_seconds, p.active, p.created_at, p.updated_at
FROM (SELECT nextval(pg_get_serial_sequence('orders', 'number')) AS number) AS n
LEFT JOIN products AS p ON p.id = ANY(%(ids)s::uuid[])"""

# A checkout: the order, its items, its first history entry and OrderCreated, in one statement
# that writes nothing at all when the request id is already taken.
_ADD_ORDER = state_change_sql(
    "o",
    """INSERT INTO orders (id, number, customer_id, request_id, status, payment_status,
                           payment_deadline, total_centavos, created_at, updated_at)
       VALUES (%(id)s::uuid, %(number)s, %(customer_id)s::uuid, %(request_id)s,
               %(status)s::order_status, %(payment_status)s::payment_status, %(payment_deadline)s,
               %(total)s, %(created_at)s, %(updated_at)s)
       ON CONFLICT (request_id) DO NOTHING
       RETURNING id""",
    _HISTORY_INSERT,
    """items AS (
       INSERT INTO order_items (order_id, line, product_id, name, category, unit_price_centavos,
                                quantity, notes)
       SELECT o.id, x.line, x.product_id, x.name, x.category::product_category, x.price,
              x.quantity, x.notes
       FROM o, unnest(%(i_line)s::int[], %(i_product)s::uuid[], %(i_name)s::text[],
                      %(i_category)s::text[], %(i_price)s::bigint[], %(i_quantity)s::int[],
                      %(i_notes)s::text[])
            AS x(line, product_id, name, category, price, quantity, notes))""",
    only_if_written=True,
)

# A state change: the order's row, its new history entries and its events, in one statement.
_SAVE_ORDER = state_change_sql(
    "o",
    """UPDATE orders SET status = %(status)s::order_status,
                         payment_status = %(payment_status)s::payment_status,
                         payment_id = %(payment_id)s::uuid,
                         payment_deadline = %(payment_deadline)s, updated_at = %(updated_at)s
       WHERE id = %(id)s::uuid
       RETURNING id""",
    _HISTORY_INSERT,
)


class OrderRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.connection
        self.history = SavedHistory()

    def checkout_catalogue(self, product_ids: list[str]) -> tuple[dict[str, Product], int]:
        """The products of a cart and the number of the order about to be created, in one
        round trip (a number taken by a checkout that fails is skipped, like any sequence)."""
        rows = self.conn.exec_driver_sql(_CHECKOUT_CATALOGUE, {"ids": list(set(product_ids))}).all()
        catalogue = {
            str(row.id): Product(
                str(row.id),
                row.name,
                row.description,
                Category(row.category),
                row.price_centavos,
                row.preparation_seconds,
                row.active,
                row.created_at,
                row.updated_at,
            )
            for row in rows
            if row.id
        }
        return catalogue, int(rows[0].number)

    def add(self, order: Order) -> bool:
        """Insert a new order with its items, history and events in one statement; False
        (nothing written) if its request id was taken meanwhile."""
        params = {
            "id": order.id,
            "number": order.number,
            "customer_id": order.customer_id,
            "request_id": order.request_id,
            "status": order.status.value,
            "payment_status": order.payment_status.value,
            "payment_deadline": order.payment_deadline,
            "total": order.total_centavos,
            "created_at": order.created_at,
            "updated_at": order.updated_at,
            "i_line": list(range(len(order.items))),
            "i_product": [i.product_id for i in order.items],
            "i_name": [i.name for i in order.items],
            "i_category": [i.category.value for i in order.items],
            "i_price": [i.unit_price_centavos for i in order.items],
            "i_quantity": [i.quantity for i in order.items],
            "i_notes": [i.notes for i in order.items],
            **_history_params(order.history),
            **outbox_params(self.uow.take_events(order)),
        }
        if not self.conn.exec_driver_sql(_ADD_ORDER, params).scalar():
            return False
        self.history.saved(order, order.history)
        self.uow.track(order)
        return True

    def get(self, order_id: str, for_update: bool = False) -> Order | None:
        row = _BY_ID.one(self.conn, {"order_id": order_id}, for_update)
        return None if row is None else self._loaded(row)

    def _loaded(self, row: Any) -> Order:
        order = _order(row)
        self.history.saved(order, order.history)
        self.uow.track(order)
        return order

    def get_many(self, order_ids: list[str]) -> list[Order]:
        """The orders of these ids that exist (read only: not tracked), in one statement."""
        rows = self.conn.exec_driver_sql(_BY_IDS, {"order_ids": order_ids})
        return [_order(row) for row in rows]

    def id_for_order(self, order_id: str) -> str | None:
        return self.conn.execute(sa.select(orders.c.id).where(orders.c.id == order_id)).scalar()

    def id_for_request(self, request_id: str) -> str | None:
        return self.conn.execute(
            sa.select(orders.c.id).where(orders.c.request_id == request_id)
        ).scalar()

    def save(self, order: Order) -> None:
        """The order's new state, new history entries and events: one statement."""
        params = {
            "id": order.id,
            "status": order.status.value,
            "payment_status": order.payment_status.value,
            "payment_id": order.payment_id,
            "payment_deadline": order.payment_deadline,
            "updated_at": order.updated_at,
            **_history_params(self.history.new(order, order.history)),
            **outbox_params(self.uow.take_events(order)),
        }
        self.conn.exec_driver_sql(_SAVE_ORDER, params)
        self.history.saved(order, order.history)

    def search(
        self,
        status: OrderStatus | None,
        customer_id: str | None,
        created_after: datetime | None,
        created_before: datetime | None,
        after: list[Any] | None,
        limit: int,
    ) -> list[Order]:
        """Orders, newest first, from just after the key `after`."""
        query = page_after(sa.select(*ORDER_COLUMNS), ORDER_KEY, after, limit, descending=True)
        if status is not None:
            query = query.where(orders.c.status == status)
        if customer_id is not None:
            query = query.where(orders.c.customer_id == customer_id)
        if created_after is not None:
            query = query.where(orders.c.created_at >= created_after)
        if created_before is not None:
            query = query.where(orders.c.created_at < created_before)
        return [_order(row) for row in self.conn.execute(query)]

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
        return [_order(row) for row in self.conn.execute(query)]

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
