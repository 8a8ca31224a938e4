"""The kitchen queue: its order, and that it (and the order list) is served from indexes with
100,000 orders in the table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from chassis import pagination
from orders.domain.model import Category, OrderStatus
from orders.service_layer import catalog, ordering
from orders.service_layer.unit_of_work import OrdersUnitOfWork, UowFactory
from tests.integration.orders.helpers import check_out, move_to, new_product
from tests.support.servers import PostgresServer

S = OrderStatus


def test_queue_is_ready_then_in_preparation_then_received_oldest_first(uow: UowFactory) -> None:
    burger = new_product(uow)
    # created in this order; each status gets orders interleaved with the others
    plan = [
        S.RECEIVED,
        S.READY,
        S.PENDING_PAYMENT,
        S.IN_PREPARATION,
        S.COMPLETED,
        S.RECEIVED,
        S.CANCELLED,
        S.READY,
        S.IN_PREPARATION,
        S.RECEIVED,
        S.READY,
    ]
    created = [check_out(uow, [burger]) for _ in plan]
    # move them in reverse so that the update times disagree with the creation times
    for order, status in reversed(list(zip(created, plan, strict=True))):
        move_to(uow, order.id, status)

    queue = ordering.kitchen_queue(uow, 0)
    got = [(o.status, o.id) for o in queue]
    expected = [
        (status, order.id)
        for wanted in (S.READY, S.IN_PREPARATION, S.RECEIVED)
        for order, status in zip(created, plan, strict=True)
        if status is wanted
    ]
    assert got == expected, (
        "expected READY, then IN_PREPARATION, then RECEIVED, oldest first inside each:\n"
        f"expected {[(s.value, i[:8]) for s, i in expected]}\n"
        f"got      {[(s.value, i[:8]) for s, i in got]}"
    )
    assert all(o.items and o.history for o in queue), "queue entries come with items and history"


def test_queue_follows_the_kitchen(uow: UowFactory) -> None:
    burger = new_product(uow)
    first, second = check_out(uow, [burger]), check_out(uow, [burger])
    move_to(uow, first.id, S.RECEIVED)
    move_to(uow, second.id, S.RECEIVED)
    assert [o.id for o in ordering.kitchen_queue(uow, 0)] == [first.id, second.id]
    ordering.advance(uow, second.id, S.IN_PREPARATION)
    assert [o.id for o in ordering.kitchen_queue(uow, 0)] == [second.id, first.id], (
        "IN_PREPARATION comes first"
    )
    ordering.advance(uow, first.id, S.IN_PREPARATION)
    assert [o.id for o in ordering.kitchen_queue(uow, 0)] == [first.id, second.id], (
        "oldest first inside a status"
    )
    ordering.advance(uow, second.id, S.READY)
    ordering.advance(uow, second.id, S.COMPLETED)
    assert [o.id for o in ordering.kitchen_queue(uow, 0)] == [first.id], (
        "COMPLETED leaves the queue"
    )
    ordering.cancel(uow, check_out(uow, [burger]).id, "", by_staff=True)
    assert [o.id for o in ordering.kitchen_queue(uow, 0)] == [first.id], "CANCELLED is never in it"


def test_queue_size_is_limited(uow: UowFactory) -> None:
    burger = new_product(uow)
    ids = [move_to(uow, check_out(uow, [burger]).id, S.RECEIVED).id for _ in range(4)]
    assert [o.id for o in ordering.kitchen_queue(uow, 3)] == ids[:3]
    with pytest.raises(Exception) as caught:
        ordering.kitchen_queue(uow, 501)
    assert getattr(caught.value, "field", None) == "page_size", caught.value


# -- plans with 100,000 orders -----------------------------------------------------------
ROWS = 100_000
# Most orders of a busy kiosk are history; a few dozen are live.
BULK_ORDERS = f"""
INSERT INTO orders (id, customer_id, request_id, status, payment_status, payment_id,
                    payment_deadline, total_centavos, created_at, updated_at)
SELECT gen_random_uuid(),
       CASE WHEN g % 3 = 0 THEN (ARRAY(SELECT id FROM customers ORDER BY id))[1 + g % 50] END,
       'bulk-' || g,
       (CASE WHEN g % 1000 = 1 THEN 'RECEIVED' WHEN g % 1000 = 2 THEN 'IN_PREPARATION'
             WHEN g % 1000 = 3 THEN 'READY' WHEN g % 1000 = 4 THEN 'PENDING_PAYMENT'
             WHEN g % 20 = 0 THEN 'CANCELLED' ELSE 'COMPLETED' END)::order_status,
       'APPROVED', gen_random_uuid(), NULL, 2590,
       now() - (g * interval '37 seconds'), now() - (g * interval '37 seconds')
FROM generate_series(1, {ROWS}) AS g
"""
BULK_ITEMS = """
INSERT INTO order_items (order_id, line, product_id, name, category, unit_price_centavos,
                         quantity, notes)
SELECT o.id, 0, :product, 'X-Burger', 'BURGER', 2590, 1, '' FROM orders o
"""
BULK_HISTORY = """
INSERT INTO order_history (order_id, status, actor, reason, time)
SELECT o.id, o.status, 'KITCHEN', 'bulk', o.updated_at FROM orders o
"""
CUSTOMERS = """
INSERT INTO customers (id, cpf, name, email, created_at)
SELECT gen_random_uuid(), lpad(g::text, 11, '0'), 'Cliente ' || g, 'c' || g || '@example.com', now()
FROM generate_series(1, 50) AS g
"""


@pytest.fixture(scope="module")
def big(pg: PostgresServer, templates: dict[str, str]) -> Iterator[dict[str, Any]]:
    """One database with 100,000 orders (and their items and history), shared by the read-only
    plan tests of this module."""
    name, url = pg.create_database("orders_big", templates["orders"])
    engine = sa.create_engine(url)
    uow: UowFactory = lambda: OrdersUnitOfWork(engine)  # noqa: E731
    try:
        product = catalog.create(uow, "X-Burger", "", Category.BURGER, 2590, 60)
        with engine.begin() as conn:
            # rows made here reference rows made here: skip the FK triggers to load faster
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
            conn.execute(sa.text(CUSTOMERS))
            conn.execute(sa.text(BULK_ORDERS))
            conn.execute(sa.text(BULK_ITEMS), {"product": product.id})
            conn.execute(sa.text(BULK_HISTORY))
            customer = conn.execute(
                sa.text(
                    "SELECT customer_id::text FROM orders WHERE customer_id IS NOT NULL LIMIT 1"
                )
            ).scalar()
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("ANALYZE"))
            count = conn.execute(sa.text("SELECT count(*) FROM orders")).scalar()
        assert count == ROWS, f"expected {ROWS} orders in the table, found {count}"
        yield {"engine": engine, "uow": uow, "customer": customer}
    finally:
        engine.dispose()
        pg.drop_database(name)


def _plans(engine: sa.Engine, action: Any) -> list[tuple[str, dict[str, Any]]]:
    """Run `action`, capture each statement it sends that reads orders, and EXPLAIN it."""
    captured: list[tuple[str, Any]] = []

    def capture(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM orders" in statement:
            captured.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        action()
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    assert captured, "the action sent no query on orders"
    plans = []
    with engine.connect() as conn:
        for statement, parameters in captured:
            raw = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).scalar()
            plan = raw if isinstance(raw, list) else json.loads(str(raw))
            plans.append((statement, plan[0]["Plan"]))
    return plans


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _assert_indexed(plans: list[tuple[str, dict[str, Any]]], what: str) -> None:
    for statement, plan in plans:
        nodes = list(_nodes(plan))
        seq = [
            n
            for n in nodes
            if n["Node Type"] == "Seq Scan"
            and n.get("Relation Name") in ("orders", "order_items", "order_history")
        ]
        assert not seq, (
            f"{what}: expected index scans only, found a Seq Scan on "
            f"{[n['Relation Name'] for n in seq]}\nquery: {statement}\n"
            f"plan: {json.dumps(plan, indent=1)[:4000]}"
        )
        on_orders = [
            n for n in nodes if n.get("Relation Name") == "orders" and "Index" in n["Node Type"]
        ]
        assert on_orders, (
            f"{what}: expected an index scan on orders\nplan: {json.dumps(plan, indent=1)[:4000]}"
        )


def test_kitchen_queue_uses_an_index_with_100k_orders(big: dict[str, Any]) -> None:
    uow, orders_engine = big["uow"], big["engine"]
    queue: list[Any] = []
    plans = _plans(orders_engine, lambda: queue.extend(ordering.kitchen_queue(uow, 0)))
    _assert_indexed(plans, "kitchen queue")
    assert len(queue) == 100, f"expected a full page of 100 queued orders, got {len(queue)}"
    statuses = [o.status for o in queue]
    assert statuses == sorted(statuses, key=[S.READY, S.IN_PREPARATION, S.RECEIVED].index), (
        "queue order"
    )
    assert statuses.count(S.READY) == 100, (
        "there are 100 READY orders, oldest first, so they fill the page"
    )
    times = [o.created_at for o in queue]
    assert times == sorted(times), "oldest first"


def test_order_lists_use_indexes_with_100k_orders(big: dict[str, Any]) -> None:
    uow, orders_engine = big["uow"], big["engine"]
    now = datetime.now(UTC)
    first, token = ordering.list_orders(uow, None, "", None, None, 50, "")
    assert len(first) == 50 and token
    cases: dict[str, Any] = {
        "newest first": lambda: ordering.list_orders(uow, None, "", None, None, 50, ""),
        "next page": lambda: ordering.list_orders(uow, None, "", None, None, 50, token),
        "by status": lambda: ordering.list_orders(uow, S.READY, "", None, None, 50, ""),
        "by common status": lambda: ordering.list_orders(uow, S.COMPLETED, "", None, None, 50, ""),
        "by customer": lambda: ordering.list_orders(uow, None, big["customer"], None, None, 50, ""),
        "by created range": lambda: ordering.list_orders(
            uow, None, "", now - timedelta(days=10), now - timedelta(days=9), 50, ""
        ),
        "by status and range": lambda: ordering.list_orders(
            uow, S.CANCELLED, "", now - timedelta(days=10), now - timedelta(days=9), 50, ""
        ),
    }
    for what, action in cases.items():
        _assert_indexed(_plans(orders_engine, action), f"list orders {what}")
    second, _ = ordering.list_orders(uow, None, "", None, None, 50, token)
    assert second[0].created_at < first[-1].created_at, (
        "the second page continues where the first ended"
    )
    assert pagination.decode(token, 2) is not None
