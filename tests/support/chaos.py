"""Chaos: kiosks check out orders (each paid by the fake provider's auto-approval) on two
servers and two workers of each service while processes are SIGKILLed and NATS and PostgreSQL
are killed and restarted at random moments; then every order must be paid once and enter the
kitchen once.

One driver, two sizes: `tests/e2e/test_chaos.py` (a small run inside `make test`) and
`make chaos` (`python -m tests.support.chaos`, 2,000 orders by default), which prints:

    orders driven, faults injected, orders lost, payments doubled, events applied twice,
    deadlocks (PostgreSQL's log) and lock conflicts retried (the consumers' logs),
    deliveries spent per applied message, dead letters, seconds to settle

and exits 1 when an order is lost, a payment doubled, an event applied twice or a paid order's
event dead-lettered.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import psycopg2

from chassis.messaging import deadletter
from comanda.orders.v1 import orders_pb2, orders_pb2_grpc
from tests.support.saga import new_product, with_nats
from tests.support.servers import PostgresServer, connect
from tests.support.stack import ServiceProcess, Stack

# The stack a chaos run needs: automatic approval, and a short ack wait so that what a killed
# consumer held is redelivered soon.
STACK_ENV = {"FAKE_PROVIDER_AUTO_APPROVE_SECONDS": "0", "CONSUMER_ACK_WAIT_SECONDS": "3"}
REPLICAS = 2


@dataclass(frozen=True)
class Plan:
    orders: int
    kiosks: int = 4
    min_faults: int = 6  # at least this many, and the kiosks' whole drive long
    fault_gap: tuple[float, float] = (1.0, 3.0)  # seconds between faults, drawn at random
    kiosk_pause: float = 0.0  # seconds between a kiosk's checkouts
    settle_timeout: float = 120.0


@dataclass
class Report:
    orders_driven: int = 0
    faults: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    payments_doubled: list[str] = field(default_factory=list)
    applied_twice: list[str] = field(default_factory=list)
    deadlocks: int = 0
    conflicts_retried: int = 0
    deliveries: Counter[int] = field(default_factory=Counter)
    dead_letters: list[str] = field(default_factory=list)
    paid_dead_letters: list[str] = field(default_factory=list)
    drive_seconds: float = 0.0
    settle_seconds: float = 0.0  # after the last fault
    since_last_checkout: float = 0.0  # from the last accepted checkout to everything settled

    def problems(self) -> list[str]:
        found = []
        for name, items in (
            ("orders lost", self.lost),
            ("payments doubled", self.payments_doubled),
            ("events applied twice", self.applied_twice),
            ("dead letters of paid orders", self.paid_dead_letters),
        ):
            if items:
                found.append(f"{len(items)} {name}: {items[:5]}")
        return found

    def lines(self) -> list[str]:
        # "SIGKILL orders worker-1 at 4.4s" is of the kind "SIGKILL orders worker"
        kinds = Counter(re.sub(r"-\d+$", "", f.rsplit(" at ", 1)[0]) for f in self.faults)
        spent = ", ".join(f"{n}: {c}" for n, c in sorted(self.deliveries.items()))
        return [
            f"orders driven          {self.orders_driven} in {self.drive_seconds:.1f} s",
            f"faults injected        {len(self.faults)} "
            f"({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})",
            f"orders lost            {len(self.lost)}",
            f"payments doubled       {len(self.payments_doubled)}",
            f"events applied twice   {len(self.applied_twice)}",
            f"deadlocks              {self.deadlocks} (lock conflicts retried: "
            f"{self.conflicts_retried})",
            f"deliveries per message {spent or 'none logged'} (deliveries: messages applied)",
            f"dead letters           {len(self.dead_letters)} "
            f"(of paid orders: {len(self.paid_dead_letters)})",
            f"seconds to settle      {self.settle_seconds:.1f} after the last fault, "
            f"{self.since_last_checkout:.1f} after the last checkout",
        ]


def query(url: str, sql: str) -> list[tuple]:
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


class Kiosk(threading.Thread):
    """Checks out its orders one after the other, retrying each with the same request id
    (on any replica) until it is accepted."""

    def __init__(self, stack: Stack, product: str, requests: list[str], pause: float) -> None:
        super().__init__(daemon=True)
        self.stack, self.product, self.requests, self.pause = stack, product, requests, pause
        self.accepted: dict[str, str] = {}
        self.error: BaseException | None = None
        self.finished = 0.0  # time.monotonic() of its last accepted checkout
        self.stop = threading.Event()
        self._channels: dict[int, grpc.Channel] = {}

    def run(self) -> None:
        try:
            for request_id in self.requests:
                self.accepted[request_id] = self._checkout(request_id)
                self.finished = time.monotonic()
                if self.pause:
                    time.sleep(self.pause)
        except BaseException as exc:  # reported by the driver
            self.error = exc
        finally:
            for channel in self._channels.values():
                channel.close()

    def _checkout(self, request_id: str) -> str:
        while not self.stop.is_set():
            port = random.choice(self.stack.orders).port
            if port not in self._channels:
                self._channels[port] = grpc.insecure_channel(f"127.0.0.1:{port}")
            try:
                order = orders_pb2_grpc.OrderServiceStub(self._channels[port]).CreateOrder(
                    orders_pb2.CreateOrderRequest(
                        request_id=request_id,
                        items=[orders_pb2.CreateOrderItem(product_id=self.product, quantity=1)],
                    ),
                    timeout=5,
                )
                return str(order.id)
            except grpc.RpcError as exc:
                if exc.code() not in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ):
                    raise
                time.sleep(0.1)
        raise AssertionError(f"checkout {request_id} never accepted")


def faults(stack: Stack, pg: PostgresServer) -> list[tuple[str, Callable[[], None]]]:
    """One of each fault: SIGKILL (and restart) of every service process, NATS and
    PostgreSQL killed and started again."""

    def kill(proc: ServiceProcess) -> Callable[[], None]:
        def act() -> None:
            proc.kill()
            proc.start()

        return act

    def outage(server: object) -> Callable[[], None]:
        def act() -> None:
            server.kill()  # type: ignore[attr-defined]
            time.sleep(random.uniform(0.5, 2.0))
            server.restart()  # type: ignore[attr-defined]

        return act

    found = [
        (f"SIGKILL {proc.role}-{i % REPLICAS}", kill(proc)) for i, proc in enumerate(stack.services)
    ]
    return [*found, ("restart NATS", outage(stack.nats)), ("restart PostgreSQL", outage(pg))]


def run(stack: Stack, pg: PostgresServer, plan: Plan) -> Report:
    assert pg.embedded is not None, "chaos restarts PostgreSQL: it needs the embedded one"
    assert stack.nats.embedded is not None, "chaos restarts NATS: it needs the embedded one"
    report = Report()
    pg_log = pg.embedded.log_path
    pg_log_start = pg_log.stat().st_size if pg_log.exists() else 0
    product = new_product(stack)
    prefix = f"chaos-{uuid.uuid4().hex[:8]}-"
    requests = [f"{prefix}{i}" for i in range(plan.orders)]
    kiosks = [
        Kiosk(stack, product, requests[i :: plan.kiosks], plan.kiosk_pause)
        for i in range(plan.kiosks)
    ]
    started = time.monotonic()
    for kiosk in kiosks:
        kiosk.start()
    kinds = faults(stack, pg)
    queue: list[tuple[str, Callable[[], None]]] = []
    try:
        while any(k.is_alive() for k in kiosks) or len(report.faults) < plan.min_faults:
            time.sleep(random.uniform(*plan.fault_gap))
            if not queue:  # every kind once per round, in a random order
                queue = random.sample(kinds, len(kinds))
            name, act = queue.pop()
            act()
            report.faults.append(f"{name} at {time.monotonic() - started:.1f}s")
    finally:
        for kiosk in kiosks:
            kiosk.join(120)
            kiosk.stop.set()
    report.drive_seconds = time.monotonic() - started
    errors = [k.error for k in kiosks if k.error is not None]
    assert not errors, f"a kiosk failed: {errors[0]!r} after {report.faults}"
    ids = {r: i for k in kiosks for r, i in k.accepted.items()}
    report.orders_driven = len(ids)
    assert len(ids) == plan.orders, f"{plan.orders - len(ids)} checkouts never accepted"

    orders_url, payment_url = stack.databases["orders"][1], stack.databases["payment"][1]
    like = f"request_id LIKE '{prefix}%'"
    settling = time.monotonic()
    deadline = settling + plan.settle_timeout
    while time.monotonic() < deadline:
        try:
            ((received,),) = query(
                orders_url, f"SELECT count(*) FROM orders WHERE status = 'RECEIVED' AND {like}"
            )
        except psycopg2.Error:
            received = -1
        if received == plan.orders:
            break
        time.sleep(0.2)
    report.settle_seconds = time.monotonic() - settling
    report.since_last_checkout = time.monotonic() - max(k.finished for k in kiosks)

    stored = dict(query(orders_url, f"SELECT request_id, id::text FROM orders WHERE {like}"))
    status = dict(query(orders_url, f"SELECT id::text, status::text FROM orders WHERE {like}"))
    report.lost = sorted(
        order_id
        for request_id, order_id in ids.items()
        if stored.get(request_id) != order_id or status.get(order_id) != "RECEIVED"
    )
    ours = set(ids.values())
    report.applied_twice += [
        f"{order_id} entered the kitchen {n} times"
        for order_id, n in _count(
            orders_url, "SELECT order_id::text FROM order_history WHERE status = 'RECEIVED'"
        ).items()
        if order_id in ours and n > 1
    ]
    report.applied_twice += [
        f"{order_id} created {n} times"
        for order_id, n in _count(
            orders_url,
            "SELECT order_id FROM outbox WHERE event_type = 'comanda.events.v1.OrderCreated'",
        ).items()
        if order_id in ours and n > 1
    ]
    payments = query(payment_url, "SELECT order_id::text, status::text FROM payments")
    report.payments_doubled += [
        f"{order_id} has {n} payments"
        for order_id, n in Counter(order_id for order_id, _ in payments).items()
        if order_id in ours and n > 1
    ]
    report.payments_doubled += [
        f"{order_id} approved {n} times"
        for order_id, n in _count(
            payment_url,
            "SELECT p.order_id::text FROM payment_history h JOIN payments p ON p.id = h.payment_id"
            " WHERE h.status = 'APPROVED'",
        ).items()
        if order_id in ours and n > 1
    ]
    report.lost += sorted(
        f"{order_id} payment {state}"
        for order_id, state in payments
        if order_id in ours and state != "APPROVED"
    )
    applied: Counter[tuple[str, str]] = Counter()
    for proc in stack.services:
        for line in proc.log().splitlines():
            entry = _json(line)
            if "deliveries" in entry:
                report.deliveries[int(entry["deliveries"])] += 1
                if "duplicate" not in entry.get("message", ""):
                    applied[(entry["consumer"], entry["event_id"])] += 1
            elif "lock conflict" in entry.get("message", ""):
                report.conflicts_retried += 1
    report.applied_twice += [f"{c} applied {e} {n} times" for (c, e), n in applied.items() if n > 1]
    if pg_log.exists():
        with pg_log.open("rb") as log:
            log.seek(pg_log_start)
            report.deadlocks = log.read().count(b"deadlock detected")
    paid = {order_id for order_id, state in payments if state == "APPROVED"}
    for letter in with_nats(stack.nats.url, deadletter.list_dead_letters):
        order_id = letter.subject.rsplit(".", 1)[-1]
        text = f"{letter.subject} ({letter.consumer}): {letter.reason}"
        report.dead_letters.append(text)
        if order_id in paid or order_id in ours:
            report.paid_dead_letters.append(text)
    return report


def _count(url: str, sql: str) -> Counter[str]:
    return Counter(row[0] for row in query(url, sql))


def _json(line: str) -> dict[str, Any]:
    try:
        entry = json.loads(line)
    except ValueError:
        return {}
    return entry if isinstance(entry, dict) else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--kiosks", type=int, default=6)
    parser.add_argument("--faults", type=int, default=12, help="at least this many faults")
    args = parser.parse_args(argv)
    from orders.app import DEFINITION as ORDERS
    from payment.app import DEFINITION as PAYMENT

    pg = PostgresServer()
    if pg.external:
        print("make chaos restarts PostgreSQL: unset TEST_POSTGRES_URL", file=sys.stderr)
        return 2
    pg.start()
    stack = None
    try:
        templates = {
            "orders": pg.migrated_template("orders", ORDERS.versions_dir),
            "payment": pg.migrated_template("payment", PAYMENT.versions_dir),
        }
        stack = Stack(pg, templates, replicas=REPLICAS, env=STACK_ENV)
        if stack.nats.external:
            print("make chaos restarts NATS: unset TEST_NATS_URL", file=sys.stderr)
            return 2
        stack.start()
        print(
            f"chaos: {args.orders} orders from {args.kiosks} kiosks, {REPLICAS} replicas of each "
            f"service, at least {args.faults} faults; logs in {stack.tmp}",
            flush=True,
        )
        plan = Plan(
            orders=args.orders,
            kiosks=args.kiosks,
            min_faults=args.faults,
            fault_gap=(1.5, 4.0),
            settle_timeout=300,
        )
        report = run(stack, pg, plan)
    finally:
        if stack is not None:
            stack.stop()
        pg.stop()
    for line in report.lines():
        print(line)
    for fault in report.faults:
        print(f"  {fault}")
    for letter in report.dead_letters:
        print(f"  dead letter: {letter}")
    problems = report.problems()
    for problem in problems:
        print(f"FAIL: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
