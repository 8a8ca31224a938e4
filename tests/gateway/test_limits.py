"""Limits of the public side, on a real gateway process: open streams per client address and
per process, clients behind a trusted proxy, and clients too slow with their headers or body."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from gateway.errors import HttpError
from gateway.limits import StreamLimits, client_address, networks
from tests.gateway.fakes import FakeBackend
from tests.gateway.test_gateway_process import start_gateway
from tests.support.stack import ServiceProcess


@pytest.fixture(scope="module")
def backend() -> Iterator[FakeBackend]:
    fake = FakeBackend("limits").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gateway(backend, tmp_path_factory) -> Iterator[ServiceProcess]:
    process = start_gateway(
        tmp_path_factory.mktemp("gw-limits"),
        backend.target,
        backend.target,
        GATEWAY_MAX_STREAMS="3",
        GATEWAY_MAX_STREAMS_PER_CLIENT="2",
        GATEWAY_TRUSTED_PROXIES="127.0.0.2/32",
        GATEWAY_HEADER_TIMEOUT_SECONDS="1",
        GATEWAY_BODY_TIMEOUT_SECONDS="1",
    )
    yield process
    process.stop()


@contextlib.contextmanager
def watching(port: int, order_id: str, source: str = "127.0.0.1", forwarded: str = ""):
    """An open watch stream (its first line read) from `source`, or the refusal."""
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    transport = httpx.HTTPTransport(local_address=source)
    with (
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5, transport=transport) as c,
        c.stream("GET", f"/v1/orders/{order_id}:watch", headers=headers) as response,
    ):
        lines = response.iter_lines()  # kept: a discarded iterator would close the stream
        if response.status_code == 200:
            next(lines)
        else:
            response.read()
        yield response


def test_streams_per_client_address_are_capped(gateway):
    with watching(gateway.port, "a-1") as first, watching(gateway.port, "a-2") as second:
        assert first.status_code == second.status_code == 200
        with watching(gateway.port, "a-3") as third:
            assert third.status_code == 429, third.text
            assert third.json()["code"] == 8, "RESOURCE_EXHAUSTED"
            assert "2 open streams" in third.json()["message"]
            assert third.headers["retry-after"] == "5"
    with watching(gateway.port, "a-4") as again:  # the two above were closed
        assert again.status_code == 200


def test_streams_per_process_are_capped_and_clients_behind_a_trusted_proxy_count_apart(gateway):
    proxy = "127.0.0.2"  # trusted: its X-Forwarded-For names the client
    with (
        watching(gateway.port, "p-1", proxy, "203.0.113.7") as one,
        watching(gateway.port, "p-2", proxy, "203.0.113.7") as two,
        watching(gateway.port, "p-3", proxy, "spoofed, 203.0.113.8") as three,
    ):
        assert [one.status_code, two.status_code, three.status_code] == [200, 200, 200], (
            "two clients behind one proxy are not one client"
        )
        with watching(gateway.port, "p-4", proxy, "203.0.113.9") as over:
            assert over.status_code == 429, over.text
            assert "maximum of 3 open streams" in over.json()["message"]


def test_forwarded_for_from_an_untrusted_peer_is_ignored(gateway):
    with (
        watching(gateway.port, "u-1", forwarded="198.51.100.1") as one,
        watching(gateway.port, "u-2", forwarded="198.51.100.2") as two,
        watching(gateway.port, "u-3", forwarded="198.51.100.3") as three,
    ):
        assert [one.status_code, two.status_code] == [200, 200]
        assert three.status_code == 429, "127.0.0.1 is not trusted: all three are its streams"


def closed_within(sock: socket.socket, seconds: float, dribble: bytes = b"") -> float:
    """Seconds until the server closed `sock` (sending `dribble` every 0.2 s meanwhile)."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < seconds:
        try:
            if dribble:
                sock.sendall(dribble)
            data = sock.recv(4096)
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - started
        if data == b"":
            return time.monotonic() - started
    raise AssertionError(f"the connection was still open after {seconds}s")


def test_a_client_sending_headers_slowly_is_cut_off(gateway):
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        sock.sendall(b"GET /v1/products HTTP/1.1\r\nHost: x\r\n")
        elapsed = closed_within(sock, 5, dribble=b"X-Slow: 1\r\n")
    assert 0.8 < elapsed < 3, f"closed after {elapsed:.1f}s with a 1s header deadline"


def test_an_idle_connection_is_cut_off(gateway):
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        elapsed = closed_within(sock, 5)
    assert elapsed < 3, elapsed


def test_a_client_sending_its_body_slowly_gets_408(gateway):
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        sock.sendall(
            b"POST /v1/webhooks/fake HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"id":'
        )
        sock.settimeout(5)
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(4096):  # until the gateway closes the connection
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"did not arrive within 1s" in answer and b"connection: close" in answer.lower()
    assert time.monotonic() - started < 3


def test_a_prompt_client_on_a_kept_alive_connection_is_not_cut_off(gateway):
    with httpx.Client(base_url=f"http://127.0.0.1:{gateway.port}", timeout=5) as client:
        for _ in range(3):
            assert client.get("/v1/orders/k-1").status_code == 200
            time.sleep(0.6)  # less than the header deadline between requests


# -- the pieces, without a process --------------------------------------------------------


def test_client_address_behind_trusted_proxies():
    trusted = networks("10.0.0.0/8, 192.0.2.1")
    xff = {b"x-forwarded-for": b"203.0.113.5, 10.1.2.3"}
    assert client_address("192.0.2.1", xff, trusted) == "203.0.113.5"
    assert client_address("198.51.100.9", xff, trusted) == "198.51.100.9", "untrusted peer"
    assert client_address("10.0.0.1", {}, trusted) == "10.0.0.1", "no header: the peer"
    assert client_address("10.0.0.1", xff, ()) == "10.0.0.1", "no trusted proxies"
    assert client_address("10.0.0.1", {b"x-forwarded-for": b"junk"}, trusted) == "10.0.0.1"
    with pytest.raises(ValueError, match="CIDR"):
        networks("10.0.0.0/99")


def test_stream_limits_count_and_release():
    limits = StreamLimits(per_client=1, per_process=2)
    with limits.hold("a"), limits.hold("b"):
        with pytest.raises(HttpError) as caught:
            limits.hold("c").__enter__()
        assert caught.value.http_status == 429
    assert limits.total == 0 and not limits.open
    with pytest.raises(HttpError), limits.hold("a"), limits.hold("a"):
        pass
    assert limits.total == 0 and not limits.open, (
        "a refused stream releases nothing it did not take"
    )
