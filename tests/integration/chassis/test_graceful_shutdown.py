"""The gRPC bootstrap stops gracefully: health goes NOT_SERVING, the call in flight finishes."""

import asyncio
import signal
import time
from functools import partial
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chassis.grpc_server import GrpcServer
from comanda.orders.v1 import orders_pb2
from devstack.servers import free_port
from tests.support.http_stream import HttpStream
from tests.support.stack import ServiceProcess
from tests.support.waiting import wait_for


def slow_service(started: asyncio.Event) -> grpc.GenericRpcHandler:
    async def slow(request: bytes, context: Any) -> bytes:
        started.set()
        await asyncio.sleep(1.0)
        return b"done"

    handler: Any = grpc.unary_unary_rpc_method_handler(slow)
    return grpc.method_handlers_generic_handler("test.Slow", {"Call": handler})


async def test_stop_lets_the_call_in_flight_finish_within_the_grace():
    started = asyncio.Event()
    port = free_port()
    server = GrpcServer(
        "test",
        "127.0.0.1",
        port,
        [(lambda handler, srv: srv.add_generic_rpc_handlers((handler,)), slow_service(started))],
        ["test.Slow"],
    )
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        method: Any = channel.unary_unary("/test.Slow/Call")
        call = method(b"", timeout=10)
        await asyncio.wait_for(started.wait(), 5)
        t0 = time.monotonic()
        stopping = asyncio.create_task(server.stop(grace=5))
        await asyncio.sleep(0)  # let stop() flip health first
        assert await call == b"done"
        await stopping
        elapsed = time.monotonic() - t0
    assert elapsed < 5, f"stop took {elapsed:.1f}s, longer than the grace"
    health = await server.health.Check(health_pb2.HealthCheckRequest(), None)
    assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.mark.parametrize("own_stack", [{"gateway": False}], indirect=True)
def test_a_service_process_exits_cleanly_on_sigterm(own_stack):
    orders = own_stack.orders[0]
    channel = grpc.insecure_channel(f"127.0.0.1:{orders.port}")
    stream = own_stack.order_service.WatchOrder(
        orders_pb2.WatchOrderRequest(order_id="00000000-0000-4000-8000-000000000000")
    )
    with pytest.raises(grpc.RpcError) as err:
        next(stream)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    health = health_pb2_grpc.HealthStub(channel)
    assert (
        health.Check(health_pb2.HealthCheckRequest()).status
        == health_pb2.HealthCheckResponse.SERVING
    )
    _stops_cleanly_on_sigterm(orders)
    channel.close()


def _stops_cleanly_on_sigterm(process: ServiceProcess) -> None:
    """SIGTERM: the process exits 0 within its grace and says it stopped."""
    assert process.proc is not None
    started = time.monotonic()
    process.proc.send_signal(signal.SIGTERM)
    code = process.proc.wait(15)
    assert code == 0, f"exit code {code}\n{process.log()[-2000:]}"
    assert time.monotonic() - started < 10
    wait_for(partial(_said_stopped, process), 5, f"the '{process.role} stopped' log line")


@pytest.mark.parametrize(
    "own_stack",
    [{"gateway": False, "env": {"PAYMENT_FAKE_CHECKOUT": "false"}}],
    indirect=True,
)
def test_every_server_and_worker_exits_0_on_sigterm_without_the_fake_checkout(own_stack):
    """As in production: without the fake checkout a payment server has no background task at
    all (it once exited 1 there, waiting on an empty set of tasks)."""
    processes = own_stack.services
    assert {p.role for p in processes} == {"orders", "orders worker", "payment", "payment worker"}
    for process in processes:
        assert process.proc is not None
        process.proc.send_signal(signal.SIGTERM)
    for process in processes:
        assert process.proc is not None
        code = process.proc.wait(15)
        assert code == 0, f"{process.role} exited {code}\n{process.log()[-2000:]}"
        wait_for(partial(_said_stopped, process), 5, f"the '{process.role} stopped' log line")


def _said_stopped(process: ServiceProcess) -> bool:
    return f"{process.role} stopped" in process.log()


@pytest.mark.parametrize("own_stack", [{"http": True}], indirect=True)
def test_a_server_serving_http_ends_its_streams_and_exits_0_on_sigterm(own_stack):
    """The gateway inside an orders server (ORDERS_HTTP_PORT) drains with the process: an open
    stream gets UNAVAILABLE (reconnect elsewhere), and the process exits 0 within its grace."""
    orders = own_stack.orders[0]
    board = HttpStream(f"{own_stack.http_url('orders')}/v1/order-board:watch")
    board.wait(lambda results: results[:1], "the snapshot")
    _stops_cleanly_on_sigterm(orders)
    assert board.ended.wait(5), "the stream was not ended"
    assert board.messages[-1].get("error", {}).get("code") == grpc.StatusCode.UNAVAILABLE.value[0]
