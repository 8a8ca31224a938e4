"""`make bench`: throughput and latency figures of the whole system on this machine.

Starts its own PostgreSQL (with fsync, as in production), NATS JetStream, orders, payment and
the gateway as real processes, loads them, and prints:

- checkout over gRPC and through the gateway (orders/s) — everything else keeps running:
  payment consumes every OrderCreated and orders every PaymentCreated;
- the gateway's overhead: latency through the gateway / direct gRPC, one call at a time,
  interleaved in the same run;
- the full saga (checkout → Pix charge → auto-approval → RECEIVED), orders/s, and the CPU
  time orders, payment and PostgreSQL used per saga;
- reads (GetOrder, kitchen queue) with a small table and with 100,000 more orders: the ratio;
- memory (RSS) of each process.

    make bench                 # defaults
    BENCH_ORDERS=5000 make bench
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import psycopg2

from benchmarks.httpclient import Connection
from comanda.orders.v1 import catalog_pb2, catalog_pb2_grpc, orders_pb2, orders_pb2_grpc
from orders.app import DEFINITION as ORDERS
from payment.app import DEFINITION as PAYMENT
from tests.support.servers import PostgresServer
from tests.support.stack import STAFF, Stack

ORDERS_N = int(os.environ.get("BENCH_ORDERS", "2000"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))
REPLICAS = int(os.environ.get("BENCH_REPLICAS", "2"))
PRODUCT = "6b1d4a10-0000-4000-8000-000000000001"


def line(label: str, value: str, note: str = "") -> None:
    print(f"  {label:44} {value:>14}  {note}", flush=True)


async def load(
    n: int, concurrency: int, call: Callable[[int], Awaitable[Any]]
) -> tuple[float, list[float]]:
    """Run `call(i)` n times, `concurrency` at a time; (seconds, latencies)."""
    latencies: list[float] = []
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            t = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, latencies


async def _ignore_index(call: Callable[[], Awaitable[Any]], _index: int) -> Any:
    return await call()


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000


def checkout_request(i: int, tag: str) -> orders_pb2.CreateOrderRequest:
    return orders_pb2.CreateOrderRequest(
        request_id=f"bench-{tag}-{i}-{uuid.uuid4().hex[:8]}",
        items=[orders_pb2.CreateOrderItem(product_id=PRODUCT, quantity=1 + i % 3)],
    )


async def checkouts(stack: Stack) -> None:
    print("checkout (payment and orders consumers running alongside)", flush=True)
    async with orders_channel(stack) as channel:
        stub = orders_pb2_grpc.OrderServiceStub(channel)
        await load(200, CONCURRENCY, lambda i: stub.CreateOrder(checkout_request(i, "warm")))
        seconds, lat = await load(
            ORDERS_N, CONCURRENCY, lambda i: stub.CreateOrder(checkout_request(i, "g"))
        )
    grpc_rate = ORDERS_N / seconds
    line(
        "gRPC CreateOrder",
        f"{grpc_rate:8.0f} /s",
        f"p50 {pct(lat, 0.5):.1f} ms, p99 {pct(lat, 0.99):.1f} ms, {CONCURRENCY} in flight",
    )

    assert stack.gateway is not None
    conns = [await Connection.open("127.0.0.1", stack.gateway.port) for _ in range(CONCURRENCY)]
    free = list(conns)

    async def http_checkout(i: int) -> None:
        conn = free.pop()
        try:
            body = json.dumps({"items": [{"productId": PRODUCT, "quantity": 1 + i % 3}]}).encode()
            status, _ = await conn.request(
                "POST",
                "/v1/orders",
                body,
                {"Idempotency-Key": f"bench-h-{i}-{uuid.uuid4().hex[:8]}"},
            )
            assert status == 200, status
        finally:
            free.append(conn)

    seconds, lat = await load(ORDERS_N, CONCURRENCY, http_checkout)
    http_rate = ORDERS_N / seconds
    line(
        "HTTP POST /v1/orders (gateway)",
        f"{http_rate:8.0f} /s",
        f"p50 {pct(lat, 0.5):.1f} ms, p99 {pct(lat, 0.99):.1f} ms",
    )
    line("gateway / gRPC throughput", f"{http_rate / grpc_rate:8.2f} x")
    for conn in conns:
        await conn.close()


async def overhead(stack: Stack, order_id: str) -> None:
    print("gateway overhead (one call at a time, interleaved rounds)", flush=True)
    assert stack.gateway is not None
    conn = await Connection.open("127.0.0.1", stack.gateway.port)
    async with orders_channel(stack) as channel:
        products = catalog_pb2_grpc.CatalogServiceStub(channel)
        orders = orders_pb2_grpc.OrderServiceStub(channel)
        cases: dict[str, tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]]]] = {
            "GetProduct": (
                lambda: products.GetProduct(catalog_pb2.GetProductRequest(product_id=PRODUCT)),
                lambda: conn.request("GET", f"/v1/products/{PRODUCT}"),
            ),
            "GetOrder": (
                lambda: orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order_id)),
                lambda: conn.request("GET", f"/v1/orders/{order_id}"),
            ),
        }
        for name, (direct, via) in cases.items():
            times: dict[str, list[float]] = {"direct": [], "gateway": []}
            for _ in range(6):
                for kind, call in (("direct", direct), ("gateway", via)):
                    for _ in range(100):
                        t = time.perf_counter()
                        await call()
                        times[kind].append(time.perf_counter() - t)
            d, g = statistics.median(times["direct"]), statistics.median(times["gateway"])
            line(
                f"{name}: gateway / direct latency",
                f"{g / d:8.2f} x",
                f"median {g * 1000:.2f} ms vs {d * 1000:.2f} ms",
            )
    await conn.close()


def orders_channel(stack: Stack) -> grpc.aio.Channel:
    """A channel balancing over every orders replica."""
    target = "ipv4:" + ",".join(f"127.0.0.1:{p.port}" for p in stack.orders)
    return grpc.aio.insecure_channel(target, options=[("grpc.lb_policy_name", "round_robin")])


def orders_db(stack: Stack) -> Any:
    return psycopg2.connect(
        stack.databases["orders"][1].replace("postgresql+psycopg2", "postgresql")
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds(stack: Stack) -> float | None:
    """CPU time of the embedded PostgreSQL's server processes (None for an external one)."""
    if stack.pg.tmp is None:
        return None
    postmaster = int((stack.pg.tmp / "data" / "postmaster.pid").read_text().split()[0])
    total = 0.0
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            if int(entry) == postmaster or parent == postmaster:
                total += cpu_seconds(int(entry))
        except (ValueError, OSError):
            continue
    return total


def cpu_per_saga(stack: Stack) -> dict[str, float | None]:
    def used(procs: list[Any]) -> float:
        return sum(cpu_seconds(p.proc.pid) for p in procs if p.proc is not None)

    return {
        "orders": used(stack.orders),
        "payment": used(stack.payment),
        "PostgreSQL": postgres_cpu_seconds(stack),
    }


async def saga(stack: Stack) -> None:
    print("full saga (checkout → Pix charge → auto-approval → RECEIVED)", flush=True)
    db = orders_db(stack)
    db.autocommit = True
    cpu_before = cpu_per_saga(stack)

    def received() -> int:
        with db.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM orders "
                "WHERE status = 'RECEIVED' AND request_id LIKE 'bench-saga-%'"
            )
            return int(cur.fetchone()[0])

    async with orders_channel(stack) as channel:
        stub = orders_pb2_grpc.OrderServiceStub(channel)
        start = time.perf_counter()
        seconds, _ = await load(
            ORDERS_N, CONCURRENCY, lambda i: stub.CreateOrder(checkout_request(i, "saga"))
        )
        deadline = time.monotonic() + 300
        done = received()
        while done < ORDERS_N and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            done = received()
        total = time.perf_counter() - start
    cpu_after = cpu_per_saga(stack)
    db.close()
    line("checkouts accepted", f"{ORDERS_N / seconds:8.0f} /s")
    line(
        "sagas completed (RECEIVED)",
        f"{done / total:8.0f} /s",
        f"{done} of {ORDERS_N} in {total:.1f} s",
    )
    for name, before in cpu_before.items():
        after = cpu_after[name]
        if before is not None and after is not None and done:
            line(f"CPU per saga: {name}", f"{(after - before) * 1000 / done:8.2f} ms")


BULK = """
SET session_replication_role = replica;
INSERT INTO orders (id, request_id, status, payment_status, total_centavos, created_at, updated_at)
SELECT gen_random_uuid(), 'bulk-' || g, 'COMPLETED', 'APPROVED', 2590,
       now() - interval '1 day' - g * interval '1 second', now() - interval '1 day'
FROM generate_series(1, %(rows)s) AS g;
INSERT INTO order_items (order_id, line, product_id, name, category, unit_price_centavos,
                         quantity, notes)
SELECT id, 0, %(product)s, 'X-Burger', 'BURGER', 2590, 1, ''
FROM orders WHERE request_id LIKE 'bulk-%%';
INSERT INTO order_history (order_id, status, actor, reason, time)
SELECT id, 'COMPLETED', 'KITCHEN', 'bulk', updated_at FROM orders WHERE request_id LIKE 'bulk-%%';
SET session_replication_role = origin;
ANALYZE;
"""


async def reads(stack: Stack, order_id: str) -> None:
    print("reads: small table, then with 100,000 more orders", flush=True)
    async with orders_channel(stack) as channel:
        orders = orders_pb2_grpc.OrderServiceStub(channel)
        kitchen = orders_pb2_grpc.KitchenServiceStub(channel)

        async def measure() -> dict[str, float]:
            result = {}
            for name, call in (
                (
                    "GetOrder",
                    lambda: orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order_id)),
                ),
                (
                    "ListKitchenQueue",
                    lambda: kitchen.ListKitchenQueue(
                        orders_pb2.ListKitchenQueueRequest(page_size=20), metadata=STAFF
                    ),
                ),
                (
                    "ListOrders (page of 50)",
                    lambda: orders.ListOrders(orders_pb2.ListOrdersRequest(), metadata=STAFF),
                ),
            ):
                _, lat = await load(300, 1, functools.partial(_ignore_index, call))
                result[name] = statistics.median(lat)
            return result

        before = await measure()
        db = orders_db(stack)
        with db, db.cursor() as cur:
            cur.execute("SELECT count(*) FROM orders")
            small = cur.fetchone()[0]
            cur.execute(BULK, {"rows": 100_000, "product": PRODUCT})
        db.close()
        after = await measure()
    for name in before:
        line(
            f"{name}: {small + 100_000} / {small} orders",
            f"{after[name] / before[name]:8.2f} x",
            f"median {after[name] * 1000:.2f} ms vs {before[name] * 1000:.2f} ms",
        )


def memory(stack: Stack) -> None:
    print("memory (resident set size)", flush=True)
    for proc in [*stack.orders, *stack.payment, stack.gateway]:
        if proc is None or proc.proc is None:
            continue
        with open(f"/proc/{proc.proc.pid}/status") as status:
            rss = next(int(row.split()[1]) for row in status if row.startswith("VmRSS"))
        line(proc.module, f"{rss / 1024:8.0f} MB")


def main() -> int:
    print(
        f"Comanda benchmarks: {ORDERS_N} orders per run, {CONCURRENCY} in flight, "
        f"{os.cpu_count()} CPUs shared by every process\n",
        flush=True,
    )
    pg = PostgresServer(durable=True)
    pg.start()
    try:
        templates = {
            "orders": pg.migrated_template("orders", ORDERS.versions_dir),
            "payment": pg.migrated_template("payment", PAYMENT.versions_dir),
        }
        env = {"LOG_LEVEL": "WARNING", "ORDERS_DB_POOL_SIZE": "8", "PAYMENT_DB_POOL_SIZE": "8"}
        stack = Stack(pg, templates, gateway=True, env=env, replicas=REPLICAS).start()
        try:
            subprocess_seed(stack)
            first = orders_pb2_grpc.OrderServiceStub(stack.channel("orders")).CreateOrder(
                checkout_request(0, "first")
            )
            asyncio.run(checkouts(stack))
            settle(stack)
            asyncio.run(overhead(stack, first.id))
            asyncio.run(reads(stack, first.id))
            memory(stack)
        finally:
            stack.stop()
        stack = Stack(
            pg, templates, gateway=False, env={**env, "FAKE_PROVIDER_AUTO_APPROVE_SECONDS": "0"}
        ).start()
        try:
            subprocess_seed(stack)
            asyncio.run(saga(stack))
        finally:
            stack.stop()
    finally:
        pg.stop()
    return 0


def settle(stack: Stack, timeout: float = 300) -> None:
    """Wait until the saga caught up with the checkouts (every order heard of its payment),
    so that latencies are not measured against a backlog."""
    db = orders_db(stack)
    db.autocommit = True
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with db.cursor() as cur:
                cur.execute("SELECT count(*) FROM orders WHERE payment_status = 'UNSPECIFIED'")
                if cur.fetchone()[0] == 0:
                    return
            time.sleep(0.2)
    finally:
        db.close()


def subprocess_seed(stack: Stack) -> None:
    import subprocess

    env = stack.orders[0].env
    subprocess.run(
        [sys.executable, "-m", "orders", "seed-menu"], env=env, check=True, capture_output=True
    )


if __name__ == "__main__":
    sys.exit(main())
