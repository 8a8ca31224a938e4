"""The saga's batch writes find their rows through an index whatever the tables' statistics
say. A new deployment's tables grow from empty for a minute or more before autovacuum first
analyzes them; planned on such figures, an UPDATE joined to its batch's arrays became a hash
join over a sequential scan, so each write cost in proportion to the table (0.3-0.9 ms at a
few thousand rows, in the saga benchmark). Each statement now names its keys as an index
condition as well (`= ANY(...)`), which no estimate turns into a scan.

Every statement an action sends is planned by PostgreSQL's auto_explain and handed back as a
notice, under the generic plan and under a custom one (a prepared statement uses either)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from chassis.messaging.consumer import _CLAIM, _OUTCOMES
from orders.service_layer.unit_of_work import OrdersUnitOfWork
from tests.integration.orders.helpers import check_out, new_product, pay

ROWS = 3_000
PLAN_MODES = ["force_generic_plan", "force_custom_plan"]

# Rows nobody analyzed, and autovacuum kept from analyzing them during the test.
FILL_ORDERS = f"""
ALTER TABLE orders SET (autovacuum_enabled = false);
INSERT INTO orders (id, request_id, status, payment_status, total_centavos, created_at,
                    updated_at)
SELECT gen_random_uuid(), 'fill-' || g, 'COMPLETED', 'APPROVED', 2590, now(), now()
FROM generate_series(1, {ROWS}) AS g
"""
FILL_INBOX = f"""
ALTER TABLE inbox SET (autovacuum_enabled = false);
INSERT INTO inbox (consumer, event_id, event_type, subject, order_id, outcome)
SELECT 'plans', gen_random_uuid(), 'OrderCreated', 'orders.created', 'o-' || g, 'done'
FROM generate_series(1, {ROWS}) AS g
"""


class Notices:
    """Where the driver puts a connection's notices: all of them (it keeps only the last 50 of
    a sequence)."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def append(self, text: str) -> None:
        self.texts.append(text)


class Plans:
    """The plans of the statements run on an engine's connections, as auto_explain gives
    them (JSON, one notice each)."""

    def __init__(self, url: sa.URL, plan_mode: str) -> None:
        self.notices = Notices()
        self.engine = sa.create_engine(url, pool_size=1, max_overflow=0)

        @sa.event.listens_for(self.engine, "connect")
        def explain_everything(dbapi_connection: Any, _: Any) -> None:
            dbapi_connection.notices = self.notices  # the driver appends each notice here
            with dbapi_connection.cursor() as cursor:
                cursor.execute(
                    "LOAD 'auto_explain';"
                    "SET auto_explain.log_min_duration = 0;"
                    "SET auto_explain.log_level = notice;"
                    "SET auto_explain.log_format = json;"
                    "SET client_min_messages = notice;"
                    f"SET plan_cache_mode = {plan_mode}"
                )
            dbapi_connection.commit()

    def of(self, text: str) -> list[dict[str, Any]]:
        """The plans of the statements whose text contains `text`."""
        found = []
        for notice in self.notices.texts:
            _, _, body = notice.partition("plan:")
            if body.strip():
                explained = json.loads(body)
                if text in explained["Query Text"]:
                    found.append(explained["Plan"])
        assert found, f"no statement containing {text!r} was run"
        return found


@pytest.fixture(params=PLAN_MODES)
def plans(request: pytest.FixtureRequest, orders_engine: sa.Engine) -> Iterator[Plans]:
    with orders_engine.begin() as conn:
        conn.exec_driver_sql(FILL_ORDERS)
        conn.exec_driver_sql(FILL_INBOX)
    explained = Plans(orders_engine.url, request.param)
    yield explained
    explained.engine.dispose()


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _reads(plan: dict[str, Any], table: str) -> list[tuple[str, str]]:
    """How the plan reads `table`: each scan's node type and index condition (a bitmap heap
    scan's is its bitmap index scan's)."""
    found = []
    for node in _nodes(plan):
        if node.get("Relation Name") != table or "Scan" not in node["Node Type"]:
            continue
        conditions = [node.get("Index Cond", "")]
        conditions += [child.get("Index Cond", "") for child in node.get("Plans", [])]
        found.append((node["Node Type"], " ".join(filter(None, conditions))))
    return found


def _assert_by_index(plans: list[dict[str, Any]], table: str, keys: Callable[[str], bool]) -> None:
    for plan in plans:
        reads = _reads(plan, table)
        assert reads, f"expected the plan to read {table}: {json.dumps(plan)[:3000]}"
        for node_type, condition in reads:
            assert "Index" in node_type or "Bitmap" in node_type, (
                f"expected {table} to be read through an index, found a {node_type} in\n"
                f"{json.dumps(plan, indent=1)[:4000]}"
            )
            assert keys(condition), (
                f"expected {table}'s index condition to name the batch's keys, found "
                f"{condition!r} ({node_type})"
            )


def test_a_batch_of_state_changes_updates_its_rows_through_the_primary_key(
    plans: Plans,
) -> None:
    uow = lambda: OrdersUnitOfWork(plans.engine)  # noqa: E731
    order = check_out(uow, [new_product(uow)])
    paid = pay(uow, order.id)  # the saga's step 5: one StateChanges UPDATE of orders
    assert paid.status.value == "RECEIVED", paid.status
    _assert_by_index(plans.of("UPDATE orders"), "orders", lambda cond: "id = " in cond)


def test_a_batch_of_inbox_outcomes_updates_its_rows_through_the_inbox_key(plans: Plans) -> None:
    event_ids = [str(uuid.uuid4()) for _ in range(3)]
    with plans.engine.begin() as conn:
        claimed = _CLAIM.run(
            conn,
            {
                "consumer": "plans",
                "ids": event_ids,
                "types": ["OrderCreated"] * 3,
                "subjects": ["orders.created"] * 3,
                "aggregates": ["o-new"] * 3,
            },
        )
        assert sorted(row.event_id for row in claimed) == sorted(event_ids)
        _OUTCOMES.run(conn, {"consumer": "plans", "ids": event_ids, "outcomes": ["applied: x"] * 3})
    with plans.engine.connect() as conn:
        outcomes = conn.exec_driver_sql(
            "SELECT count(*) FROM inbox WHERE outcome = 'applied: x'"
        ).scalar()
    assert outcomes == 3, "each claimed event got its outcome"
    _assert_by_index(
        plans.of("UPDATE inbox"),
        "inbox",
        lambda cond: "consumer =" in cond and "event_id =" in cond,
    )
