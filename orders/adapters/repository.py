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

    def ids_by_cpf(self, cpfs: set[str]) -> dict[str, str]:
        """CPF -> customer id, for those of `cpfs` that are registered."""
        rows = self.conn.execute(
            sa.select(customers.c.cpf, customers.c.id).where(customers.c.cpf.in_(cpfs))
        )
        return {row.cpf: str(row.id) for row in rows}

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


_SELECT = compiled(sa.select(*ORDER_COLUMNS))
_BY_ID = AggregateRead("orders", _SELECT, "orders.id = %(order_id)s::uuid")
# Several orders by id, for the live views' shared reads (read only).
_BY_IDS = Prepared(_SELECT + " WHERE orders.id = ANY(%(order_ids)s::uuid[])")
_BY_REQUEST_IDS = Prepared(_SELECT + " WHERE orders.request_id = ANY(%(ids)s::text[])")


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


# An order's history, as a statement writes it.
_HISTORY = HistoryRows(
    "order_history",
    "order_id",
    {
        "status": "order_status",
        "actor": "actor",
        "reason": "text",
        "time": "timestamptz",
        "actor_subject": "text",
    },
    lambda h: {
        "status": h.status.value,
        "actor": h.actor.value,
        "reason": h.reason,
        "time": h.time,
        "actor_subject": h.actor_subject,
    },
)


_CHECKOUT_CATALOGUE = Prepared("""
SELECT n.numbers, p.id, p.name, p.description, p.category, p.price_centavos,
       p.preparation_seconds, p.active, p.created_at, p.updated_at
FROM (SELECT array_agg(nextval(pg_get_serial_sequence('orders', 'number'))) AS numbers
      FROM generate_series(1, %(count)s)) AS n
LEFT JOIN products AS p ON p.id = ANY(%(ids)s::uuid[])""")

# Checkouts: the orders, their items, their first history entries and their OrderCreated, in
# one statement; an order whose request id is taken is not written, nor is anything of it.
_ADD_ORDERS = Prepared(f"""
WITH o AS (
  INSERT INTO orders (id, number, customer_id, request_id, status, payment_status,
                      payment_deadline, total_centavos, created_at, updated_at)
  SELECT * FROM unnest(%(id)s::uuid[], %(number)s::bigint[], %(customer_id)s::uuid[],
                       %(request_id)s::text[], %(status)s::order_status[],
                       %(payment_status)s::payment_status[], %(payment_deadline)s::timestamptz[],
                       %(total)s::bigint[], %(created_at)s::timestamptz[],
                       %(updated_at)s::timestamptz[])
  ON CONFLICT (request_id) DO NOTHING
  RETURNING id),
items AS (
  INSERT INTO order_items (order_id, line, product_id, name, category, unit_price_centavos,
                           quantity, notes)
  SELECT x.order_id, x.line, x.product_id, x.name, x.category::product_category, x.price,
         x.quantity, x.notes
  FROM unnest(%(i_order)s::uuid[], %(i_line)s::int[], %(i_product)s::uuid[], %(i_name)s::text[],
              %(i_category)s::text[], %(i_price)s::bigint[], %(i_quantity)s::int[],
              %(i_notes)s::text[])
       AS x(order_id, line, product_id, name, category, price, quantity, notes)
  WHERE x.order_id IN (SELECT id FROM o)),
{_HISTORY.cte("o")},
events AS ({OUTBOX_INSERT} WHERE ob.aggregate_id IN (SELECT id::text FROM o))
SELECT id::text FROM o""")
_ADD_ORDERS_ARRAYS = [
    "id",
    "number",
    "customer_id",
    "request_id",
    "status",
    "payment_status",
    "payment_deadline",
    "total",
    "created_at",
    "updated_at",
    "i_order",
    "i_line",
    "i_product",
    "i_name",
    "i_category",
    "i_price",
    "i_quantity",
    "i_notes",
    *_HISTORY.names,
]

# State changes: the orders' rows, their new history entries and their events, in one statement
# for all the orders a transaction changed.
_SAVE_ORDERS = StateChanges(
    "orders",
    {
        "status": "order_status",
        "payment_status": "payment_status",
        "payment_id": "uuid",
        "payment_deadline": "timestamptz",
        "updated_at": "timestamptz",
    },
    lambda order: {
        "status": order.status.value,
        "payment_status": order.payment_status.value,
        "payment_id": order.payment_id,
        "payment_deadline": order.payment_deadline,
        "updated_at": order.updated_at,
    },
    _HISTORY,
)
# Lock several orders, in id order (the one order every transaction locking several takes).
_LOCK = Prepared(
    "SELECT id::text FROM orders WHERE id = ANY(%(order_ids)s::uuid[]) ORDER BY id FOR UPDATE"
)


class OrderRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.connection
        self.history = SavedHistory()
        # The orders this transaction holds locked (None: no such order), by id.
        self._locked: dict[str, Order | None] = {}
        self._saved = ChangeSet(uow, self.history, _SAVE_ORDERS)

    def checkout_catalogue(
        self, product_ids: set[str], count: int
    ) -> tuple[dict[str, Product], list[int]]:
        """The products of some carts and the numbers of `count` orders about to be created,
        in one round trip (a number taken by a checkout that fails is skipped, like any
        sequence)."""
        rows = _CHECKOUT_CATALOGUE.run(self.conn, {"ids": list(product_ids), "count": count})
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
        return catalogue, list(rows[0].numbers)

    def add_many(self, new: list[Order]) -> set[str]:
        """Insert new orders with their items, history and events in one statement; returns
        the ids of those written (not one whose request id was taken meanwhile)."""
        rows = Arrays(_ADD_ORDERS_ARRAYS)
        for order in new:
            rows.add(
                id=order.id,
                number=order.number,
                customer_id=order.customer_id,
                request_id=order.request_id,
                status=order.status.value,
                payment_status=order.payment_status.value,
                payment_deadline=order.payment_deadline,
                total=order.total_centavos,
                created_at=order.created_at,
                updated_at=order.updated_at,
            )
            for line, item in enumerate(order.items):
                rows.add(
                    i_order=order.id,
                    i_line=line,
                    i_product=item.product_id,
                    i_name=item.name,
                    i_category=item.category.value,
                    i_price=item.unit_price_centavos,
                    i_quantity=item.quantity,
                    i_notes=item.notes,
                )
            _HISTORY.add(rows, order.id, order.history)
        return insert_new(self.uow, self.history, _ADD_ORDERS, rows, new)

    def get(self, order_id: str, for_update: bool = False) -> Order | None:
        if for_update and order_id in self._locked:
            return self._locked[order_id]
        row = _BY_ID.one(self.conn, {"order_id": order_id}, for_update)
        order = None if row is None else self._loaded(row)
        if for_update:
            self._locked[order_id] = order
        return order

    def lock(self, order_ids: list[str]) -> None:
        """Lock these orders (in id order, waiting for any another transaction holds), then
        read them: two statements for however many, and `get(..., for_update=True)` finds
        them. The read comes after the locks, in a statement of its own, so it sees what a
        transaction that held one of them committed."""
        wanted = sorted({i for i in order_ids if i not in self._locked})
        if not wanted:
            return
        found = {row[0] for row in _LOCK.run(self.conn, {"order_ids": wanted})}
        for row in _BY_IDS.run(self.conn, {"order_ids": sorted(found)}) if found else ():
            self._locked[str(row.id)] = self._loaded(row)
        for order_id in wanted:
            self._locked.setdefault(order_id, None)

    def _loaded(self, row: Any) -> Order:
        order = _order(row)
        self.history.saved(order, order.history)
        self.uow.track(order)
        return order

    def get_many(self, order_ids: list[str]) -> list[Order]:
        """The orders of these ids that exist (read only: not tracked), in one statement."""
        rows = _BY_IDS.run(self.conn, {"order_ids": order_ids})
        return [_order(row) for row in rows]

    def id_for_order(self, order_id: str) -> str | None:
        return self.conn.execute(sa.select(orders.c.id).where(orders.c.id == order_id)).scalar()

    def by_request_ids(self, request_ids: list[str]) -> dict[str, Order]:
        """The orders these checkout request ids created (a read: nothing is tracked)."""
        rows = _BY_REQUEST_IDS.run(self.conn, {"ids": request_ids})
        return {order.request_id: order for order in map(_order, rows)}

    def save(self, order: Order) -> None:
        """Store the order's new state, new history entries and events at the commit, with
        every other order this transaction saves. It must be locked (`get` with `for_update`,
        or `lock`)."""
        self._saved.save(order)

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
