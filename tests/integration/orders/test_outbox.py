"""The events of each state change are stored in the outbox, in the same transaction."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from chassis.errors import FailedPrecondition, InvalidArgument
from comanda.events.v1 import events_pb2
from comanda.orders.v1 import orders_pb2
from orders.domain.model import CartLine, Category, OrderStatus
from orders.service_layer import customers, ordering
from orders.service_layer.unit_of_work import CODEC, UowFactory
from tests.integration.orders.helpers import TIMEOUT, check_out, move_to, new_product, scalar

S = OrderStatus


def _outbox(engine: sa.Engine, order_id: str) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT event_id::text, event_type, subject, payload, published_at,"
                    " xmin::text AS tx FROM outbox WHERE order_id = :id ORDER BY id"
                ),
                {"id": order_id},
            )
        )


def _tx_of(engine: sa.Engine, table: str, where: str, **params: Any) -> set[str]:
    with engine.connect() as conn:
        return {
            r[0]
            for r in conn.execute(sa.text(f"SELECT xmin::text FROM {table} WHERE {where}"), params)
        }


def test_checkout_stores_exactly_one_order_created_in_its_transaction(
    uow: UowFactory, orders_engine: sa.Engine
) -> None:
    ana = customers.register(uow, "529.982.247-25", "Ana", "ana@example.com")
    burger = new_product(uow, "X-Burger", 2590)
    fries = new_product(uow, "Batata", 1290, Category.SIDE)
    orders = [
        ordering.check_out(
            uow,
            f"outbox-{i}",
            "52998224725" if i == 0 else "",
            [CartLine(burger.id, 2, ""), CartLine(fries.id, 1, "")],
            TIMEOUT,
        )
        for i in range(3)
    ]
    assert scalar(orders_engine, "SELECT count(*) FROM outbox") == 3, (
        "one event per checkout, nothing else"
    )
    for order in orders:
        rows = _outbox(orders_engine, order.id)
        assert [r.event_type for r in rows] == ["comanda.events.v1.OrderCreated"], rows
        row = rows[0]
        assert row.subject == f"orders.v1.order.created.{order.id}"
        assert row.published_at is None, "the relay publishes it later"
        order_tx = _tx_of(orders_engine, "orders", "id = :id", id=order.id)
        assert {row.tx} == order_tx, (
            f"OrderCreated written in transaction {row.tx}, the order in {order_tx}"
        )
        assert _tx_of(orders_engine, "order_items", "order_id = :id", id=order.id) == order_tx
        event = CODEC.decode(row.event_type, bytes(row.payload))
        assert isinstance(event, events_pb2.OrderCreated)
        assert (event.event_id, event.order_id, event.order_number, event.total_centavos) == (
            row.event_id,
            order.id,
            order.number,
            2 * 2590 + 1290,
        )
        assert event.customer_id == (ana.id if order is orders[0] else "")
        assert [(i.product_id, i.name, i.unit_price_centavos, i.quantity) for i in event.items] == [
            (burger.id, "X-Burger", 2590, 2),
            (fries.id, "Batata", 1290, 1),
        ]
        assert event.payment_deadline.ToDatetime().timestamp() == pytest.approx(
            order.payment_deadline.timestamp() if order.payment_deadline else 0, abs=1e-3
        )


def test_each_status_change_stores_its_event_with_the_change(
    uow: UowFactory, orders_engine: sa.Engine
) -> None:
    order = move_to(uow, check_out(uow).id, S.COMPLETED)
    rows = _outbox(orders_engine, order.id)
    events = [CODEC.decode(r.event_type, bytes(r.payload)) for r in rows]
    assert [type(e).__name__ for e in events] == ["OrderCreated"] + ["OrderStatusChanged"] * 4, (
        events
    )
    moves = [(e.from_status, e.to_status, e.actor) for e in events[1:]]
    assert moves == [
        (
            orders_pb2.ORDER_STATUS_PENDING_PAYMENT,
            orders_pb2.ORDER_STATUS_RECEIVED,
            orders_pb2.ACTOR_PAYMENT,
        ),
        (
            orders_pb2.ORDER_STATUS_RECEIVED,
            orders_pb2.ORDER_STATUS_IN_PREPARATION,
            orders_pb2.ACTOR_KITCHEN,
        ),
        (
            orders_pb2.ORDER_STATUS_IN_PREPARATION,
            orders_pb2.ORDER_STATUS_READY,
            orders_pb2.ACTOR_KITCHEN,
        ),
        (
            orders_pb2.ORDER_STATUS_READY,
            orders_pb2.ORDER_STATUS_COMPLETED,
            orders_pb2.ACTOR_KITCHEN,
        ),
    ], moves
    history_txs = _tx_of(orders_engine, "order_history", "order_id = :id", id=order.id)
    event_txs = {r.tx for r in rows}
    assert history_txs == event_txs and len(event_txs) == 5, (
        "each history entry and its event share a transaction: "
        f"history {history_txs}, events {event_txs}"
    )


def test_cancel_stores_order_cancelled(uow: UowFactory, orders_engine: sa.Engine) -> None:
    order = check_out(uow)
    ordering.cancel(uow, order.id, "mudei de ideia", by_staff=False)
    rows = _outbox(orders_engine, order.id)
    event = CODEC.decode(rows[-1].event_type, bytes(rows[-1].payload))
    assert isinstance(event, events_pb2.OrderCancelled), event
    assert (event.from_status, event.actor, event.reason) == (
        orders_pb2.ORDER_STATUS_PENDING_PAYMENT,
        orders_pb2.ACTOR_CUSTOMER,
        "mudei de ideia",
    )
    assert rows[-1].subject == f"orders.v1.order.cancelled.{order.id}"
    assert {rows[-1].tx} == _tx_of(orders_engine, "orders", "id = :id", id=order.id)
    staff = check_out(uow)
    ordering.cancel(uow, staff.id, "", by_staff=True)
    event = CODEC.decode(
        *[(r.event_type, bytes(r.payload)) for r in _outbox(orders_engine, staff.id)][-1]
    )
    assert (event.actor, event.reason) == (orders_pb2.ACTOR_STAFF, "cancelled by staff")


def test_refused_commands_store_no_event(uow: UowFactory, orders_engine: sa.Engine) -> None:
    order = check_out(uow)
    with pytest.raises(FailedPrecondition):
        ordering.advance(uow, order.id, S.IN_PREPARATION)
    with pytest.raises(InvalidArgument):
        ordering.check_out(
            uow, "refused", "111.444.777-35", [CartLine(order.items[0].product_id, 1, "")], TIMEOUT
        )
    move_to(uow, order.id, S.CANCELLED)
    with pytest.raises(FailedPrecondition):
        ordering.cancel(uow, order.id, "", by_staff=True)
    types = [r.event_type for r in _outbox(orders_engine, order.id)]
    assert types == ["comanda.events.v1.OrderCreated", "comanda.events.v1.OrderCancelled"], types
    assert scalar(orders_engine, "SELECT count(*) FROM outbox") == 2
    assert scalar(orders_engine, "SELECT count(*) FROM orders WHERE request_id = 'refused'") == 0


def test_a_unit_of_work_that_does_not_commit_stores_nothing(
    uow: UowFactory, orders_engine: sa.Engine
) -> None:
    order = move_to(uow, check_out(uow).id, S.RECEIVED)
    with uow() as unit:
        loaded = unit.orders.get(order.id, for_update=True)
        assert loaded is not None
        loaded.advance(S.IN_PREPARATION)
        unit.orders.save(loaded)
        # leaves without commit: rolled back
    assert ordering.get(uow, order.id).status is S.RECEIVED
    assert len(_outbox(orders_engine, order.id)) == 2, "no event for a change that was rolled back"
