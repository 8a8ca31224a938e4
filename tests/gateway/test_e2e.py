"""End to end through the real gateway and the real orders and payment services: every
annotated route, every error class, the webhook pass-through and both stream formats. Each
test runs twice: through the gateway's own process, and through the gateway inside an orders
server (`ORDERS_HTTP_PORT`: orders' methods called in-process, payment's over gRPC)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import io
import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import zxingcpp
from PIL import Image

from tests.support.cpf import new_cpf
from tests.support.http_stream import HttpStream
from tests.support.stack import STAFF, WEBHOOK_SECRET, Stack
from tests.support.waiting import wait_for

AUTH = {STAFF[0][0]: STAFF[0][1]}
LIFECYCLE = [
    "ORDER_STATUS_PENDING_PAYMENT",
    "ORDER_STATUS_RECEIVED",
    "ORDER_STATUS_IN_PREPARATION",
    "ORDER_STATUS_READY",
    "ORDER_STATUS_COMPLETED",
]


def sign(body: bytes, ts: int | None = None) -> str:
    ts = int(time.time()) if ts is None else ts
    digest = hmac.new(WEBHOOK_SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"ts={ts},v1={digest}"


FRONTS = ["gateway", "in-process"]


def front_url(stack: Stack, front: str) -> str:
    return stack.gateway_url if front == "gateway" else stack.http_url("orders")


@pytest.fixture(scope="module", params=FRONTS)
def url(stack: Stack, request: pytest.FixtureRequest) -> str:
    """Where the API is served: the gateway's process, or an orders server's HTTP port."""
    return front_url(stack, request.param)


@pytest.fixture(scope="module")
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=15) as client:
        yield client


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url}: expected {status}, got "
        f"{response.status_code}: {response.text}"
    )
    return response.json()


def error(response: httpx.Response, status: int, code: int) -> Any:
    body = response.json()
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {body}"
    assert set(body) == {"code", "message", "details"}, f"not a google.rpc.Status: {body}"
    assert body["code"] == code, f"expected gRPC code {code}, got {body}"
    return body


@pytest.fixture(scope="module")
def product(http: httpx.Client) -> Any:
    return ok(
        http.post(
            "/v1/products",
            headers=AUTH,
            json={
                "name": "X-Bacon",
                "description": "pão, carne, bacon",
                "category": "CATEGORY_BURGER",
                "priceCentavos": "2990",
                "preparationSeconds": 420,
            },
        )
    )


def checkout(http: httpx.Client, product: dict[str, Any], quantity: int = 1, **extra: Any) -> Any:
    key = f"e2e-{uuid.uuid4()}"
    body = {
        "items": [{"productId": product["id"], "quantity": quantity, "notes": "sem cebola"}],
        **extra,
    }
    return ok(http.post("/v1/orders", json=body, headers={"Idempotency-Key": key}))


def payment_of(http: httpx.Client, order_id: str) -> Any:
    response = wait_for(
        lambda: _found(http.get(f"/v1/orders/{order_id}/payment")),
        timeout=15,
        what=f"the payment of order {order_id}",
    )
    return response.json()


def _found(response: httpx.Response) -> Any:
    return response if response.status_code == 200 else None


def order_status(http: httpx.Client, order_id: str, status: str) -> Any:
    def check() -> Any:
        order = ok(http.get(f"/v1/orders/{order_id}"))
        return order if order["status"] == status else None

    return wait_for(check, timeout=15, what=f"order {order_id} to be {status}")


# -- customers ---------------------------------------------------------------------------
def test_customer_routes(http):
    cpf = new_cpf()
    formatted = f"{cpf[:3]}.{cpf[3:6]}.{cpf[6:9]}-{cpf[9:]}"

    customer = ok(
        http.post(
            "/v1/customers",
            json={"cpf": formatted, "name": "Ana Souza", "email": "ana@example.com"},
        )
    )
    identified = ok(http.post("/v1/customers:identify", json={"cpf": cpf}))
    fetched = ok(http.get(f"/v1/customers/{customer['id']}", headers=AUTH))
    erased = ok(http.post(f"/v1/customers/{customer['id']}:erase", headers=AUTH))

    assert customer["cpf"] == cpf and customer["name"] == "Ana Souza"
    assert identified["id"] == customer["id"] == fetched["id"]
    assert erased["cpf"] == "" and erased["name"] == "" and erased["email"] == ""
    assert "eraseTime" in erased and "eraseTime" not in customer


def test_duplicate_cpf_is_409(http):
    cpf = new_cpf()
    ok(http.post("/v1/customers", json={"cpf": cpf, "name": "Bia", "email": "bia@example.com"}))

    again = http.post("/v1/customers", json={"cpf": cpf, "name": "Bia", "email": "bia@example.com"})

    assert "already" in error(again, 409, 6)["message"]


def test_an_invalid_field_is_400_with_the_services_field_violation(http):
    response = http.post(
        "/v1/customers", json={"cpf": "111.111.111-12", "name": "C", "email": "c@example.com"}
    )

    body = error(response, 400, 3)
    assert body["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert body["details"][0]["fieldViolations"][0]["field"] == "cpf", body


# -- catalogue ---------------------------------------------------------------------------
def test_catalog_routes(http, product):
    fetched = ok(http.get(f"/v1/products/{product['id']}"))
    listed = ok(http.get("/v1/products", params={"category": "CATEGORY_BURGER", "pageSize": 100}))
    drinks = ok(http.get("/v1/products", params={"category": "CATEGORY_DRINK"}))
    updated = ok(
        http.patch(
            f"/v1/products/{product['id']}",
            headers=AUTH,
            params={"updateMask": "priceCentavos,description"},
            json={"priceCentavos": "3190", "description": "com cheddar", "name": "ignored"},
        )
    )
    extra = ok(
        http.post(
            "/v1/products",
            headers=AUTH,
            json={
                "name": "Suco",
                "category": "CATEGORY_DRINK",
                "priceCentavos": "900",
                "preparationSeconds": 60,
            },
        )
    )
    archived = ok(http.post(f"/v1/products/{extra['id']}:archive", headers=AUTH))
    without = ok(http.get("/v1/products", params={"category": "CATEGORY_DRINK"}))
    with_archived = ok(
        http.get("/v1/products", params={"category": "CATEGORY_DRINK", "include_archived": "true"})
    )

    assert fetched == product | {"updateTime": fetched["updateTime"]}
    assert product["id"] in [p["id"] for p in listed["products"]]
    assert all(p["category"] == "CATEGORY_BURGER" for p in listed["products"])
    assert product["id"] not in [p["id"] for p in drinks["products"]]
    assert updated["priceCentavos"] == "3190" and updated["description"] == "com cheddar"
    assert updated["name"] == "X-Bacon", "fields outside the mask stay"
    assert archived["active"] is False
    assert extra["id"] not in [p["id"] for p in without["products"]]
    assert extra["id"] in [p["id"] for p in with_archived["products"]]
    ok(
        http.patch(
            f"/v1/products/{product['id']}",
            headers=AUTH,
            params={"updateMask": "priceCentavos"},
            json={"priceCentavos": "2990"},
        )
    )


def test_an_unknown_id_is_404_naming_it(http):
    response = http.get(f"/v1/products/{uuid.uuid4()}")

    body = error(response, 404, 5)
    assert body["details"][0]["@type"] == "type.googleapis.com/google.rpc.ResourceInfo", body


def test_staff_routes_without_a_token_are_401(http):
    missing = http.post("/v1/products", json={"name": "x"})
    wrong = http.get("/v1/kitchen/orders", headers={"Authorization": "Bearer nope"})

    assert "staff" in error(missing, 401, 16)["message"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    error(wrong, 401, 16)


# -- orders, payment, kitchen --------------------------------------------------------------
def test_the_customer_journey_over_http_with_the_ndjson_stream(http, product, stack, url):
    cpf = new_cpf()
    ok(http.post("/v1/customers", json={"cpf": cpf, "name": "Caio", "email": "caio@example.com"}))
    key = f"journey-{uuid.uuid4()}"
    body = {"customerCpf": cpf, "items": [{"productId": product["id"], "quantity": 2}]}

    order = ok(http.post("/v1/orders", json=body, headers={"Idempotency-Key": key}))
    retried = ok(http.post("/v1/orders", json=body, headers={"Idempotency-Key": key}))
    assert retried["id"] == order["id"], "the same Idempotency-Key returns the same order"
    assert order["requestId"] == key and order["totalCentavos"] == "5980"
    assert order["status"] == "ORDER_STATUS_PENDING_PAYMENT"

    seen: list[dict[str, Any]] = []
    stream_done = threading.Event()

    def watch() -> None:
        with httpx.stream("GET", f"{url}/v1/orders/{order['id']}:watch", timeout=30) as response:
            assert response.headers["content-type"] == "application/x-ndjson"
            for line in response.iter_lines():
                if line:
                    seen.append(json.loads(line))
        stream_done.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    wait_for(lambda: seen, timeout=10, what="the first message of the watch stream")

    payment = payment_of(http, order["id"])
    assert payment["status"] == "PAYMENT_STATUS_PENDING" and payment["qrCode"].startswith("000201")
    assert ok(http.get(f"/v1/payments/{payment['id']}"))["orderId"] == order["id"]
    paid = ok(http.post(f"/v1/fake-checkout/{payment['id']}:pay"))
    assert paid["status"] == "PAYMENT_STATUS_APPROVED"
    order_status(http, order["id"], "ORDER_STATUS_RECEIVED")

    queue = ok(http.get("/v1/kitchen/orders", headers=AUTH, params={"pageSize": 500}))
    assert order["id"] in [o["id"] for o in queue["orders"]]
    for status in ("ORDER_STATUS_IN_PREPARATION", "ORDER_STATUS_READY", "ORDER_STATUS_COMPLETED"):
        moved = ok(
            http.post(
                f"/v1/kitchen/orders/{order['id']}:advance", headers=AUTH, json={"status": status}
            )
        )
        assert moved["status"] == status

    assert stream_done.wait(15), (
        f"the stream did not end after COMPLETED; saw {[m.get('result', m) for m in seen]}"
    )
    statuses = [status for status, _ in itertools.groupby(m["result"]["status"] for m in seen)]
    assert (
        statuses[0] == "ORDER_STATUS_PENDING_PAYMENT" and statuses[-1] == "ORDER_STATUS_COMPLETED"
    ), statuses
    assert [s for s in LIFECYCLE if s in statuses] == statuses, (
        f"out of order or unexpected: {statuses}"
    )

    timeline = ok(http.get(f"/v1/orders/{order['id']}/timeline"))
    events = {entry["eventType"] for entry in timeline["entries"]}
    assert (
        "comanda.events.v1.OrderCreated" in events and "comanda.events.v1.PaymentApproved" in events
    )
    listed = ok(http.get("/v1/orders", headers=AUTH, params={"status": "ORDER_STATUS_COMPLETED"}))
    assert order["id"] in [o["id"] for o in listed["orders"]]
    payments = ok(
        http.get("/v1/payments", headers=AUTH, params={"status": "PAYMENT_STATUS_APPROVED"})
    )
    assert payment["id"] in [p["id"] for p in payments["payments"]]

    again = http.post(
        f"/v1/kitchen/orders/{order['id']}:advance",
        headers=AUTH,
        json={"status": "ORDER_STATUS_READY"},
    )
    body = error(again, 400, 9)
    assert body["details"][0]["@type"] == "type.googleapis.com/google.rpc.PreconditionFailure", body


def test_cancel_is_seen_on_the_sse_stream(http, product, stack, url):
    order = checkout(http, product)
    events: list[str] = []
    done = threading.Event()

    def watch() -> None:
        headers = {"Accept": "text/event-stream"}
        with httpx.stream(
            "GET", f"{url}/v1/orders/{order['id']}:watch", headers=headers, timeout=30
        ) as response:
            assert response.headers["content-type"] == "text/event-stream"
            events.extend(line for line in response.iter_lines() if line)
        done.set()

    threading.Thread(target=watch, daemon=True).start()
    payment_of(http, order["id"])
    cancelled = ok(
        http.post(f"/v1/orders/{order['id']}:cancel", json={"reason": "changed my mind"})
    )

    assert cancelled["status"] == "ORDER_STATUS_CANCELLED"
    assert done.wait(15), f"the SSE stream did not end after CANCELLED; got {events}"
    assert all(e.startswith("data: ") for e in events), events
    last = json.loads(events[-1].removeprefix("data: "))
    assert last["status"] == "ORDER_STATUS_CANCELLED" and last["id"] == order["id"]


def test_decline_and_refund_routes(http, product):
    declined_order = checkout(http, product)
    paid_order = checkout(http, product)
    declined = ok(
        http.post(
            f"/v1/fake-checkout/{payment_of(http, declined_order['id'])['id']}:decline",
            json={"reason": "saldo insuficiente"},
        )
    )
    payment = payment_of(http, paid_order["id"])
    ok(http.post(f"/v1/fake-checkout/{payment['id']}:pay"))
    refunded = ok(
        http.post(
            f"/v1/payments/{payment['id']}:refund",
            headers=AUTH,
            json={"reason": "cliente desistiu"},
        )
    )

    assert declined["status"] == "PAYMENT_STATUS_DECLINED"
    assert refunded["status"] == "PAYMENT_STATUS_REFUNDED"
    order_status(http, declined_order["id"], "ORDER_STATUS_CANCELLED")


def test_the_webhook_passes_the_signed_body_through(http, product):
    order = checkout(http, product)
    payment = payment_of(http, order["id"])
    body = json.dumps(
        {
            "id": f"n-{uuid.uuid4()}",
            "type": "payment",
            "action": "payment.updated",
            "data": {"id": payment["providerReference"], "status": "approved"},
        },
        separators=(", ", ": "),
    ).encode()  # spacing a re-encoding would lose
    signature = sign(body)

    tampered = http.post(
        "/v1/webhooks/fake",
        content=body.replace(b"approved", b"approved "),
        headers={"x-signature": signature, "content-type": "application/json"},
    )
    accepted = http.post(
        "/v1/webhooks/fake",
        content=body,
        headers={"x-signature": signature, "content-type": "application/json"},
    )
    replayed = http.post(
        "/v1/webhooks/fake",
        content=body,
        headers={"x-signature": signature, "content-type": "application/json"},
    )
    unsigned = http.post(
        "/v1/webhooks/fake", content=body, headers={"content-type": "application/json"}
    )

    assert "signature" in error(tampered, 401, 16)["message"]
    assert ok(accepted) == {"duplicate": False, "status": "PAYMENT_STATUS_APPROVED"}
    assert ok(replayed) == {"duplicate": True, "status": "PAYMENT_STATUS_APPROVED"}
    error(unsigned, 401, 16)
    order_status(http, order["id"], "ORDER_STATUS_RECEIVED")


# -- the gateway's own errors ---------------------------------------------------------------
def test_gateway_errors_are_status_bodies_too(http):
    unknown = http.get("/v2/nothing")
    wrong_method = http.delete("/v1/orders")
    wrong_verb_method = http.get(f"/v1/orders/{uuid.uuid4()}:cancel")
    form = http.post(
        "/v1/customers",
        content=b"cpf=1",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    too_big = http.post(
        "/v1/customers",
        content=b'{"name": "' + b"x" * (1024 * 1024) + b'"}',
        headers={"content-type": "application/json"},
    )
    bad_json = http.post(
        "/v1/customers", content=b"{", headers={"content-type": "application/json"}
    )
    bad_type = http.post("/v1/orders", json={"items": [{"productId": "p", "quantity": "dois"}]})
    unknown_param = http.get("/v1/products", params={"colour": "red"})

    assert "no route" in error(unknown, 404, 5)["message"]
    error(wrong_method, 405, 12)
    assert wrong_method.headers["allow"] == "GET, POST"
    error(wrong_verb_method, 405, 12)
    assert wrong_verb_method.headers["allow"] == "POST"
    assert "application/json" in error(form, 415, 3)["message"]
    assert "larger than 1048576 bytes" in error(too_big, 413, 8)["message"]
    assert "not valid JSON" in error(bad_json, 400, 3)["message"]
    assert error(bad_type, 400, 3)["details"][0]["fieldViolations"][0]["field"] == "items.quantity"
    assert "colour" in error(unknown_param, 400, 3)["message"]


def test_every_response_carries_the_request_id(http):
    given = http.get("/v1/products", headers={"X-Request-Id": "tour-1"})
    made = http.get("/v2/nothing")

    assert given.headers["x-request-id"] == "tour-1"
    assert len(made.headers["x-request-id"]) == 36


# -- the screens: the Pix QR image and the live board and kitchen streams ---------------------
def test_the_pix_qr_code_is_an_image_of_its_copia_e_cola(http, product):
    order = checkout(http, product)
    payment = payment_of(http, order["id"])
    url = f"/v1/payments/{payment['id']}/qr-code"

    svg = http.get(url)
    png = http.get(url, params={"format": "IMAGE_FORMAT_PNG", "scale": 4})

    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml", svg.text
    assert svg.content.startswith(b"<svg") and b"<title>QR code Pix</title>" in svg.content
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    decoded = [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png.content)))]
    assert decoded == [payment["qrCode"]], "the image must carry the copia e cola text"
    assert (
        error(http.get(url, params={"scale": 41}), 400, 3)["details"][0]["fieldViolations"][0][
            "field"
        ]
        == "scale"
    )
    error(http.get(f"/v1/payments/{uuid.uuid4()}/qr-code"), 404, 5)
    ok(http.post(f"/v1/fake-checkout/{payment['id']}:pay"))
    paid = error(http.get(url), 400, 9)
    assert "APPROVED" in paid["message"], paid


def _entries(results: list[dict[str, Any]], number: str) -> list[str]:
    return [e["status"] for m in results for e in m.get("entries", []) if e["number"] == number]


def _has(number: str, status: str, results: list[dict[str, Any]]) -> bool:
    return status in _entries(results, number)


def test_the_board_stream_over_sse_carries_numbers_and_statuses_only(http, product, stack, url):
    cpf = new_cpf()
    ok(http.post("/v1/customers", json={"cpf": cpf, "name": "Zélia Quaresma", "email": "z@q.com"}))
    board = HttpStream(f"{url}/v1/order-board:watch", sse=True)
    first = board.wait(lambda results: results[:1], "the snapshot")[0]
    order = checkout(http, product, customerCpf=cpf)
    number = order["number"]
    ok(http.post(f"/v1/fake-checkout/{payment_of(http, order['id'])['id']}:pay"))
    board.wait(lambda r: "ORDER_STATUS_RECEIVED" in _entries(r, number), f"{number} received")
    for status in ("ORDER_STATUS_IN_PREPARATION", "ORDER_STATUS_READY", "ORDER_STATUS_COMPLETED"):
        ok(
            http.post(
                f"/v1/kitchen/orders/{order['id']}:advance", headers=AUTH, json={"status": status}
            )
        )
        board.wait(functools.partial(_has, number, status), f"{number} {status}")
    board.close()

    assert board.content_type == "text/event-stream"
    assert first["snapshot"] is True and all(not m["snapshot"] for m in board.results()[1:])
    assert _entries(board.results(), number) == LIFECYCLE[1:], "each step once, in order"
    fields = {key for m in board.results() for e in m["entries"] for key in e}
    assert fields <= {"number", "status", "statusTime"}, fields
    for private in (order["id"], cpf, "Zélia", order["items"][0]["name"], order["requestId"]):
        assert private.encode() not in bytes(board.raw), f"{private!r} is on the public board"
    again = HttpStream(f"{url}/v1/order-board:watch")
    snapshot = again.wait(lambda results: results[:1], "a new snapshot")[0]
    again.close()
    assert number not in [e["number"] for e in snapshot["entries"]], "a completed order left"


def test_the_kitchen_stream_is_for_staff_and_carries_the_waiting_times(http, product, stack, url):
    error(http.get("/v1/kitchen/orders:watch"), 401, 16)
    kitchen = HttpStream(f"{url}/v1/kitchen/orders:watch", headers=AUTH)
    kitchen.wait(lambda results: results[:1], "the snapshot")
    order = checkout(http, product, quantity=2)
    ok(http.post(f"/v1/fake-checkout/{payment_of(http, order['id'])['id']}:pay"))

    def arrived(results: list[dict[str, Any]]) -> Any:
        for message in results:
            for queued, wait in zip(message["orders"], message["waits"], strict=False):
                if queued["id"] == order["id"]:
                    return queued, wait
        return None

    queued, wait = kitchen.wait(arrived, "the paid order")
    listed = ok(http.get("/v1/kitchen/orders", headers=AUTH, params={"pageSize": 500}))
    ok(
        http.post(
            f"/v1/kitchen/orders/{order['id']}:advance",
            headers=AUTH,
            json={"status": "ORDER_STATUS_IN_PREPARATION"},
        )
    )
    kitchen.wait(
        lambda r: any(
            o["id"] == order["id"] and o["status"] == "ORDER_STATUS_IN_PREPARATION"
            for m in r
            for o in m["orders"]
        ),
        "the step",
    )
    kitchen.close()

    assert (
        queued["status"] == "ORDER_STATUS_RECEIVED" and queued["items"][0]["notes"] == "sem cebola"
    )
    assert wait["orderId"] == order["id"]
    assert queued["receiveTime"] == queued["statusTime"], "received is its last step"
    assert float(wait["waiting"].rstrip("s")) >= float(wait["statusWaiting"].rstrip("s")) >= 0
    assert [w["orderId"] for w in listed["waits"]] == [o["id"] for o in listed["orders"]]
    assert "time" in listed and order["id"] in [o["id"] for o in listed["orders"]]


def test_the_screens_are_served_from_the_gateway_with_a_strict_policy(http):
    from gateway.screens import SCREENS

    for path in ("/kiosk", "/monitor", "/kitchen"):
        page = http.get(path)
        assert page.status_code == 200, (path, page.status_code)
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        policy = page.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy, policy
        assert page.headers["x-content-type-options"] == "nosniff"
        assert b'<html lang="pt-BR">' in page.content
    assert http.get("/screens/common.js").headers["content-type"].startswith("text/javascript")
    assert http.get("/screens/screens.css").headers["content-type"].startswith("text/css")
    error(http.get("/screens/nope.js"), 404, 5)
    error(http.post("/kiosk", json={}), 405, 12)
    for file in SCREENS.iterdir():  # no CDN, no other origin: everything ships here
        assert "://" not in file.read_text(), f"{file.name} refers to another origin"


def test_a_payment_server_serves_the_api_too_with_payment_in_process(http, product, stack):
    """The mechanism is the service's, not orders': a payment server with PAYMENT_HTTP_PORT
    calls payment in-process and orders over gRPC."""
    order = checkout(http, product)
    with httpx.Client(base_url=stack.http_url("payment"), timeout=15) as via_payment:
        payment = payment_of(via_payment, order["id"])
        assert payment["orderId"] == order["id"]
        assert ok(via_payment.get(f"/v1/orders/{order['id']}"))["id"] == order["id"]
        error(via_payment.get(f"/v1/payments/{uuid.uuid4()}"), 404, 5)
        error(via_payment.get("/v1/kitchen/orders"), 401, 16)


def test_every_route_was_exercised_with_success(http, request):
    """Runs after the tests above (same module, same gateway): its metrics tell which routes
    answered 200."""
    from gateway.api import Api

    selected = {item.name for item in request.session.items if item.module is request.module}
    if len(selected) < len([name for name in globals() if name.startswith("test_")]):
        pytest.skip("checks what the whole module exercised; only part of it was selected")

    def served() -> set[tuple[str, str]]:
        return {
            (line.split('method="')[1].split('"')[0], line.split('route="')[1].split('"')[0])
            for line in http.get("/metrics").text.splitlines()
            if line.startswith("comanda_gateway_http_requests_total{") and 'code="200"' in line
        }

    expected = {(route.binding.method, route.binding.template.text) for route in Api().routes}
    # A stream is counted once the gateway has seen its client leave: give it a moment.
    with contextlib.suppress(AssertionError):
        wait_for(lambda: expected <= served(), timeout=5, what="streams to be counted")
    assert expected - served() == set(), (
        f"routes never answered 200 here: {sorted(expected - served())}"
    )


# -- a backend down -------------------------------------------------------------------------
@pytest.mark.parametrize("front", FRONTS)
@pytest.mark.parametrize("own_stack", [{"gateway": True, "http": True}], indirect=True)
def test_a_stopped_backend_is_503_quickly_and_the_gateway_not_ready(own_stack, front):
    own_stack.payment[0].stop()
    with httpx.Client(base_url=front_url(own_stack, front), timeout=15) as client:
        started = time.monotonic()
        down = client.get(f"/v1/payments/{uuid.uuid4()}")
        elapsed = time.monotonic() - started
        up = client.get("/v1/products")
        ready = client.get("/readyz")
        health = client.get("/healthz")

    error(down, 503, 14)
    assert elapsed < 2, f"a down backend took {elapsed:.1f}s to report"
    assert up.status_code == 200, "orders still answers"
    assert "payment" in error(ready, 503, 14)["message"]
    assert health.status_code == 200 and health.json()["backends"]["payment"] != "SERVING", (
        health.text
    )
