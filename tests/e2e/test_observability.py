"""Metrics move with the saga, and one request id follows an order through every process's
logs (gateway, each service's server and worker), which never contain a CPF or an e-mail
address."""

from __future__ import annotations

import json
import re
import urllib.request
import uuid

import httpx

from tests.support.saga import ORDER, PAYMENT, new_product, wait_order, wait_payment
from tests.support.stack import Stack
from tests.support.waiting import wait_for


def scrape(*ports: int, path: str = "/metrics") -> dict[str, float]:
    """The samples of these processes' metrics endpoints, added up."""
    samples: dict[str, float] = {}
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            text = response.read().decode()
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = samples.get(name, 0.0) + float(value)
    return samples


class Both:
    """A service's server and worker, read as one (logs)."""

    def __init__(self, stack: Stack, service: str) -> None:
        self.procs = [getattr(stack, service)[0], getattr(stack, f"{service}_workers")[0]]

    def log(self) -> str:
        return "\n".join(proc.log() for proc in self.procs)


def total(samples: dict[str, float], name: str, **labels: str) -> float:
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(
        v for k, v in samples.items() if k.split("{")[0] == name and all(w in k for w in wanted)
    )


def test_metrics_after_a_saga(stack: Stack):
    product = new_product(stack)
    with httpx.Client(base_url=stack.gateway_url) as http:
        order = http.post(
            "/v1/orders",
            json={"items": [{"productId": product, "quantity": 1}]},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        ).json()
        payment = wait_payment(stack, order["id"], PAYMENT.Value("PAYMENT_STATUS_PENDING"))
        assert http.post(f"/v1/fake-checkout/{payment.id}:pay", json={}).status_code == 200
    wait_order(stack, order["id"], ORDER.Value("ORDER_STATUS_RECEIVED"))
    orders_ports = stack.orders[0].metrics_port, stack.orders_workers[0].metrics_port
    payment_ports = stack.payment[0].metrics_port, stack.payment_workers[0].metrics_port

    def orders_metrics_moved() -> dict[str, float] | None:
        samples = scrape(*orders_ports)
        return samples if total(samples, "comanda_checkout_to_paid_seconds_count") >= 1 else None

    samples = wait_for(orders_metrics_moved, 10, "orders to observe checkout-to-paid")
    assert total(samples, "comanda_grpc_requests_total", method="CreateOrder", code="OK") >= 1
    assert total(samples, "comanda_grpc_request_seconds_count", method="CreateOrder") >= 1
    assert (
        total(
            samples, "comanda_events_published_total", event_type="comanda.events.v1.OrderCreated"
        )
        >= 1
    )
    assert (
        total(
            samples,
            "comanda_events_consumed_total",
            event_type="comanda.events.v1.PaymentApproved",
            result="applied",
        )
        >= 1
    )
    assert "comanda_outbox_backlog" in " ".join(samples)
    assert "comanda_outbox_oldest_age_seconds" in " ".join(samples)

    payment_samples = scrape(*payment_ports)
    assert total(payment_samples, "comanda_payments_total", status="APPROVED") >= 1
    assert (
        total(
            payment_samples,
            "comanda_events_consumed_total",
            event_type="comanda.events.v1.OrderCreated",
            result="applied",
        )
        >= 1
    )
    assert stack.gateway is not None
    gateway_samples = scrape(stack.gateway.port)
    assert (
        total(gateway_samples, "comanda_gateway_http_requests_total", method="POST", code="200")
        >= 2
    )
    assert total(gateway_samples, "comanda_gateway_http_request_seconds_count", method="POST") >= 2


def json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def test_one_request_id_through_every_process(stack: Stack):
    product = new_product(stack)
    request_id = f"trace-{uuid.uuid4().hex}"
    cpf, email = "111.444.777-35", f"ana.{uuid.uuid4().hex[:6]}@example.com"
    with httpx.Client(base_url=stack.gateway_url, headers={"X-Request-Id": request_id}) as http:
        registered = http.post("/v1/customers", json={"cpf": cpf, "name": "Ana", "email": email})
        assert registered.status_code in (200, 409), registered.text
        response = http.post(
            "/v1/orders",
            json={"customerCpf": cpf, "items": [{"productId": product, "quantity": 1}]},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        assert response.headers["x-request-id"] == request_id
        order_id = response.json()["id"]
    wait_payment(stack, order_id)  # payment consumed OrderCreated, orders consumed PaymentCreated

    def traced() -> dict[str, list[dict]] | None:
        found = {}
        for name, proc in (
            ("gateway", stack.gateway),
            ("orders", Both(stack, "orders")),
            ("payment", Both(stack, "payment")),
        ):
            assert proc is not None
            found[name] = [e for e in json_lines(proc.log()) if e.get("request_id") == request_id]
        return (
            found
            if all(found.values())
            and any("PaymentCreated" in e["message"] for e in found["orders"])
            else None
        )

    try:
        found = wait_for(traced, 15, f"request id {request_id} in the logs of all three processes")
    except AssertionError:
        seen = {
            n: len([e for e in json_lines(p.log()) if e.get("request_id") == request_id])
            for n, p in (
                ("gateway", stack.gateway),
                ("orders", Both(stack, "orders")),
                ("payment", Both(stack, "payment")),
            )
            if p is not None
        }
        raise AssertionError(
            f"log lines with the request id per process: {seen}\n{stack.logs()}"
        ) from None
    assert any(e.get("order_id") == order_id for e in found["orders"]), (
        "orders logs carry the order id"
    )
    assert any(
        e.get("order_id") == order_id and "OrderCreated" in e["message"] for e in found["payment"]
    ), "payment's consumer logs the event it applied, with the order id"
    digits = re.sub(r"\D", "", cpf)
    for name, proc in (
        ("gateway", stack.gateway),
        ("orders", Both(stack, "orders")),
        ("payment", Both(stack, "payment")),
    ):
        assert proc is not None
        text = proc.log()
        assert digits not in text and cpf not in text, f"a CPF leaked into the {name} log"
        assert email not in text, f"an e-mail address leaked into the {name} log"
