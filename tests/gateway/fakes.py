"""A fake gRPC backend for the gateway's process tests: real grpc.aio server on a socket (in
a thread of the test process), with health, a few methods that record what reached them, and
order ids that make them slow, fail or stream."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from comanda.orders.v1 import orders_pb2, orders_pb2_grpc
from comanda.payment.v1 import payment_pb2, payment_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


@dataclass
class Seen:
    """What one call brought to the backend."""

    method: str
    request: Any
    metadata: dict[str, str]


@dataclass
class Record:
    calls: list[Seen] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    def last(self, method: str) -> Seen:
        return [c for c in self.calls if c.method == method][-1]


def _seen(record: Record, method: str, request: Any, context: Context) -> None:
    metadata = {str(key): str(value) for key, value in context.invocation_metadata() or ()}
    record.calls.append(Seen(method, request, metadata))


class FakeOrders(orders_pb2_grpc.OrderServiceServicer):
    """GetOrder: `slow-<seconds>[-<tag>]` sleeps, `missing` is NOT_FOUND; WatchOrder streams until
    cancelled (`missing` fails at once, `fail-later` after the first message)."""

    def __init__(self, record: Record, name: str) -> None:
        self.record = record
        self.name = name

    async def GetOrder(
        self, request: orders_pb2.GetOrderRequest, context: Context
    ) -> orders_pb2.Order:
        _seen(self.record, "GetOrder", request, context)
        if request.order_id.startswith("slow-"):
            await asyncio.sleep(float(request.order_id.split("-")[1]))
        if request.order_id == "missing":
            await context.abort(grpc.StatusCode.NOT_FOUND, "order 'missing' not found")
        return orders_pb2.Order(id=request.order_id, request_id=self.name, number=1)

    async def WatchOrder(
        self, request: orders_pb2.WatchOrderRequest, context: Context
    ) -> AsyncIterator[orders_pb2.Order]:
        _seen(self.record, "WatchOrder", request, context)
        if request.order_id == "missing":
            await context.abort(grpc.StatusCode.NOT_FOUND, "order 'missing' not found")
        try:
            yield orders_pb2.Order(id=request.order_id, status=orders_pb2.ORDER_STATUS_RECEIVED)
            if request.order_id == "fail-later":
                await context.abort(grpc.StatusCode.ABORTED, "the order changed under the stream")
            yield orders_pb2.Order(
                id=request.order_id, status=orders_pb2.ORDER_STATUS_IN_PREPARATION
            )
            await asyncio.sleep(3600)
        except (asyncio.CancelledError, GeneratorExit):
            # A cancel that lands while the generator is suspended in `await` raises
            # CancelledError in it; one that lands while the server is sending a yielded
            # message ends the server's task outside the generator, which is then closed
            # (GeneratorExit). Both are the call being cancelled.
            self.record.cancelled.append(request.order_id)
            raise


class FakePayments(payment_pb2_grpc.PaymentServiceServicer):
    def __init__(self, record: Record) -> None:
        self.record = record

    async def ReceiveProviderNotification(
        self, request: payment_pb2.ReceiveProviderNotificationRequest, context: Context
    ) -> payment_pb2.ReceiveProviderNotificationResponse:
        _seen(self.record, "ReceiveProviderNotification", request, context)
        return payment_pb2.ReceiveProviderNotificationResponse(
            duplicate=True, status=payment_pb2.PAYMENT_STATUS_APPROVED
        )


class FakeBackend:
    """Serves the fakes on 127.0.0.1:<port> from a thread with its own event loop."""

    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self.record = Record()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: grpc.aio.Server | None = None

    def start(self) -> FakeBackend:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        server = grpc.aio.server()
        orders = FakeOrders(self.record, self.name)  # type: ignore[abstract]
        payments = FakePayments(self.record)  # type: ignore[abstract]
        orders_pb2_grpc.add_OrderServiceServicer_to_server(orders, server)
        payment_pb2_grpc.add_PaymentServiceServicer_to_server(payments, server)
        servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        self.port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._server = server

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(0), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
