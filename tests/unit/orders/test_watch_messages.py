"""WatchOrder's messages: every watcher of an order is offered the same read by the live
feed, and that read is mapped to its message once, not once per watcher."""

from __future__ import annotations

import dataclasses
import gc
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from orders.domain.model import (
    Actor,
    Category,
    Order,
    OrderItem,
    OrderStatus,
    PaymentStatus,
    StatusChange,
)
from orders.entrypoints import grpc_api, mapping


def _order(status: OrderStatus) -> Order:
    now = datetime.now(UTC)
    return Order(
        id=str(uuid.uuid4()),
        number=7,
        customer_id=None,
        request_id="r-1",
        items=[OrderItem(str(uuid.uuid4()), "X-Burger", Category.BURGER, 2590, 1, "")],
        status=status,
        payment_status=PaymentStatus.APPROVED,
        payment_id=str(uuid.uuid4()),
        payment_deadline=None,
        history=[StatusChange(status, Actor.KITCHEN, "", now, "ana")],
        created_at=now,
        updated_at=now,
    )


def test_one_read_is_mapped_once_whoever_watches_it(monkeypatch: Any) -> None:
    api = grpc_api.OrderApi(
        uow=None,  # type: ignore[arg-type]
        feed=None,  # type: ignore[arg-type]
        payment_timeout=timedelta(minutes=1),
    )
    mapped: list[str] = []
    real = mapping.order

    def counting(order: Order) -> Any:
        mapped.append(order.id)
        return real(order)

    monkeypatch.setattr(mapping, "order", counting)
    read = _order(OrderStatus.IN_PREPARATION)
    messages = [api._message(read) for _ in range(100)]  # 100 watchers offered one read
    assert len(mapped) == 1
    assert all(m is messages[0] for m in messages)
    assert messages[0] == real(read)

    newer = dataclasses.replace(read, status=OrderStatus.READY)  # the next read: a new object
    assert api._message(newer).status != messages[0].status
    assert len(mapped) == 2

    del read, newer, messages
    gc.collect()
    assert len(api._watched) == 0, "a read nobody holds any more is forgotten"
