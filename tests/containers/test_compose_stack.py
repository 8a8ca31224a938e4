"""The compose stack, in its containers: every service healthy, a customer's whole journey
through the gateway, and orders SIGKILLed while orders flow, with none lost or doubled."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import httpx
import pytest

from tests.containers.engine import ComposeStack, Steps, docker
from tests.support.waiting import wait_for

CPF = "529.982.247-25"
KITCHEN_STEPS = ("IN_PREPARATION", "READY", "COMPLETED")


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.is_success, (
        f"{response.request.method} {response.request.url.path}: "
        f"{response.status_code} {response.text[:500]}"
    )
    return dict(response.json())


def _healthy_services(stack: ComposeStack) -> dict[str, str] | None:
    health = {name: stack.health(name) for name in stack.services if name != "migrate"}
    return health if set(health.values()) == {"healthy"} else None


def test_every_service_becomes_healthy(stack: ComposeStack, steps: Steps) -> None:
    with steps.step("health") as note:
        migrate = stack.state("migrate")
        assert (migrate["Status"], migrate["ExitCode"]) == ("exited", 0), (
            f"expected the migrate step to exit 0, found {migrate['Status']} {migrate['ExitCode']}"
        )
        health = wait_for(lambda: _healthy_services(stack), 120, "every service healthy")
        checked = [n for n, s in stack.services.items() if s.get("healthcheck")]
        assert sorted(checked) == sorted(health), (
            f"expected a health check on every long-running service, found {checked}"
        )
        note.append(f"{', '.join(sorted(health))} healthy; migrate exited 0")


# --- one customer, start to end --------------------------------------------------------------


def _watch(gateway: httpx.Client, order_id: str, seen: list[str], ready: threading.Event) -> None:
    """Follows the order's stream (newline-delimited JSON) until it is completed."""
    with gateway.stream("GET", f"/v1/orders/{order_id}:watch", timeout=60) as response:
        ready.set()
        for line in response.iter_lines():
            if not line.strip():
                continue
            message = json.loads(line)
            if "error" in message:
                seen.append(f"error {message['error']}")
                return
            status = message["result"]["status"]
            if not seen or seen[-1] != status:
                seen.append(status)
            if status == "ORDER_STATUS_COMPLETED":
                return


def _shown(status: str, seen: list[str], watcher: threading.Thread) -> bool:
    """Whether the stream showed `status` (or ended: the final assertion then says why)."""
    return status in seen or not watcher.is_alive()


def test_the_gateway_serves_the_screens(gateway: httpx.Client, steps: Steps) -> None:
    with steps.step("screens") as note:
        for path in ("/kiosk", "/monitor", "/kitchen", "/screens/common.js"):
            page = gateway.get(path)
            assert page.status_code == 200 and page.content, f"{path}: {page.status_code}"
        note.append("/kiosk, /monitor and /kitchen served from the image")


def test_a_customer_journey_through_the_gateway(
    gateway: httpx.Client, staff: dict[str, str], steps: Steps
) -> None:
    with steps.step("menu") as note:
        products = _ok(gateway.get("/v1/products"))["products"]
        categories = {p["category"] for p in products}
        assert {"CATEGORY_BURGER", "CATEGORY_DRINK"} <= categories, f"menu: {categories}"
        drinks = _ok(gateway.get("/v1/products", params={"category": "CATEGORY_DRINK"}))
        assert {p["category"] for p in drinks["products"]} == {"CATEGORY_DRINK"}
        burger = next(p for p in products if p["category"] == "CATEGORY_BURGER")
        drink = drinks["products"][0]
        note.append(f"{len(products)} products in {len(categories)} categories")

    with steps.step("register and identify") as note:
        body = {"cpf": CPF, "name": "Maria Silva", "email": "maria@example.com"}
        customer = _ok(gateway.post("/v1/customers", json=body))
        again = _ok(
            gateway.post("/v1/customers:identify", json={"cpf": "".join(filter(str.isdigit, CPF))})
        )
        assert again["id"] == customer["id"], f"identify found {again}, expected {customer}"
        note.append(f"customer {customer['id'][:8]}")

    with steps.step("checkout") as note:
        items = [
            {"productId": burger["id"], "quantity": 2, "notes": "sem cebola"},
            {"productId": drink["id"], "quantity": 1},
        ]
        key = {"Idempotency-Key": f"compose-test-{uuid.uuid4()}"}
        cart = {"customerCpf": CPF, "items": items}
        order = _ok(gateway.post("/v1/orders", json=cart, headers=key))
        total = 2 * int(burger["priceCentavos"]) + int(drink["priceCentavos"])
        assert (order["status"], int(order["totalCentavos"])) == (
            "ORDER_STATUS_PENDING_PAYMENT",
            total,
        )
        retried = _ok(gateway.post("/v1/orders", json=cart, headers=key))
        assert retried["id"] == order["id"], "the same Idempotency-Key must return the same order"
        note.append(f"order #{order['number']}, R$ {total / 100:.2f}, PENDING_PAYMENT")

    seen: list[str] = []
    watching = threading.Event()
    watcher = threading.Thread(target=_watch, args=(gateway, order["id"], seen, watching))
    watcher.start()
    assert watching.wait(15), "the order's stream did not open"

    with steps.step("Pix charge") as note:
        payment = wait_for(
            lambda: (r := gateway.get(f"/v1/orders/{order['id']}/payment")).is_success and r.json(),
            30,
            "the Pix charge (the saga's PaymentCreated)",
        )
        assert payment["qrCode"].startswith("000201") and int(payment["amountCentavos"]) == total
        image = gateway.get(f"/v1/payments/{payment['id']}/qr-code")
        assert (image.status_code, image.headers["content-type"]) == (200, "image/svg+xml"), (
            f"the QR image: {image.status_code} {image.text[:200]}"
        )
        note.append(f"QR {payment['qrCode'][:24]}… (and its image), {payment['status']}")

    with steps.step("pay (fake checkout, signed webhook)") as note:
        _ok(gateway.post(f"/v1/fake-checkout/{payment['id']}:pay", json={}))
        received = wait_for(
            lambda: (
                (o := _ok(gateway.get(f"/v1/orders/{order['id']}")))["status"]
                == "ORDER_STATUS_RECEIVED"
                and o
            ),
            30,
            "the order RECEIVED after the payment",
        )
        # The stream shows the latest status: the kitchen starts once the watcher has it, as
        # for each kitchen step below (else IN_PREPARATION may supersede it before it is read).
        wait_for(partial(_shown, "ORDER_STATUS_RECEIVED", seen, watcher), 30, "stream at RECEIVED")
        note.append(f"order {received['status']}, payment {received['paymentStatus']}")

    with steps.step("kitchen") as note:
        queue = _ok(gateway.get("/v1/kitchen/orders", headers=staff))
        assert order["id"] in [o["id"] for o in queue["orders"]], "expected the order queued"
        assert gateway.get("/v1/kitchen/orders").status_code == 401, "the queue needs the token"
        skip = gateway.post(
            f"/v1/kitchen/orders/{order['id']}:advance",
            json={"status": "ORDER_STATUS_COMPLETED"},
            headers=staff,
        )
        assert skip.status_code == 400 and skip.json()["code"] == 9, f"skipping: {skip.text}"
        for status in KITCHEN_STEPS:
            advance = {"status": f"ORDER_STATUS_{status}"}
            url = f"/v1/kitchen/orders/{order['id']}:advance"
            assert (
                _ok(gateway.post(url, json=advance, headers=staff))["status"] == advance["status"]
            )
            # The stream carries the latest status (docs/screens.md: a watcher skips values
            # that were superseded before it took them), so the kitchen's next step waits
            # until this one has reached the watcher, as a kitchen's does.
            wait_for(partial(_shown, advance["status"], seen, watcher), 30, f"stream at {status}")
        note.append(" → ".join(KITCHEN_STEPS) + "; a skipped step refused with 400")

    with steps.step("watch and timeline") as note:
        watcher.join(30)
        assert not watcher.is_alive(), f"the stream never showed COMPLETED, saw {seen}"
        expected = ["PENDING_PAYMENT", "RECEIVED", *KITCHEN_STEPS]
        assert seen == [f"ORDER_STATUS_{s}" for s in expected], f"stream showed {seen}"
        timeline = _ok(gateway.get(f"/v1/orders/{order['id']}/timeline"))["entries"]
        events = [e["eventType"].rsplit(".", 1)[-1] for e in timeline]
        for event in ("OrderCreated", "PaymentApproved", "OrderStatusChanged"):
            assert event in events, f"expected {event} in the timeline, found {events}"
        history = [h["status"] for h in _ok(gateway.get(f"/v1/orders/{order['id']}"))["history"]]
        assert history == [f"ORDER_STATUS_{s}" for s in expected], f"history: {history}"
        note.append(f"stream saw {len(seen)} statuses; timeline has {len(events)} events")


# --- orders SIGKILLed while orders flow ------------------------------------------------------

ORDERS = 60
WORKERS = 4
KILL_AFTER = 20  # orders acknowledged before the kill
KILLED = "orders"  # the service SIGKILLed


def _until_done(call: Any, what: str, timeout: float = 90) -> dict[str, Any]:
    """Retries through the outage: connection errors and 5xx (UNAVAILABLE, DEADLINE) only."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = call()
            if response.status_code < 500:
                return _ok(response)
            problem = f"{response.status_code} {response.text[:200]}"
        except httpx.TransportError as exc:
            problem = repr(exc)
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still failing after {timeout}s: {problem}")
        time.sleep(0.2)


def _restarts(stack: ComposeStack, service: str) -> int:
    return int(docker("inspect", "--format", "{{.RestartCount}}", stack.container(service)))


def _sigkill(stack: ComposeStack, service: str) -> str:
    """SIGKILL to the container's main process, as the kernel's OOM killer would send it: the
    restart policy brings it back. Without the right to signal it (not root), `docker kill`,
    which the engine counts as a manual stop, so it is started again by hand."""
    container = stack.container(service)
    pid = int(docker("inspect", "--format", "{{.State.Pid}}", container))
    try:
        os.kill(pid, signal.SIGKILL)
        return "kill -KILL (restart policy)"
    except PermissionError:
        docker("kill", "--signal", "KILL", container)
        wait_for(lambda: stack.state(service)["Status"] == "exited", 30, f"{service} stopped")
        docker("start", container)
        return "docker kill -s KILL, docker start"


@pytest.fixture
def orders_killed_mid_stream(
    stack: ComposeStack, gateway: httpx.Client, steps: Steps
) -> Iterator[dict[str, Any]]:
    """ORDERS checkouts and payments from WORKERS clients; orders is SIGKILLed once KILL_AFTER
    are acknowledged. Yields what happened."""
    run = uuid.uuid4().hex[:8]
    acknowledged: list[str] = []
    lock = threading.Lock()
    product = _ok(gateway.get("/v1/products"))["products"][0]
    restarts_before = _restarts(stack, KILLED)
    result: dict[str, Any] = {"run": run}
    killed = threading.Event()

    def one_order(i: int) -> str:
        key = {"Idempotency-Key": f"kill-{run}-{i}"}
        body = {"items": [{"productId": product["id"], "quantity": 1 + i % 3}]}
        order = _until_done(lambda: gateway.post("/v1/orders", json=body, headers=key), "checkout")
        with lock:
            acknowledged.append(order["id"])
            if len(acknowledged) == KILL_AFTER and not killed.is_set():
                killed.set()
                result["in_flight"] = KILL_AFTER - sum(
                    _ok(gateway.get(f"/v1/orders/{o}"))["status"] == "ORDER_STATUS_RECEIVED"
                    for o in acknowledged
                )
                result["killed_at"] = time.monotonic()
                result["how"] = _sigkill(stack, KILLED)
        payment = wait_for(
            lambda: (r := gateway.get(f"/v1/orders/{order['id']}/payment")).is_success and r.json(),
            90,
            f"the Pix charge of order {order['id']}",
            interval=0.2,
        )
        _until_done(lambda: gateway.post(f"/v1/fake-checkout/{payment['id']}:pay", json={}), "pay")
        return str(order["id"])

    with steps.step(
        f"{ORDERS} orders from {WORKERS} clients, orders SIGKILLed after {KILL_AFTER}"
    ) as note:
        with ThreadPoolExecutor(WORKERS) as pool:
            ids = list(pool.map(one_order, range(ORDERS)))
        note.append(f"{result.get('in_flight')} of {KILL_AFTER} still in flight at the kill")
        note.append(str(result.get("how")))
    result["ids"] = ids
    result["restarts"] = _restarts(stack, KILLED) - restarts_before
    result["back_after"] = wait_for(
        lambda: stack.health(KILLED) == "healthy" and time.monotonic() - result["killed_at"],
        120,
        "orders healthy again",
    )
    yield result


def test_orders_sigkilled_mid_stream_loses_and_doubles_nothing(
    orders_killed_mid_stream: dict[str, Any],
    gateway: httpx.Client,
    staff: dict[str, str],
    steps: Steps,
) -> None:
    result = orders_killed_mid_stream
    ids: list[str] = result["ids"]
    assert result.get("killed_at"), "orders was never killed"
    assert result["in_flight"] > 0, "the kill came when no order was in flight: it proves nothing"
    if result["how"].startswith("kill"):
        assert result["restarts"] == 1, (
            f"expected the restart policy to restart orders once, found {result['restarts']}"
        )

    def statuses() -> dict[str, str]:
        return {i: _ok(gateway.get(f"/v1/orders/{i}"))["status"] for i in ids}

    with steps.step("every order through the saga") as note:
        wait_for(
            lambda: set(statuses().values()) == {"ORDER_STATUS_RECEIVED"},
            120,
            f"all {len(ids)} orders RECEIVED",
            interval=0.5,
        )
        note.append(
            f"{len(ids)} of {ORDERS} RECEIVED; orders back after {result['back_after']:.1f} s"
        )

    with steps.step("nothing lost, nothing doubled") as note:
        listed: list[dict[str, Any]] = []
        token = ""
        while True:
            page = _ok(
                gateway.get(
                    "/v1/orders", params={"pageSize": 100, "pageToken": token}, headers=staff
                )
            )
            listed += page.get("orders", [])
            token = page.get("nextPageToken", "")
            if not token:
                break
        mine = [o for o in listed if o.get("requestId", "").startswith(f"kill-{result['run']}-")]
        assert len(mine) == ORDERS and len({o["requestId"] for o in mine}) == ORDERS, (
            f"expected {ORDERS} orders, one per request id, found {len(mine)}"
        )
        assert {o["id"] for o in mine} == set(ids), (
            "the listed orders are not the acknowledged ones"
        )
        payments = [_ok(gateway.get(f"/v1/orders/{i}/payment")) for i in ids]
        assert [p["status"] for p in payments] == ["PAYMENT_STATUS_APPROVED"] * ORDERS
        approved = _ok(
            gateway.get(
                "/v1/payments",
                params={"status": "PAYMENT_STATUS_APPROVED", "pageSize": 100},
                headers=staff,
            )
        )["payments"]
        per_order = [sum(p["orderId"] == i for p in approved) for i in ids]
        assert per_order == [1] * ORDERS, "expected exactly one approved payment per order"
        note.append(f"{ORDERS} orders, {ORDERS} payments, one each; restarts: {result['restarts']}")
