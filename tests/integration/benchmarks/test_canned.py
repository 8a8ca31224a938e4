"""The benchmark's canned orders server (`benchmarks.canned`, the floor scenario): a real
process on a socket that answers every GetOrder with the order it was given, reports SERVING
to health checks (so a gateway in front of it is ready), and refuses a wrong command line."""

from __future__ import annotations

from pathlib import Path

import grpc

from comanda.orders.v1 import orders_pb2, orders_pb2_grpc
from devstack.servers import free_port
from tests.integration.chassis.test_startup import assert_one_line, run
from tests.support.stack import ServiceProcess


def test_it_answers_every_get_order_with_the_stored_order(tmp_path: Path) -> None:
    order = orders_pb2.Order(id="6b1d4a10-0000-4000-8000-0000000000aa", total_centavos=2590)
    order.items.add(product_id="p", name="X-Burger", quantity=2, unit_price_centavos=1295)
    stored = tmp_path / "order.bin"
    stored.write_bytes(order.SerializeToString())
    port = free_port()
    server = ServiceProcess(
        "benchmarks.canned", {}, tmp_path / "canned.log", port, args=(str(port), str(stored))
    )
    server.start()  # returns once its health check says SERVING
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = orders_pb2_grpc.OrderServiceStub(channel)
            for order_id in ("any", order.id):
                answer = stub.GetOrder(orders_pb2.GetOrderRequest(order_id=order_id), timeout=5)
                assert answer == order
    finally:
        assert server.stop() == 0


def test_a_wrong_command_line_exits_with_usage() -> None:
    result = run("benchmarks.canned", {}, timeout=30, args=("not-a-port",))
    assert_one_line(result, 2, "usage: python -m benchmarks.canned PORT ORDER_FILE")
