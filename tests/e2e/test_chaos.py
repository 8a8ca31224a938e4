"""Chaos: two replicas of each service, orders flowing, and meanwhile processes killed with
SIGKILL, NATS killed and restarted, PostgreSQL killed and restarted. Afterwards every order
is paid exactly once and entered the kitchen exactly once, in both services' records."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter

import grpc
import psycopg2
import pytest

from comanda.orders.v1 import orders_pb2, orders_pb2_grpc
from tests.support.saga import new_product
from tests.support.stack import ServiceProcess, Stack
from tests.support.waiting import wait_for

ORDERS = 120


def dsn(url: str) -> str:
    return url.replace("postgresql+psycopg2", "postgresql")


def query(url: str, sql: str) -> list[tuple]:
    conn = psycopg2.connect(dsn(url))
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def checkout_until_accepted(
    stack: Stack, product: str, request_id: str, stop: threading.Event
) -> str:
    """A kiosk that retries with the same request id until the order is accepted."""
    while not stop.is_set():
        proc = random.choice(stack.orders)
        try:
            with grpc.insecure_channel(f"127.0.0.1:{proc.port}") as channel:
                order = orders_pb2_grpc.OrderServiceStub(channel).CreateOrder(
                    orders_pb2.CreateOrderRequest(
                        request_id=request_id,
                        items=[orders_pb2.CreateOrderItem(product_id=product, quantity=1)],
                    ),
                    timeout=5,
                )
                return str(order.id)
        except grpc.RpcError as exc:
            if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
            time.sleep(0.1)
    raise AssertionError(f"checkout {request_id} never accepted")


@pytest.mark.parametrize(
    "own_stack",
    [
        {
            "gateway": False,
            "replicas": 2,
            "env": {"FAKE_PROVIDER_AUTO_APPROVE_SECONDS": "0", "CONSUMER_ACK_WAIT_SECONDS": "3"},
        }
    ],
    indirect=True,
)
def test_nothing_lost_nothing_doubled_under_kills_and_restarts(own_stack: Stack, pg):
    stack = own_stack
    assert pg.embedded is not None, "this test restarts PostgreSQL: it needs the embedded one"
    product = new_product(stack)
    stop = threading.Event()
    ids: dict[str, str] = {}
    errors: list[BaseException] = []

    def kiosk(requests: list[str]) -> None:
        try:
            for request_id in requests:
                ids[request_id] = checkout_until_accepted(stack, product, request_id, stop)
                time.sleep(0.02)
        except BaseException as exc:  # reported below
            errors.append(exc)

    request_ids = [f"chaos-{uuid.uuid4().hex}" for _ in range(ORDERS)]
    kiosks = [threading.Thread(target=kiosk, args=(request_ids[i::4],)) for i in range(4)]
    for t in kiosks:
        t.start()

    services: list[ServiceProcess] = [*stack.orders, *stack.payment]
    log = []
    try:
        for step in range(6):
            time.sleep(1.0)
            victim = random.choice(services)
            victim.kill()  # SIGKILL
            log.append(f"killed {victim.module} on {victim.port}")
            if step == 2:
                stack.nats.kill()
                time.sleep(1.0)
                stack.nats.restart()
                log.append("restarted NATS")
            if step == 4:
                pg.kill()
                time.sleep(1.0)
                pg.restart()
                log.append("restarted PostgreSQL")
            victim.start()
    finally:
        for t in kiosks:
            t.join(120)
        stop.set()
    assert not errors, f"kiosk failed: {errors[0]!r} after {log}"
    assert len(ids) == ORDERS

    orders_url, payment_url = stack.databases["orders"][1], stack.databases["payment"][1]

    def all_received() -> bool:
        rows = query(
            orders_url,
            "SELECT count(*) FROM orders WHERE status = 'RECEIVED' AND request_id LIKE 'chaos-%'",
        )
        return rows[0][0] == ORDERS

    wait_for(all_received, 120, f"all {ORDERS} orders to be RECEIVED after: {log}")
    orders = query(
        orders_url, "SELECT request_id, id::text FROM orders WHERE request_id LIKE 'chaos-%'"
    )
    assert dict(orders) == ids, "one order per request id, the one the kiosk was given"
    received = Counter(
        r[0]
        for r in query(
            orders_url, "SELECT order_id::text FROM order_history WHERE status = 'RECEIVED'"
        )
    )
    assert all(received[i] == 1 for i in ids.values()), "each order entered the kitchen once"
    created = Counter(
        r[0]
        for r in query(
            orders_url,
            "SELECT order_id FROM outbox WHERE event_type = 'comanda.events.v1.OrderCreated'",
        )
    )
    assert all(created[i] == 1 for i in ids.values()), "one OrderCreated per order"
    payments = query(payment_url, "SELECT order_id::text, status::text FROM payments")
    by_order = Counter(order_id for order_id, _ in payments)
    assert all(by_order[i] == 1 for i in ids.values()), "one payment per order"
    assert {status for order_id, status in payments if order_id in ids.values()} == {"APPROVED"}
    approvals = Counter(
        r[0]
        for r in query(
            payment_url,
            "SELECT p.order_id::text FROM payment_history h JOIN payments p ON p.id = h.payment_id "
            "WHERE h.status = 'APPROVED'",
        )
    )
    assert all(approvals[i] == 1 for i in ids.values()), "each payment approved once"
