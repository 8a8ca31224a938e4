"""`python -m gateway` as a process, in front of fake gRPC backends: metadata forwarding,
raw bodies, deadlines, streams and their cancellation, replicas, a backend that is down,
limits, start-up failures and graceful shutdown."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.servers import free_port
from tests.gateway.fakes import FakeBackend, Seen
from tests.support.stack import REPO, ServiceProcess
from tests.support.waiting import wait_for


def start_gateway(
    log_dir: Path, orders: str, payment: str, wait: bool = True, **extra: str
) -> ServiceProcess:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        {
            "GATEWAY_HTTP_HOST": "127.0.0.1",
            "GATEWAY_HTTP_PORT": str(port),
            "GATEWAY_ORDERS_TARGET": orders,
            "GATEWAY_PAYMENT_TARGET": payment,
            "GATEWAY_TIMEOUT_SECONDS": "1",
            "GATEWAY_MAX_BODY_BYTES": "1000",
            "SHUTDOWN_GRACE_SECONDS": "5",
            "LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    process = ServiceProcess("gateway", env, log_dir / f"gateway-{port}.log", port, http=True)
    process.start(wait=wait)
    return process


@pytest.fixture(scope="module")
def backends() -> Iterator[tuple[FakeBackend, FakeBackend]]:
    first, second = FakeBackend("replica-a").start(), FakeBackend("replica-b").start()
    yield first, second
    first.stop()
    second.stop()


@pytest.fixture(scope="module")
def gateway(backends, tmp_path_factory) -> Iterator[ServiceProcess]:
    first, second = backends
    process = start_gateway(
        tmp_path_factory.mktemp("gw"), f"{first.target},{second.target}", first.target
    )
    yield process
    process.stop()


@pytest.fixture
def client(gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{gateway.port}", timeout=10) as http:
        yield http


def _reached(backends, method: str, order_id: str) -> list[Seen]:
    return [
        c
        for b in backends
        for c in b.record.calls
        if c.method == method and c.request.order_id == order_id
    ]


def _call(backends, method: str, order_id: str) -> Seen:
    calls = _reached(backends, method, order_id)
    assert calls, f"{method}({order_id}) never reached a backend"
    return calls[-1]


def test_headers_reach_the_service_as_metadata(client, backends):
    response = client.get(
        "/v1/orders/meta-1",
        headers={
            "Authorization": "Bearer t0ken",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "X-Request-Id": "req-123",
            "Cookie": "not=forwarded",
        },
    )

    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "req-123"
    metadata = _call(backends, "GetOrder", "meta-1").metadata
    assert metadata["authorization"] == "Bearer t0ken"
    assert metadata["traceparent"] == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert metadata["x-request-id"] == "req-123"
    assert "cookie" not in metadata, metadata


def test_a_header_that_cannot_be_metadata_is_400_naming_it(client):
    response = client.get("/v1/orders/meta-3", headers={"traceparent": "café".encode()})

    assert response.status_code == 400, response.text
    assert response.json()["details"][0]["fieldViolations"][0]["field"] == "traceparent"


def test_a_request_id_is_made_when_absent_and_echoed(client, backends):
    response = client.get("/v1/orders/meta-2")

    generated = response.headers["x-request-id"]
    assert len(generated) == 36, generated
    assert _call(backends, "GetOrder", "meta-2").metadata["x-request-id"] == generated


def test_the_webhook_body_arrives_byte_for_byte_with_its_signature(client, backends):
    body = b'{"id": "n1",\r\n "data": {"x": "\xc3\xa9"}}  \x00\xff'

    response = client.post(
        "/v1/webhooks/fake",
        content=body,
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "X-Signature": "ts=1,v1=abc",
            "X-Request-Id": "provider-req-9",
        },
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"duplicate": True, "status": "PAYMENT_STATUS_APPROVED"}
    seen = backends[0].record.last("ReceiveProviderNotification")
    assert seen.request.provider == "fake"
    assert seen.request.body.data == body
    assert seen.request.body.content_type == "application/json; charset=utf-8"
    assert seen.metadata["x-signature"] == "ts=1,v1=abc"
    assert seen.metadata["x-request-id"] == "provider-req-9"


def test_calls_are_balanced_over_the_replicas(client):
    served_by = {client.get(f"/v1/orders/rr-{i}").json()["requestId"] for i in range(20)}

    assert served_by == {"replica-a", "replica-b"}


def test_the_default_deadline_ends_a_slow_call_with_504(client):
    started = time.monotonic()
    response = client.get("/v1/orders/slow-3")
    elapsed = time.monotonic() - started

    assert response.status_code == 504, response.text
    assert response.json()["code"] == 4
    assert elapsed < 2.5, f"took {elapsed:.1f}s with a 1s deadline"


def test_grpc_timeout_header_sets_the_deadline(client):
    short = client.get("/v1/orders/slow-0.5", headers={"Grpc-Timeout": "100m"})
    long = client.get("/v1/orders/slow-1.5", headers={"Grpc-Timeout": "5S"})
    bad = client.get("/v1/orders/x", headers={"Grpc-Timeout": "soon"})

    assert short.status_code == 504, short.text
    assert long.status_code == 200, long.text
    assert bad.status_code == 400 and "Grpc-Timeout" in bad.json()["message"], bad.text


def test_ndjson_stream_relays_messages_and_cancels_the_call_when_the_client_leaves(
    client, backends
):
    with client.stream("GET", "/v1/orders/w-1:watch") as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = response.iter_lines()
        first, second = json.loads(next(lines)), json.loads(next(lines))
    assert first["result"]["status"] == "ORDER_STATUS_RECEIVED", first
    assert second["result"]["status"] == "ORDER_STATUS_IN_PREPARATION", second

    wait_for(
        lambda: any("w-1" in b.record.cancelled for b in backends),
        timeout=5,
        what="the backend to see the watch cancelled",
    )


def test_sse_stream(client, backends):
    with client.stream(
        "GET", "/v1/orders/w-2:watch", headers={"Accept": "text/event-stream"}
    ) as response:
        assert response.headers["content-type"] == "text/event-stream"
        lines = response.iter_lines()
        event = next(lines)
        assert next(lines) == "", "an empty line ends each event"
    assert event.startswith("data: "), event
    assert json.loads(event.removeprefix("data: "))["id"] == "w-2"
    wait_for(
        lambda: any("w-2" in b.record.cancelled for b in backends),
        timeout=5,
        what="the backend to see the SSE watch cancelled",
    )


def test_no_departed_stream_client_leaves_a_backend_call_behind(client, backends):
    # Each client leaves right after its first event, while the stream is idle or while the
    # backend is still sending the next message: either way its call must be cancelled.
    ids = [f"leave-{i}" for i in range(50)]
    for order_id in ids:
        with client.stream(
            "GET", f"/v1/orders/{order_id}:watch", headers={"Accept": "text/event-stream"}
        ) as response:
            assert next(response.iter_lines()).startswith("data: ")

    def left_behind() -> list[str]:
        return [i for i in ids if not any(i in b.record.cancelled for b in backends)]

    with contextlib.suppress(AssertionError):
        wait_for(lambda: not left_behind(), timeout=10, what="every watch to be cancelled")
    assert not left_behind(), f"backend streams outlived their clients: {left_behind()}"


def test_a_stream_that_fails_at_once_is_an_ordinary_error(client):
    response = client.get("/v1/orders/missing:watch")

    assert response.status_code == 404, response.text
    assert response.json() == {"code": 5, "message": "order 'missing' not found", "details": []}


def test_a_stream_that_fails_later_ends_with_an_error_line(client):
    with client.stream("GET", "/v1/orders/fail-later:watch") as response:
        lines = [json.loads(line) for line in response.iter_lines() if line]

    assert lines[0]["result"]["id"] == "fail-later"
    assert lines[-1] == {
        "error": {"code": 10, "message": "the order changed under the stream", "details": []}
    }


def test_sse_error_event(client):
    with client.stream(
        "GET", "/v1/orders/fail-later:watch", headers={"Accept": "text/event-stream"}
    ) as r:
        text = r.read().decode()

    assert "event: error\ndata: " in text, text
    assert '"code":10' in text


def test_bodies_over_the_limit_are_413_with_or_without_content_length(client):
    sized = client.post("/v1/webhooks/fake", content=b"x" * 1001)
    chunked = client.post("/v1/webhooks/fake", content=iter([b"x" * 600, b"x" * 600]))
    fits = client.post("/v1/webhooks/fake", content=b"x" * 1000)

    assert sized.status_code == 413, sized.text
    assert chunked.status_code == 413, chunked.text
    assert sized.json()["message"] == "the request body is larger than 1000 bytes"
    assert fits.status_code == 200, fits.text


def test_metrics_count_requests_by_route_template_and_status(client):
    client.get("/v1/orders/m-1")
    client.get("/v1/orders/missing")

    text = client.get("/metrics").text

    assert (
        'comanda_gateway_http_requests_total{code="200",method="GET",route="/v1/orders/{order_id}"}'
        in text
    )
    assert (
        'comanda_gateway_http_requests_total{code="404",method="GET",route="/v1/orders/{order_id}"}'
        in text
    )
    assert 'comanda_gateway_http_request_seconds_bucket{code="200",le="0.001",method="GET"' in text


def test_the_api_document_and_page_are_served(client):
    document = client.get("/openapi.json")
    page = client.get("/docs")
    script = client.get("/docs/docs.js")

    assert document.status_code == 200 and document.json()["openapi"] == "3.1.0"
    assert page.headers["content-type"].startswith("text/html") and "/docs/docs.js" in page.text
    assert script.status_code == 200 and "openapi.json" in script.text
    assert "http" not in page.text.replace("http-equiv", "").split("<body>")[0].replace(
        "https", ""
    ), "the page loads nothing from elsewhere"


def test_the_gateways_own_pages_answer_get_only(client):
    response = client.post("/healthz")

    assert response.status_code == 405 and response.headers["allow"] == "GET", response.text


def test_health_and_readiness(client):
    health = client.get("/healthz")
    ready = client.get("/readyz")

    assert health.json() == {
        "status": "SERVING",
        "backends": {"orders": "SERVING", "payment": "SERVING"},
    }
    assert ready.status_code == 200, ready.text


# -- a backend that is down ----------------------------------------------------------------
def test_a_backend_that_is_down_is_503_quickly_and_not_ready(backends, tmp_path):
    dead = f"127.0.0.1:{free_port()}"
    process = start_gateway(tmp_path, backends[0].target, dead, wait=False)
    try:
        base = f"http://127.0.0.1:{process.port}"
        wait_for(
            lambda: _status(base + "/healthz") == 200, timeout=20, what="the gateway to listen"
        )
        with httpx.Client(base_url=base, timeout=10) as http:
            started = time.monotonic()
            down = http.post("/v1/webhooks/fake", content=b"{}")
            elapsed = time.monotonic() - started
            up = http.get("/v1/orders/still-up")
            ready = http.get("/readyz")
            health = http.get("/healthz")
    finally:
        assert process.stop() == 0
    assert down.status_code == 503, down.text
    assert down.json()["code"] == 14
    assert elapsed < 1.5, f"took {elapsed:.1f}s"
    assert up.status_code == 200, "the other backend still answers"
    assert ready.status_code == 503 and "payment is" in ready.json()["message"], ready.text
    assert health.status_code == 200 and health.json()["backends"]["orders"] == "SERVING"
    assert health.json()["backends"]["payment"] != "SERVING"


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=1).status_code
    except httpx.HTTPError:
        return 0


# -- start-up failures and shutdown ---------------------------------------------------------
def _run_gateway(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=REPO,
        env=full,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_busy_port_exits_1_with_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run_gateway(GATEWAY_HTTP_HOST="127.0.0.1", GATEWAY_HTTP_PORT=str(port))

    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got: {result.stderr}"
    assert f"cannot listen on 127.0.0.1:{port}" in lines[0] and "Traceback" not in result.stderr


def test_bad_configuration_exits_2_naming_every_bad_variable():
    result = _run_gateway(
        GATEWAY_HTTP_PORT="eighty", GATEWAY_ORDERS_TARGET="nohostport", LOG_LEVEL="LOUD"
    )

    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for variable in ("GATEWAY_HTTP_PORT", "GATEWAY_ORDERS_TARGET", "LOG_LEVEL"):
        assert variable in lines[0], lines[0]


def test_config_lists_every_setting_with_its_default():
    result = _run_gateway("config")

    assert result.returncode == 0, result.stderr
    settings = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()}
    assert settings["GATEWAY_HTTP_PORT"] == "8080", result.stdout
    assert settings["GATEWAY_ORDERS_TARGET"] == "localhost:50051", result.stdout


def test_openapi_prints_the_document_the_gateway_serves(client):
    result = _run_gateway("openapi")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == client.get("/openapi.json").json()


def test_sigterm_lets_in_flight_requests_finish_ends_streams_and_exits_0(backends, tmp_path):
    process = start_gateway(tmp_path, backends[0].target, backends[0].target)
    base = f"http://127.0.0.1:{process.port}"
    results: dict[str, object] = {}

    def slow() -> None:
        results["slow"] = httpx.get(
            base + "/v1/orders/slow-1.5-drain", headers={"Grpc-Timeout": "10S"}, timeout=10
        )

    with (
        httpx.Client(base_url=base, timeout=10) as http,
        http.stream("GET", "/v1/orders/drain:watch") as stream,
    ):
        lines = stream.iter_lines()
        assert json.loads(next(lines))["result"]["id"] == "drain"
        thread = threading.Thread(target=slow)
        thread.start()
        wait_for(
            lambda: _reached(backends, "GetOrder", "slow-1.5-drain"),
            timeout=5,
            what="the slow call to reach the backend",
        )
        assert process.proc is not None
        process.proc.send_signal(signal.SIGTERM)
        rest = [json.loads(line) for line in lines if line]
        thread.join(10)
        code = process.proc.wait(15)

    assert code == 0, process.log()[-2000:]
    slow_response = results["slow"]
    assert isinstance(slow_response, httpx.Response) and slow_response.status_code == 200, (
        slow_response
    )
    assert rest[-1]["error"]["code"] == 14 and "shutting down" in rest[-1]["error"]["message"], rest
    assert _status(base + "/healthz") == 0, "no longer accepting connections"
