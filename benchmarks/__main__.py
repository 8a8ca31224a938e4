"""`make bench`: throughput, latency and CPU figures of the whole system on this machine.

Starts its own PostgreSQL (with fsync, as in production), NATS JetStream, two replicas of each
service (the orders servers serving the HTTP API in-process, as deployed) and a gateway
process as real processes, loads them, and prints (then writes as JSON to `.bench/`, the
newest also as `.bench/latest.json`):

- reads (GetOrder, kitchen queue, a ListOrders page) with 1,000, 10,000 and 100,000 orders;
- checkout over gRPC at 32 in flight, through the gateway (in the orders servers, connections
  dealt over both as a load balancer would) at 8, 32 and 128, and through the gateway's own
  process at 32, each a burst with the saga's first step running alongside, and how long
  after the burst's end every order has its payment;
- GetOrder over gRPC, through the gateway and through the gateway's process at 32 in flight,
  and one call at a time (interleaved), the gateway's cost as ratios; and at 150 calls a
  second, one by one, what a lone call costs every process;
- the floor: the same GetOrder against canned orders servers (`benchmarks.canned`: grpc.aio
  on uvloop answering one stored order, no database, no service code), over gRPC and through a
  gateway of its own, with the CPU each process spends a call;
- 1,000 WatchOrder streams over 10 orders: how long each kitchen step takes to reach them;
- the full saga in open loop (checkout → Pix charge → auto-approval → RECEIVED; arrivals at a
  fixed rate, whatever the answers do): checkout-to-RECEIVED at 150 orders/s, the CPU time
  every process (PostgreSQL and NATS included) used per saga, and the highest rate held
  without the backlog growing;
- memory (RSS, and its peak) of each process.

Every figure with a rate also says how much CPU the load generator (this process) used, which
shows whether it could have been the limit.

    make bench                     # about 10 minutes
    BENCH_ONLY=saga,floor make bench  # some: reads, checkout, get_order, floor, fan_out, saga
    BENCH_QUICK=1 make bench       # every scenario, shorter: under two minutes
    python -m benchmarks table .bench/latest.json   # the summary table of a run again
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from benchmarks import procs, report
from benchmarks.httpclient import Pool
from benchmarks.load import Result, closed, open_loop, own_cpu, pct
from benchmarks.report import summary, table
from comanda.orders.v1 import orders_pb2, orders_pb2_grpc
from comanda.payment.v1 import payment_pb2, payment_pb2_grpc
from devstack.servers import free_port
from orders.app import DEFINITION as ORDERS
from payment.app import DEFINITION as PAYMENT
from tests.support import servers
from tests.support.servers import PostgresServer
from tests.support.stack import STAFF, ServiceProcess, Stack, targets
from tests.support.waiting import wait_for

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
REPLICAS = int(os.environ.get("BENCH_REPLICAS", "2"))
BURST = int(os.environ.get("BENCH_ORDERS", "300" if QUICK else "3000"))
READS = 150 if QUICK else 500  # calls per read measurement
THROUGHPUT_READS = 1500 if QUICK else 6000
SAGA_SECONDS = 8.0 if QUICK else 30.0  # at 150 orders/s
IDLE_SECONDS = 2.0 if QUICK else 10.0  # the saga's stack with nothing arriving
SPARSE_RATE = 150  # GetOrder calls a second, one by one
SPARSE_SECONDS = 4.0 if QUICK else 15.0
LADDER_SECONDS = 6.0 if QUICK else 60.0
LADDER = [200, 250, 300, 350, 400, 450, 500]
# BENCH_ONLY=saga,floor: only these scenarios (reads, checkout, get_order, floor, fan_out, saga).
ONLY = {name for name in os.environ.get("BENCH_ONLY", "").split(",") if name}
PRODUCT = "6b1d4a10-0000-4000-8000-000000000001"
OUT = Path(__file__).resolve().parents[1] / ".bench"

results: dict[str, Any] = {}


def line(label: str, value: str, note: str = "") -> None:
    print(f"  {label:46} {value:>12}  {note}", flush=True)


def generator_note(result: Result) -> str:
    f = result.figures()
    cores = result.extra.get("cores")
    used = ""
    if cores:
        system = sum(v for k, v in cores.items() if k != "load generator")
        used = (
            f", cores busy: system {system:.2f}, load generator {cores['load generator']:.2f}; "
            f"system CPU {system * 1000 / result.rate:.2f} ms/call"
        )
    return f"load generator {f['generator_cpu_us_per_call']:.0f} µs/call{used}"


async def measured(stack: Stack, run: Awaitable[Result]) -> Result:
    """`run`, with the cores each role kept busy meanwhile (CPU seconds per second) in
    `extra["cores"]`: the system saturating the machine while the load generator uses a small
    share shows that the generator is not the limit."""
    before = procs.CpuSnapshot.take(stack)
    result = await run
    used = procs.CpuSnapshot.take(stack).since(before, stack)
    result.extra["cores"] = {role: round(s / result.seconds, 2) for role, s in used.items()}
    result.extra["system_cpu_ms_per_call"] = round(
        sum(s for role, s in used.items() if role != "load generator") * 1000 / result.calls, 3
    )
    return result


def measured_figures(result: Result) -> dict[str, Any]:
    """The figures of a `measured` run: its own, the cores each role kept busy and the
    system's CPU a call."""
    return {
        **result.figures(),
        "cores": result.extra["cores"],
        "system_cpu_ms_per_call": result.extra["system_cpu_ms_per_call"],
    }


def http_ports(stack: Stack) -> list[int]:
    """The HTTP API's ports: the gateway inside each orders server."""
    return [server.http_port for server in stack.orders]


def checkout_request(tag: str, i: int) -> orders_pb2.CreateOrderRequest:
    return orders_pb2.CreateOrderRequest(
        request_id=f"bench-{tag}-{i}-{uuid.uuid4().hex[:8]}",
        items=[orders_pb2.CreateOrderItem(product_id=PRODUCT, quantity=1 + i % 3)],
    )


def orders_channel(stack: Stack) -> grpc.aio.Channel:
    """A channel balancing over every orders replica."""
    return balanced_channel(stack.orders)


def balanced_channel(processes: list[ServiceProcess]) -> grpc.aio.Channel:
    """A channel balancing round robin over some gRPC server processes."""
    return grpc.aio.insecure_channel(
        f"ipv4:{targets(processes)}", options=[("grpc.lb_policy_name", "round_robin")]
    )


def connect(stack: Stack, service: str) -> Any:
    return connect_to(stack.databases[service][1])


def connect_to(url: str) -> Any:
    """A psycopg2 connection (autocommit) to the database a service's URL names."""
    conn = servers.connect(url)
    conn.autocommit = True
    return conn


def scalar(conn: Any, sql: str, params: Any = None) -> Any:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()[0]


# -- reads at 1k / 10k / 100k orders -------------------------------------------------------

BULK = """
SET session_replication_role = replica;
INSERT INTO orders (id, request_id, status, payment_status, total_centavos, created_at, updated_at)
SELECT gen_random_uuid(), 'bulk-' || %(from)s + g,
       CASE WHEN %(from)s + g <= 30 THEN 'RECEIVED'::order_status ELSE 'COMPLETED' END,
       'APPROVED', 2590,
       now() - interval '1 day' - (%(from)s + g) * interval '1 second', now() - interval '1 day'
FROM generate_series(1, %(rows)s) AS g;
INSERT INTO order_items (order_id, line, product_id, name, category, unit_price_centavos,
                         quantity, notes)
SELECT id, 0, %(product)s, 'X-Burger', 'BURGER', 2590, 1, ''
FROM orders o WHERE request_id LIKE 'bulk-%%'
  AND NOT EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = o.id);
INSERT INTO order_history (order_id, status, actor, reason, time)
SELECT id, status, 'KITCHEN', 'bulk', updated_at FROM orders o WHERE request_id LIKE 'bulk-%%'
  AND NOT EXISTS (SELECT 1 FROM order_history h WHERE h.order_id = o.id);
SET session_replication_role = origin;
ANALYZE;
CHECKPOINT;
"""


def fill(url: str, orders: int) -> int:
    """Add stored orders (completed, as a day of business leaves them) to the database at
    `url` up to `orders`; then analyze and checkpoint, so the reads measure the table's size,
    not PostgreSQL writing the bulk load out in the background (a first full run measured
    1.4-1.5x at 100k that way, a rerun 0.9-1.0x)."""
    db = connect_to(url)
    try:
        have = scalar(db, "SELECT count(*) FROM orders")
        if have < orders:
            bulk = scalar(db, "SELECT count(*) FROM orders WHERE request_id LIKE 'bulk-%%'")
            with db.cursor() as cur:
                cur.execute(BULK, {"from": bulk, "rows": orders - have, "product": PRODUCT})
        return int(scalar(db, "SELECT count(*) FROM orders"))
    finally:
        db.close()


READ_SIZES = (1_000, 10_000, 100_000)
READ_ROUNDS = 5


async def reads(stack: Stack) -> None:
    """Each read against 1k, 10k and 100k stored orders: one orders server per size, each on
    a database of its own, measured in interleaved rounds (so a machine that slows down or
    speeds up during the scenario weighs on every size alike). Then the stack's own database
    is filled to 100k, for the scenarios after this one."""
    print(
        f"reads (median of one call at a time, over gRPC; {READ_ROUNDS} interleaved rounds)",
        flush=True,
    )
    databases: list[str] = []
    readers: dict[int, ServiceProcess] = {}
    channels: dict[int, grpc.aio.Channel] = {}
    calls: dict[int, dict[str, Callable[[int], Awaitable[Any]]]] = {}
    samples: dict[str, dict[int, list[float]]] = {}
    try:
        for size in READ_SIZES:
            name, url = stack.pg.create_database(
                f"orders_{size // 1000}k", stack.templates["orders"]
            )
            databases.append(name)
            stored = await asyncio.to_thread(fill, url, size)
            print(f"    {stored} orders stored", flush=True)
            readers[size] = stack.server_on("orders", url, f"orders-{size // 1000}k")
        for reader in readers.values():
            reader.start(wait=False)
        for size, reader in readers.items():
            reader.wait_ready()
            channels[size] = grpc.aio.insecure_channel(f"127.0.0.1:{reader.port}")
            calls[size] = read_calls(channels[size], reader)
        for _ in range(READ_ROUNDS):
            for size, by_name in calls.items():
                for name, call in by_name.items():
                    result = await closed(READS // READ_ROUNDS, 1, call)
                    samples.setdefault(name, {}).setdefault(size, []).extend(result.latencies)
    finally:
        for channel in channels.values():
            await channel.close()
        for reader in readers.values():
            reader.stop()
        for name in databases:
            stack.pg.drop_database(name)
    await asyncio.to_thread(fill, stack.databases["orders"][1], READ_SIZES[-1])
    figures = {
        name: {str(size): round(pct(latencies, 0.5), 3) for size, latencies in by.items()}
        for name, by in samples.items()
    }
    for name, by_size in figures.items():
        small, large = by_size["1000"], by_size["100000"]
        line(
            f"{name}: 100k / 1k orders",
            f"{large / small:8.2f} x",
            "median " + ", ".join(f"{ms:.2f} ms at {int(n) // 1000}k" for n, ms in by_size.items()),
        )
    results["reads"] = {
        name: {**by_size, "ratio_100k_1k": round(by_size["100000"] / by_size["1000"], 2)}
        for name, by_size in figures.items()
    }


def read_calls(
    channel: grpc.aio.Channel, reader: ServiceProcess
) -> dict[str, Callable[[int], Awaitable[Any]]]:
    """The reads measured, on one orders server: GetOrder of one of its stored orders, the
    kitchen queue, a page of the order list."""
    db = connect_to(reader.env["ORDERS_DATABASE_URL"])
    try:
        order_id = str(scalar(db, "SELECT id FROM orders ORDER BY created_at DESC LIMIT 1"))
    finally:
        db.close()
    orders = orders_pb2_grpc.OrderServiceStub(channel)
    kitchen = orders_pb2_grpc.KitchenServiceStub(channel)
    return {
        "GetOrder": lambda _: orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order_id)),
        "ListKitchenQueue": lambda _: kitchen.ListKitchenQueue(
            orders_pb2.ListKitchenQueueRequest(page_size=20), metadata=STAFF
        ),
        "ListOrders (page of 50)": lambda _: orders.ListOrders(
            orders_pb2.ListOrdersRequest(page_size=50), metadata=STAFF
        ),
    }


# -- checkout bursts -----------------------------------------------------------------------


class Payments:
    """How many orders of the benchmark have their payment (in the payment service)."""

    def __init__(self, stack: Stack) -> None:
        self.db = connect(stack, "payment")
        self.expected = 0

    def count(self) -> int:
        return int(scalar(self.db, "SELECT count(*) FROM payments"))

    async def lag(self, timeout: float = 120) -> tuple[int, float]:
        """(orders without a payment right now, seconds until none is left)."""
        start = time.perf_counter()
        missing_at_end = self.expected - await asyncio.to_thread(self.count)
        missing = missing_at_end
        while missing > 0 and time.perf_counter() - start < timeout:
            await asyncio.sleep(0.02)
            missing = self.expected - await asyncio.to_thread(self.count)
        return missing_at_end, time.perf_counter() - start


async def checkouts(stack: Stack) -> None:
    print(
        f"checkout bursts of {BURST} (the saga's first step alongside: payment consumes every "
        "OrderCreated, orders every PaymentCreated)",
        flush=True,
    )
    payments = Payments(stack)
    payments.expected = await asyncio.to_thread(payments.count)
    figures: dict[str, Any] = {}

    async def burst(name: str, result_of: Awaitable[Result]) -> None:
        result = await measured(stack, result_of)
        payments.expected += result.calls
        missing, lag = await payments.lag()
        figures[name] = {
            **measured_figures(result),
            "without_payment_at_end": missing,
            "all_paid_after_s": round(lag, 2),
        }
        line(
            name,
            f"{result.rate:8.0f} /s",
            f"p50 {pct(result.latencies, 0.5):.1f} ms, p99 {pct(result.latencies, 0.99):.1f} ms; "
            f"{missing} without payment at the end, all {lag:.2f} s later; "
            + generator_note(result),
        )

    async with orders_channel(stack) as channel:
        stub = orders_pb2_grpc.OrderServiceStub(channel)
        warm = await closed(200, 32, lambda i: stub.CreateOrder(checkout_request("warm", i)))
        payments.expected += warm.calls
        await payments.lag()
        await burst(
            "gRPC CreateOrder, 32 in flight",
            closed(BURST, 32, lambda i: stub.CreateOrder(checkout_request("g", i))),
        )

    assert stack.gateway is not None
    # Each pool opened just before its burst: an idle connection is closed after
    # GATEWAY_HEADER_TIMEOUT_SECONDS.
    fronts = [("gateway", c, http_ports(stack)) for c in (8, 32, 128)]
    fronts.append(("gateway process", 32, [stack.gateway.port]))
    for front, concurrency, ports in fronts:
        pool = await Pool.spread(ports, concurrency)

        async def http_checkout(i: int, pool: Pool = pool) -> None:
            body = json.dumps({"items": [{"productId": PRODUCT, "quantity": 1 + i % 3}]}).encode()
            status, _ = await pool.request(
                "POST",
                "/v1/orders",
                body,
                {"Idempotency-Key": f"bench-h-{i}-{uuid.uuid4().hex[:8]}"},
            )
            assert status == 200, status

        await burst(
            f"{front} POST /v1/orders, {concurrency} in flight",
            closed(BURST, concurrency, http_checkout),
        )
        await pool.close()
    payments.db.close()
    results["checkout"] = figures


# -- GetOrder: throughput and the gateway's cost -------------------------------------------


async def get_order(stack: Stack, order_id: str) -> None:
    print("GetOrder (gRPC, through the gateway, through the gateway's process)", flush=True)
    assert stack.gateway is not None
    request = orders_pb2.GetOrderRequest(order_id=order_id)
    figures: dict[str, Any] = {}
    async with orders_channel(stack) as channel:
        stub = orders_pb2_grpc.OrderServiceStub(channel)
        pools = {
            "gateway": await Pool.spread(http_ports(stack), 32),
            "gateway process": await Pool.open("127.0.0.1", stack.gateway.port, 32),
        }

        def via(front: str) -> Callable[[int], Awaitable[None]]:
            pool = pools[front]

            async def call(_: int) -> None:
                status, _body = await pool.request("GET", f"/v1/orders/{order_id}")
                assert status == 200, status

            return call

        paths: dict[str, Callable[[int], Awaitable[Any]]] = {
            "gRPC": lambda _: stub.GetOrder(request),
            **{front: via(front) for front in pools},
        }
        for path in paths.values():  # warm up every path
            await closed(300, 32, path)
        at_32 = {
            name: await measured(stack, closed(THROUGHPUT_READS, 32, path))
            for name, path in paths.items()
        }
        for name, result in at_32.items():
            figures[f"{name}, 32 in flight"] = measured_figures(result)
            line(
                f"GetOrder {name}, 32 in flight",
                f"{result.rate:8.0f} /s",
                f"p50 {pct(result.latencies, 0.5):.1f} ms, "
                f"p99 {pct(result.latencies, 0.99):.1f} ms; " + generator_note(result),
            )
        # One call at a time, interleaved rounds: latency without queueing.
        one_at_a_time: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(6):
            for name, path in paths.items():
                one_at_a_time[name] += (await closed(READS // 6, 1, path)).latencies
        direct = pct(one_at_a_time["gRPC"], 0.5)
        for front, prefix in (("gateway", ""), ("gateway process", "process_")):
            ratio = figures[f"{prefix}throughput_ratio"] = round(
                at_32[front].rate / at_32["gRPC"].rate, 2
            )
            median = pct(one_at_a_time[front], 0.5)
            figures[f"{prefix}latency_ratio"] = round(median / direct, 2)
            figures[f"{prefix}latency_ms"] = {"gRPC": round(direct, 3), front: round(median, 3)}
            line(f"GetOrder {front} / gRPC throughput", f"{ratio:8.2f} x")
            line(
                f"GetOrder {front} / gRPC latency (one at a time)",
                f"{median / direct:8.2f} x",
                f"median {median:.2f} ms vs {direct:.2f} ms",
            )
        # Calls that arrive one by one (150/s, as the saga's checkouts do): what each costs
        # every process, against the same call among 32 in flight.
        sparse = await measured(
            stack, open_loop(SPARSE_RATE, SPARSE_SECONDS, lambda _: stub.GetOrder(request))
        )
        lone = figures["gRPC, one by one"] = {**measured_figures(sparse), "rate": SPARSE_RATE}
        line(
            f"GetOrder gRPC at {SPARSE_RATE}/s, system CPU a call",
            f"{lone['system_cpu_ms_per_call']:8.2f} ms",
            f"at 32 in flight {at_32['gRPC'].extra['system_cpu_ms_per_call']:.2f} ms; load "
            f"generator {lone['generator_cpu_us_per_call']:.0f} µs/call",
        )
        for pool in pools.values():
            await pool.close()
    results["get_order"] = figures


# -- the floor: GetOrder against canned servers -----------------------------------------


async def floor(stack: Stack, order_id: str) -> None:
    """GetOrder at 32 in flight against canned orders servers, as many as the services'
    replicas (`benchmarks.canned`: the same grpc.aio on uvloop, the same order, no database
    and no service code), over gRPC and through a gateway of its own: what the stack itself
    costs a call, beside what the real GetOrder costs (the `get_order` scenario)."""
    print("the floor: GetOrder against canned servers (no database, no service code)", flush=True)
    order = orders_pb2_grpc.OrderServiceStub(stack.channel("orders")).GetOrder(
        orders_pb2.GetOrderRequest(order_id=order_id)
    )
    order_file = stack.tmp / "canned-order.bin"
    order_file.write_bytes(order.SerializeToString())
    canned = []
    for i in range(REPLICAS):
        port = free_port()
        canned.append(
            ServiceProcess(
                "benchmarks.canned",
                stack.env({}),
                stack.tmp / f"canned-{i}.log",
                port,
                args=(str(port), str(order_file)),
            )
        )
    gateway = stack.new_gateway(targets(canned), targets(canned), "floor-gateway")
    figures: dict[str, Any] = {}
    try:
        for server in canned:
            server.start()
        gateway.start()
        request = orders_pb2.GetOrderRequest(order_id=order_id)
        channel = balanced_channel(canned)
        pool = await Pool.open("127.0.0.1", gateway.port, 32)
        try:
            stub = orders_pb2_grpc.OrderServiceStub(channel)

            async def via_gateway(_: int) -> None:
                status, _body = await pool.request("GET", f"/v1/orders/{order_id}")
                assert status == 200, status

            await closed(300, 32, lambda _: stub.GetOrder(request))  # warm up both paths
            await closed(300, 32, via_gateway)
            paths = (
                ("gRPC", lambda _: stub.GetOrder(request), {"canned servers": canned}),
                ("gateway", via_gateway, {"canned servers": canned, "gateway": [gateway]}),
            )
            for name, call, roles in paths:
                before = {role: _cpu(group) for role, group in roles.items()}
                result = await closed(THROUGHPUT_READS, 32, call)
                per_call = {
                    role: round((_cpu(group) - before[role]) * 1e6 / result.calls)
                    for role, group in roles.items()
                }
                figures[f"{name}, 32 in flight"] = {
                    **result.figures(),
                    "cpu_us_per_call": per_call,
                }
                line(
                    f"floor: GetOrder {name}, 32 in flight",
                    f"{result.rate:8.0f} /s",
                    ", ".join(f"{role} {us} µs/call" for role, us in per_call.items())
                    + "; "
                    + generator_note(result),
                )
        finally:
            await pool.close()
            await channel.close()
    finally:
        for process in [gateway, *canned]:
            process.stop()
    results["floor"] = figures


def _cpu(processes: list[ServiceProcess]) -> float:
    return sum(procs.cpu_seconds(p.proc.pid) for p in processes if p.proc is not None)


# -- 1,000 watchers ------------------------------------------------------------------------

WATCHERS = 1000
WATCHED = 10
STEPS = [
    orders_pb2.ORDER_STATUS_IN_PREPARATION,
    orders_pb2.ORDER_STATUS_READY,
    orders_pb2.ORDER_STATUS_COMPLETED,
]


async def fan_out(stack: Stack) -> None:
    print(f"fan-out: {WATCHERS} WatchOrder streams over {WATCHED} orders", flush=True)
    pay_target = "ipv4:" + ",".join(f"127.0.0.1:{p.port}" for p in stack.payment)
    async with (
        orders_channel(stack) as channel,
        grpc.aio.insecure_channel(pay_target) as pay_channel,
    ):
        orders = orders_pb2_grpc.OrderServiceStub(channel)
        kitchen = orders_pb2_grpc.KitchenServiceStub(channel)
        payments = payment_pb2_grpc.PaymentServiceStub(pay_channel)
        checkout = payment_pb2_grpc.FakeCheckoutServiceStub(pay_channel)
        ids = [(await orders.CreateOrder(checkout_request("watch", i))).id for i in range(WATCHED)]
        for order_id in ids:  # paid: in the kitchen queue
            payment = await _until(
                lambda o=order_id: payments.GetOrderPayment(
                    payment_pb2.GetOrderPaymentRequest(order_id=o)
                )
            )
            await checkout.PayFakeCheckout(
                payment_pb2.PayFakeCheckoutRequest(payment_id=payment.id)
            )
        for order_id in ids:
            await _until_status(orders, order_id, orders_pb2.ORDER_STATUS_RECEIVED)

        # Several channels, as many clients would have: the streams spread over both replicas.
        channels = [orders_channel(stack) for _ in range(4)]
        arrivals: dict[tuple[str, int], list[float]] = {}
        started: dict[tuple[str, int], float] = {}
        first = asyncio.Semaphore(0)

        async def watch(n: int) -> None:
            order_id = ids[n % WATCHED]
            stub = orders_pb2_grpc.OrderServiceStub(channels[n % len(channels)])
            seen_first = False
            async for order in stub.WatchOrder(orders_pb2.WatchOrderRequest(order_id=order_id)):
                arrivals.setdefault((order_id, order.status), []).append(time.perf_counter())
                if not seen_first:
                    seen_first = True
                    first.release()
                if order.status == STEPS[-1]:
                    return

        watchers = [asyncio.create_task(watch(n)) for n in range(WATCHERS)]
        for _ in range(WATCHERS):
            await asyncio.wait_for(first.acquire(), 60)
        cpu = own_cpu()
        for step in STEPS:
            for order_id in ids:
                started[(order_id, step)] = time.perf_counter()
            await asyncio.gather(
                *(
                    kitchen.UpdateOrderStatus(
                        orders_pb2.UpdateOrderStatusRequest(order_id=order_id, status=step),
                        metadata=STAFF,
                    )
                    for order_id in ids
                )
            )
            deadline = time.perf_counter() + 30
            while (  # noqa: ASYNC110 - a poll with a deadline, off the measured path
                sum(len(arrivals.get((o, step), [])) for o in ids) < WATCHERS
                and time.perf_counter() < deadline
            ):
                await asyncio.sleep(0.01)
        await asyncio.wait(watchers, timeout=30)
        generator_cpu = own_cpu() - cpu
        for task in watchers:
            task.cancel()
        for c in channels:
            await c.close()
    delays = [t - started[key] for key in started for t in arrivals.get(key, [])]
    missing = WATCHERS * len(STEPS) - len(delays)
    results["fan_out"] = {
        "watchers": WATCHERS,
        "orders": WATCHED,
        "deliveries": len(delays),
        "missing": missing,
        "p50_ms": round(pct(delays, 0.5), 1),
        "p99_ms": round(pct(delays, 0.99), 1),
        "generator_cpu_us_per_delivery": round(generator_cpu * 1e6 / max(len(delays), 1), 1),
    }
    line(
        "a kitchen step reaches every watcher",
        f"{pct(delays, 0.99):8.0f} ms",
        f"p99 (p50 {pct(delays, 0.5):.0f} ms) over {len(delays)} deliveries"
        + (f", {missing} never arrived" if missing else "")
        + f"; load generator {results['fan_out']['generator_cpu_us_per_delivery']:.0f} µs/delivery",
    )


async def _until(call: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def _until_status(stub: Any, order_id: str, status: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (await stub.GetOrder(orders_pb2.GetOrderRequest(order_id=order_id))).status != status:
        if time.monotonic() > deadline:
            raise AssertionError(f"order {order_id} never reached {status}")
        await asyncio.sleep(0.05)


# -- the full saga, open loop --------------------------------------------------------------


class Saga:
    """Checkouts at a fixed rate over gRPC, and when each order was RECEIVED."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.db = connect(stack, "orders")
        self.sent: dict[str, float] = {}  # request id -> wall-clock time it was sent

    def received(self) -> int:
        return int(scalar(self.db, "SELECT count(*) FROM orders WHERE status = 'RECEIVED'"))

    async def drain(self, timeout: float = 120) -> bool:
        deadline = time.monotonic() + timeout
        while await asyncio.to_thread(self.received) < len(self.sent):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    async def run(
        self, stub: Any, rate: float, seconds: float, tag: str
    ) -> tuple[Result, list[float]]:
        """Checkouts at `rate` for `seconds`; (result, backlog samples: sent but not RECEIVED,
        one a second)."""
        backlog: list[float] = []
        stop = asyncio.Event()

        async def sample() -> None:
            while not stop.is_set():
                await asyncio.sleep(1.0)
                backlog.append(len(self.sent) - await asyncio.to_thread(self.received))

        async def call(i: int) -> None:
            request = checkout_request(tag, i)
            self.sent[request.request_id] = time.time()
            await stub.CreateOrder(request, timeout=30)

        sampler = asyncio.create_task(sample())
        try:
            result = await open_loop(rate, seconds, call)
        finally:
            stop.set()
            await sampler
        return result, backlog

    def latencies(self, tag: str) -> list[float]:
        """Seconds from sending each checkout of `tag` to its order entering RECEIVED."""
        with self.db.cursor() as cur:
            cur.execute(
                "SELECT o.request_id, extract(epoch FROM h.time) FROM orders o "
                "JOIN order_history h ON h.order_id = o.id AND h.status = 'RECEIVED' "
                "WHERE o.request_id LIKE %s",
                (f"bench-{tag}-%",),
            )
            return [float(t) - self.sent[r] for r, t in cur.fetchall()]


def held(result: Result, backlog: list[float], rate: float, seconds: float) -> tuple[bool, float]:
    """Whether a rate was held: every checkout sent on time and answered, and the backlog not
    growing (its least-squares slope after the first fifth, in orders/s, under 2% of the
    rate)."""
    tail = backlog[len(backlog) // 5 :]
    slope = 0.0
    if len(tail) >= 3:
        n = len(tail)
        mean_x, mean_y = (n - 1) / 2, sum(tail) / n
        slope = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(tail)) / sum(
            (x - mean_x) ** 2 for x in range(n)
        )
    on_time = result.extra["send_seconds"] <= seconds * 1.05 + 0.5
    return (on_time and result.errors == 0 and slope < 0.02 * rate), slope


async def saga(stack: Stack) -> None:
    print("full saga, open loop (checkout → Pix charge → auto-approval → RECEIVED)", flush=True)
    runner = Saga(stack)
    figures: dict[str, Any] = {}
    async with orders_channel(stack) as channel:
        stub = orders_pb2_grpc.OrderServiceStub(channel)
        await runner.run(stub, 100, 2, "warm")
        await runner.drain()
        # What the stack costs with nothing arriving (its timers and sweeps), per second.
        before = procs.CpuSnapshot.take(stack)
        await asyncio.sleep(IDLE_SECONDS)
        idle = system_ms(procs.CpuSnapshot.take(stack).since(before, stack), IDLE_SECONDS)
        figures["idle_ms_per_second"] = idle
        line(
            "the saga's stack with nothing arriving",
            f"{idle[report.TOTAL]:8.1f} ms/s",
            f"of CPU ({idle[report.TOTAL] / 150:.2f} ms a saga at 150/s)",
        )
        # 150 orders/s: latency, and the CPU every process used per saga.
        before = procs.CpuSnapshot.take(stack)
        count_before = len(runner.sent)
        result, backlog = await runner.run(stub, 150, SAGA_SECONDS, "s150")
        drained = await runner.drain()
        after = procs.CpuSnapshot.take(stack)
        sagas = len(runner.sent) - count_before
        used = after.since(before, stack)
        latencies = runner.latencies("s150")
        ok, slope = held(result, backlog, 150, SAGA_SECONDS)
        figures["at_150"] = {
            "sagas": sagas,
            "checkout": result.figures(),
            "received_p50_ms": round(pct(latencies, 0.5), 1),
            "received_p99_ms": round(pct(latencies, 0.99), 1),
            "all_received": drained and len(latencies) == sagas,
            "held": ok,
        }
        line(
            "checkout → RECEIVED at 150 orders/s",
            f"{pct(latencies, 0.99):8.0f} ms",
            f"p99 (p50 {pct(latencies, 0.5):.0f} ms) over {len(latencies)} of {sagas} orders",
        )
        cpu = system_ms(used, sagas)
        system = cpu[report.TOTAL]
        figures["cpu_ms_per_saga"] = cpu
        for role, ms in sorted(cpu.items()):
            if role != report.TOTAL:
                line(f"CPU per saga: {role}", f"{ms:8.2f} ms")
        line(
            "CPU per saga: every process of the system",
            f"{system:8.2f} ms",
            "(gRPC-driven: no gateway)",
        )

        # The highest rate held without the backlog growing.
        ladder: list[dict[str, Any]] = []
        best = 150 if ok else 0
        for rate in LADDER:
            before = procs.CpuSnapshot.take(stack)
            count_before = len(runner.sent)
            result, backlog = await runner.run(stub, rate, LADDER_SECONDS, f"r{rate}")
            ok, slope = held(result, backlog, rate, LADDER_SECONDS)
            step: dict[str, Any] = {
                "rate": rate,
                "held": ok,
                "backlog_slope_per_s": round(slope, 1),
                "backlog_end": backlog[-1] if backlog else None,
                "checkout": result.figures(),
            }
            ladder.append(step)
            cpu_note = ""
            if ok and await runner.drain():  # the CPU per saga at this rate, once all are done
                used = procs.CpuSnapshot.take(stack).since(before, stack)
                sagas = len(runner.sent) - count_before
                step["cpu_ms_per_saga"] = system_ms(used, sagas)
                total = step["cpu_ms_per_saga"][report.TOTAL]
                step["cpu_ms_per_saga_system"] = round(total, 2)
                cpu_note = f"; CPU per saga {total:.2f} ms"
            line(
                f"open loop at {rate}/s for {LADDER_SECONDS:.0f} s",
                "held" if ok else "not held",
                f"backlog {'+' if slope >= 0 else ''}{slope:.1f} orders/s, "
                f"checkout p99 {pct(result.latencies, 0.99):.0f} ms, "
                f"{result.errors} errors{cpu_note}; " + generator_note(result),
            )
            if not ok:
                break
            best = rate
        figures["ladder"] = ladder
        figures["highest_rate_held"] = best
        line("full saga: highest rate held", f"{best:8.0f} /s")
    runner.db.close()
    results["saga"] = figures


def system_ms(used: dict[str, float], per: float) -> dict[str, float]:
    """CPU seconds per role as milliseconds per `per` (sagas, seconds), with their total over
    every process but the load generator."""
    ms = {role: round(seconds * 1000 / per, 3) for role, seconds in used.items()}
    total = round(sum(v for role, v in ms.items() if role != "load generator"), 3)
    return {**ms, report.TOTAL: total}


async def saga_parts(stack: Stack) -> None:
    """The CPU per saga at 150/s split in two: the same open loop, once with the whole saga
    and once with the workers stopped (the checkout alone: a lone CreateOrder and its
    transaction; nothing published, consumed or applied), one right after the other. Last in
    the saga's stack, which it leaves with its workers stopped."""
    print("the saga at 150/s, and its checkout alone", flush=True)
    runner = Saga(stack)
    parts: dict[str, Any] = {}

    async def measure(part: str, stub: Any, drain: bool) -> None:
        before = procs.CpuSnapshot.take(stack)
        count_before = len(runner.sent)
        result, _backlog = await runner.run(stub, 150, SAGA_SECONDS, f"p{len(parts)}")
        if result.errors:
            raise AssertionError(f"{part} at 150/s: {result.errors} checkouts failed")
        if drain and not await runner.drain():
            raise AssertionError(f"{part} at 150/s: not every order was RECEIVED")
        used = procs.CpuSnapshot.take(stack).since(before, stack)
        parts[part] = system_ms(used, len(runner.sent) - count_before)
        line(
            f"CPU per {part} at 150/s",
            f"{parts[part][report.TOTAL]:8.2f} ms",
            report.by_role(parts[part]),
        )

    async with orders_channel(stack) as channel:
        stub = orders_pb2_grpc.OrderServiceStub(channel)
        await measure("saga", stub, drain=True)
        for worker in [*stack.orders_workers, *stack.payment_workers]:
            worker.stop()
        await measure("checkout alone", stub, drain=False)
    runner.db.close()
    rest = parts["saga"][report.TOTAL] - parts["checkout alone"][report.TOTAL]
    line("CPU per saga at 150/s, less its checkout", f"{rest:8.2f} ms", "the saga's events")
    results.setdefault("saga", {})["parts_at_150"] = parts


def memory(stack: Stack, key: str) -> None:
    print("memory (resident set size now, and its peak)", flush=True)
    figures = {}
    for label, (rss, peak) in procs.memory(stack).items():
        figures[label] = {"rss_mb": round(rss), "peak_mb": round(peak)}
        line(label, f"{rss:8.0f} MB", f"peak {peak:.0f} MB")
    results.setdefault("memory", {}).update({f"{key}: {k}": v for k, v in figures.items()})


# -- running it ----------------------------------------------------------------------------


def api_stack(stack: Stack) -> None:
    """The scenarios of the API: reads, checkouts, GetOrder, watchers (no auto-approval)."""
    stack.start()
    try:
        seed(stack)
        first = orders_pb2_grpc.OrderServiceStub(stack.channel("orders")).CreateOrder(
            checkout_request("first", 0)
        )
        # Its payment in place before anything counts payments (the checkout bursts do).
        payment_db = connect(stack, "payment")
        wait_for(
            lambda: scalar(
                payment_db, "SELECT count(*) FROM payments WHERE order_id = %s", (first.id,)
            ),
            30,
            "the first order's payment",
        )
        payment_db.close()
        if wanted("reads"):
            asyncio.run(reads(stack))
        if wanted("checkout"):
            asyncio.run(checkouts(stack))
        if wanted("get_order"):
            asyncio.run(get_order(stack, first.id))
        if wanted("floor"):
            asyncio.run(floor(stack, first.id))
        if wanted("fan_out"):
            asyncio.run(fan_out(stack))
        memory(stack, "API stack")
    finally:
        stack.stop()


def saga_stack(stack: Stack) -> None:
    """The full saga, with the fake provider approving every charge at once."""
    stack.start()
    try:
        seed(stack)
        asyncio.run(saga(stack))
        memory(stack, "saga stack")
        asyncio.run(saga_parts(stack))
    finally:
        stack.stop()


def wanted(scenario: str) -> bool:
    return not ONLY or scenario in ONLY


def seed(stack: Stack) -> None:
    subprocess.run(
        [sys.executable, "-m", "orders", "seed-menu"],
        env=stack.orders[0].env,
        check=True,
        capture_output=True,
    )


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def main() -> int:
    if sys.argv[1:2] == ["table"]:
        print(table(json.loads(Path(sys.argv[2]).read_text())))
        return 0
    started = time.time()
    results["meta"] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": commit(),
        "quick": QUICK,
        "cpus": os.cpu_count(),
        "replicas": REPLICAS,
        "load_average_before": procs.load_average(),
    }
    print(
        f"Comanda benchmarks{' (quick)' if QUICK else ''}: {REPLICAS} replicas of each service, "
        f"{os.cpu_count()} CPUs shared by every process, load average "
        f"{results['meta']['load_average_before'][0]}\n",
        flush=True,
    )
    pg = PostgresServer(durable=True)
    pg.start()
    try:
        templates = {
            "orders": pg.migrated_template("orders", ORDERS.versions_dir),
            "payment": pg.migrated_template("payment", PAYMENT.versions_dir),
        }
        env = {"ORDERS_DB_POOL_SIZE": "8", "PAYMENT_DB_POOL_SIZE": "8"}
        if any(wanted(name) for name in ("reads", "checkout", "get_order", "floor", "fan_out")):
            api_stack(Stack(pg, templates, gateway=True, http=True, env=env, replicas=REPLICAS))
        if wanted("saga"):
            auto = {**env, "FAKE_PROVIDER_AUTO_APPROVE_SECONDS": "0"}
            saga_stack(Stack(pg, templates, gateway=False, env=auto, replicas=REPLICAS))
    finally:
        pg.stop()
    results["meta"]["load_average_after"] = procs.load_average()
    results["meta"]["seconds"] = round(time.time() - started)
    OUT.mkdir(exist_ok=True)
    path = OUT / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    (OUT / "latest.json").write_text(json.dumps(results, indent=2))
    print(f"\n{summary(results)}\n\nfigures written to {path} ({results['meta']['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
