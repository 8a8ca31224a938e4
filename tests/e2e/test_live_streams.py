"""The live streams behind the screens (WatchOrder, WatchOrderBoard, WatchKitchenQueue) through
real orders processes: one database read per change however many watch, changes made on
another replica, and a fresh snapshot for every connection."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from comanda.orders.v1 import orders_pb2, orders_pb2_grpc
from tests.support.saga import RECEIVED, checkout, new_product, pay, wait_payment
from tests.support.stack import STAFF, Stack
from tests.support.waiting import wait_for

OS = orders_pb2
STEPS = [OS.ORDER_STATUS_IN_PREPARATION, OS.ORDER_STATUS_READY, OS.ORDER_STATUS_COMPLETED]
QUIET = {"ORDERS_LIVE_RESYNC_SECONDS": "3600"}  # no periodic re-reads: only changes count


class Reader:
    """Reads a server stream in a thread, keeping every message."""

    def __init__(self, call: Any) -> None:
        self.call = call
        self.seen: list[Any] = []
        self.error: grpc.RpcError | None = None
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            for message in self.call:
                self.seen.append(message)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                self.error = exc

    def statuses(self, number: int) -> list[Any]:
        """The statuses of order `number` in the order they came (board or kitchen)."""
        found: list[Any] = []
        for message in self.seen:
            if isinstance(message, OS.Order):
                found.append(message.status)
            elif isinstance(message, OS.OrderBoardEvent):
                found += [e.status for e in message.entries if e.number == number]
            else:
                found += [o.status for o in message.orders if o.number == number]
        return found

    def wait(self, number: int, status: Any, what: str) -> None:
        wait_for(
            lambda: status in self.statuses(number) or self.error,
            15,
            f"{what} to show {OS.OrderStatus.Name(status)}",
        )
        assert self.error is None, f"{what} failed: {self.error!r}"


def live_reads(stack: Stack, index: int = 0) -> dict[str, float]:
    url = f"http://127.0.0.1:{stack.orders[index].metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    reads = {"ids": 0.0, "collection": 0.0}
    for line in text.splitlines():
        if line.startswith('comanda_live_reads_total{feed="orders"'):
            kind = line.split('kind="')[1].split('"')[0]
            reads[kind] = float(line.rsplit(" ", 1)[1])
    return reads


@pytest.fixture
def watchers() -> Iterator[list[Reader]]:
    readers: list[Reader] = []
    yield readers
    for reader in readers:
        reader.call.cancel()


@pytest.mark.parametrize("own_stack", [{"env": QUIET}], indirect=True)
def test_one_read_per_change_however_many_watch(own_stack: Stack, watchers: list[Reader]) -> None:
    stack = own_stack
    order = checkout(stack, new_product(stack))
    wait_payment(stack, order.id)
    wait_for(
        lambda: stack.order_service.GetOrder(OS.GetOrderRequest(order_id=order.id)).payment_id,
        15,
        "the payment noted on the order",
    )
    service = stack.order_service
    kitchen = stack.kitchen
    watchers += [
        Reader(service.WatchOrder(OS.WatchOrderRequest(order_id=order.id))) for _ in range(30)
    ]
    watchers += [Reader(service.WatchOrderBoard(OS.WatchOrderBoardRequest())) for _ in range(10)]
    watchers += [
        Reader(kitchen.WatchKitchenQueue(OS.WatchKitchenQueueRequest(), metadata=STAFF))
        for _ in range(10)
    ]
    wait_for(lambda: all(w.seen for w in watchers), 15, "every watcher's first message")
    before = live_reads(stack)

    pay(stack, order.id)
    for w in watchers:
        w.wait(order.number, RECEIVED, "every watcher")
    for status in STEPS:
        kitchen.UpdateOrderStatus(
            OS.UpdateOrderStatusRequest(order_id=order.id, status=status), metadata=STAFF
        )
        for w in watchers:
            w.wait(order.number, status, "every watcher")
    after = live_reads(stack)

    changes = 1 + len(STEPS)
    assert after["ids"] - before["ids"] == changes, (
        f"{len(watchers)} watchers, {changes} changes: expected {changes} reads, "
        f"got {after['ids'] - before['ids']}"
    )
    assert after["collection"] == before["collection"], "the queue is kept, not re-read"
    lifecycle = [RECEIVED, *STEPS]
    for w in watchers[:30]:
        assert w.statuses(order.number)[-len(lifecycle) :] == lifecycle
    for w in watchers[30:]:
        assert w.statuses(order.number) == lifecycle, "the board and the kitchen: each step once"


@pytest.mark.parametrize("own_stack", [{"replicas": 2, "env": QUIET}], indirect=True)
def test_a_change_made_on_another_replica_reaches_the_watchers(
    own_stack: Stack, watchers: list[Reader]
) -> None:
    stack = own_stack
    other = orders_pb2_grpc.OrderServiceStub(stack.channel("orders", 1))
    other_kitchen = orders_pb2_grpc.KitchenServiceStub(stack.channel("orders", 1))
    board = Reader(other.WatchOrderBoard(OS.WatchOrderBoardRequest()))
    kitchen = Reader(other_kitchen.WatchKitchenQueue(OS.WatchKitchenQueueRequest(), metadata=STAFF))
    watchers += [board, kitchen]
    wait_for(lambda: board.seen and kitchen.seen, 15, "both snapshots")
    order = checkout(stack, new_product(stack), orders_index=0)
    watch = Reader(other.WatchOrder(OS.WatchOrderRequest(order_id=order.id)))
    watchers.append(watch)

    pay(stack, order.id)
    for reader, what in ((board, "the board"), (kitchen, "the kitchen"), (watch, "WatchOrder")):
        reader.wait(order.number, RECEIVED, f"{what} on the other replica")
    for status in STEPS:
        stack.kitchen.UpdateOrderStatus(  # replica 0
            OS.UpdateOrderStatusRequest(order_id=order.id, status=status), metadata=STAFF
        )
        board.wait(order.number, status, "the board on the other replica")
    assert live_reads(stack, 1)["collection"] == 1, "no re-read of the queue: NATS told it"


def test_each_connection_starts_with_a_snapshot_of_the_queue(
    stack: Stack, watchers: list[Reader]
) -> None:
    order = checkout(stack, new_product(stack))
    pay(stack, order.id)
    first = Reader(stack.order_service.WatchOrderBoard(OS.WatchOrderBoardRequest()))
    watchers.append(first)
    first.wait(order.number, RECEIVED, "the board")
    first.call.cancel()  # the screen loses its connection...
    stack.kitchen.UpdateOrderStatus(
        OS.UpdateOrderStatusRequest(order_id=order.id, status=OS.ORDER_STATUS_IN_PREPARATION),
        metadata=STAFF,
    )
    again = Reader(stack.order_service.WatchOrderBoard(OS.WatchOrderBoardRequest()))
    watchers.append(again)
    wait_for(lambda: again.seen, 15, "the new connection's first message")

    snapshot = again.seen[0]
    assert snapshot.snapshot and first.seen[0].snapshot
    assert not any(m.snapshot for m in first.seen[1:])
    entries = {e.number: e.status for e in snapshot.entries}
    assert entries.get(order.number) == OS.ORDER_STATUS_IN_PREPARATION, (
        "...and picks up what changed meanwhile from its snapshot"
    )


def test_an_unknown_order_is_not_found_and_staff_streams_need_the_token(stack: Stack) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(grpc.RpcError) as unknown:
        list(stack.order_service.WatchOrder(OS.WatchOrderRequest(order_id=missing), timeout=10))
    with pytest.raises(grpc.RpcError) as anonymous:
        list(stack.kitchen.WatchKitchenQueue(OS.WatchKitchenQueueRequest(), timeout=10))

    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND, unknown.value
    assert missing in str(unknown.value.details())
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED, anonymous.value
