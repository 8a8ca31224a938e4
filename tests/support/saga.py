"""Helpers for saga tests: check out, pay, wait for both services to agree."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import nats

from comanda.orders.v1 import catalog_pb2, orders_pb2, orders_pb2_grpc
from comanda.payment.v1 import payment_pb2
from payment.adapters.provider import sign
from tests.support.stack import STAFF, WEBHOOK_SECRET, Stack
from tests.support.waiting import wait_for

T = TypeVar("T")
ORDER = orders_pb2.OrderStatus
PAYMENT = payment_pb2.PaymentStatus
PENDING_PAYMENT = ORDER.Value("ORDER_STATUS_PENDING_PAYMENT")
RECEIVED = ORDER.Value("ORDER_STATUS_RECEIVED")
CANCELLED = ORDER.Value("ORDER_STATUS_CANCELLED")
P_PENDING = PAYMENT.Value("PAYMENT_STATUS_PENDING")
P_APPROVED = PAYMENT.Value("PAYMENT_STATUS_APPROVED")
P_DECLINED = PAYMENT.Value("PAYMENT_STATUS_DECLINED")
P_EXPIRED = PAYMENT.Value("PAYMENT_STATUS_EXPIRED")
P_CANCELLED = PAYMENT.Value("PAYMENT_STATUS_CANCELLED")
P_REFUNDED = PAYMENT.Value("PAYMENT_STATUS_REFUNDED")


def new_product(stack: Stack, price: int = 2590) -> str:
    product = stack.catalog.CreateProduct(
        catalog_pb2.CreateProductRequest(
            product=catalog_pb2.Product(
                name=f"Burger {uuid.uuid4().hex[:6]}",
                category=catalog_pb2.CATEGORY_BURGER,
                price_centavos=price,
                preparation_seconds=300,
            )
        ),
        metadata=STAFF,
    )
    return str(product.id)


def checkout(
    stack: Stack, product_id: str, quantity: int = 1, orders_index: int = 0
) -> orders_pb2.Order:
    stub = orders_pb2_grpc.OrderServiceStub(stack.channel("orders", orders_index))
    return stub.CreateOrder(
        orders_pb2.CreateOrderRequest(
            request_id=uuid.uuid4().hex,
            items=[orders_pb2.CreateOrderItem(product_id=product_id, quantity=quantity)],
        )
    )


def get_order(stack: Stack, order_id: str) -> orders_pb2.Order:
    return stack.order_service.GetOrder(orders_pb2.GetOrderRequest(order_id=order_id))


def wait_payment(
    stack: Stack, order_id: str, status: Any = None, timeout: float = 15
) -> payment_pb2.Payment:
    def check() -> payment_pb2.Payment | None:
        try:
            payment = stack.payments.GetOrderPayment(
                payment_pb2.GetOrderPaymentRequest(order_id=order_id)
            )
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
                return None
            raise
        return payment if status is None or payment.status == status else None

    what = f"payment of order {order_id}" + (
        f" to be {PAYMENT.Name(status)}" if status is not None else ""
    )
    return wait_for(check, timeout, what)


def wait_order(
    stack: Stack, order_id: str, status: Any, payment_status: Any = None, timeout: float = 15
) -> orders_pb2.Order:
    def check() -> orders_pb2.Order | None:
        order = get_order(stack, order_id)
        if order.status != status:
            return None
        if payment_status is not None and order.payment_status != payment_status:
            return None
        return order

    what = f"order {order_id} to be {ORDER.Name(status)}" + (
        f" with payment {PAYMENT.Name(payment_status)}" if payment_status is not None else ""
    )
    return wait_for(check, timeout, what)


def pay(stack: Stack, order_id: str) -> payment_pb2.Payment:
    payment = wait_payment(stack, order_id, PAYMENT.Value("PAYMENT_STATUS_PENDING"))
    return stack.fake_checkout.PayFakeCheckout(
        payment_pb2.PayFakeCheckoutRequest(payment_id=payment.id)
    )


def notification(
    reference: str, status: str = "approved", notification_id: str | None = None
) -> tuple[bytes, str]:
    """A provider notification signed as the webhook expects it: (body, x-signature)."""
    body = json.dumps(
        {
            "id": notification_id or str(uuid.uuid4()),
            "type": "payment",
            "data": {"id": reference, "status": status},
        }
    ).encode()
    return body, sign(WEBHOOK_SECRET, body, int(time.time()))


def deliver(
    stack: Stack, body: bytes, signature: str
) -> payment_pb2.ReceiveProviderNotificationResponse:
    from google.api import httpbody_pb2

    return stack.payments.ReceiveProviderNotification(
        payment_pb2.ReceiveProviderNotificationRequest(
            provider="fake", body=httpbody_pb2.HttpBody(content_type="application/json", data=body)
        ),
        metadata=(("x-signature", signature),),
    )


def history_count(order: orders_pb2.Order, status: int) -> int:
    return sum(1 for h in order.history if h.status == status)


def timeline(stack: Stack, order_id: str) -> list[orders_pb2.TimelineEntry]:
    return list(
        stack.order_service.GetOrderTimeline(
            orders_pb2.GetOrderTimelineRequest(order_id=order_id)
        ).entries
    )


def with_nats(url: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(nats_client)` against the stack's NATS server."""

    async def run() -> T:
        nc = await nats.connect(url)
        try:
            return await work(nc)
        finally:
            await nc.close()

    return asyncio.run(run())
