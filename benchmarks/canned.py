"""A stand-in orders server for the benchmark's floor: grpc.aio on uvloop, as the services
run, answering every GetOrder with one stored order, and nothing else (no database, no
interceptors, no service code). What a GetOrder costs against it, directly and through the
real gateway, is the least any GetOrder can cost on this stack (docs/performance.md).

    python -m benchmarks.canned PORT ORDER_FILE

ORDER_FILE holds a serialized `comanda.orders.v1.Order`. SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from comanda.orders.v1 import orders_pb2

SERVICE = orders_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name


async def serve(port: int, order: orders_pb2.Order) -> None:
    async def get_order(request: orders_pb2.GetOrderRequest, context: Any) -> orders_pb2.Order:
        return order

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "GetOrder": grpc.unary_unary_rpc_method_handler(
                        get_order,
                        request_deserializer=orders_pb2.GetOrderRequest.FromString,
                        response_serializer=orders_pb2.Order.SerializeToString,
                    )
                },
            )
        ]
    )
    checks = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    if not server.add_insecure_port(f"127.0.0.1:{port}"):
        raise SystemExit(f"canned: cannot listen on port {port}")
    await server.start()
    await checks.set("", health_pb2.HealthCheckResponse.SERVING)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[0].isdigit():
        print("usage: python -m benchmarks.canned PORT ORDER_FILE", file=sys.stderr)
        return 2
    order = orders_pb2.Order.FromString(Path(argv[1]).read_bytes())
    uvloop.run(serve(int(argv[0]), order))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
