"""gRPC servicers of the payment service: requests to use-case calls, results to responses."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from google.api import httpbody_pb2

from chassis.interceptors import acting_subject
from chassis.protomap import enum_from_proto, enum_to_proto
from comanda.payment.v1 import payment_pb2, payment_pb2_grpc
from payment.adapters.provider import FakePixProvider, PaymentProvider
from payment.adapters.qrcode import ImageFormat
from payment.domain.model import PaymentStatus
from payment.entrypoints.mapping import payment as to_proto
from payment.service_layer import payments
from payment.service_layer.unit_of_work import UowFactory

Context = grpc.aio.ServicerContext[Any, Any]


class PaymentApi(payment_pb2_grpc.PaymentServiceServicer):
    def __init__(self, uow: UowFactory, provider: PaymentProvider) -> None:
        self.uow = uow
        self.provider = provider

    async def GetPayment(
        self, request: payment_pb2.GetPaymentRequest, context: Context
    ) -> payment_pb2.Payment:
        return to_proto(await asyncio.to_thread(payments.get, self.uow, request.payment_id))

    async def GetOrderPayment(
        self, request: payment_pb2.GetOrderPaymentRequest, context: Context
    ) -> payment_pb2.Payment:
        return to_proto(await asyncio.to_thread(payments.for_order, self.uow, request.order_id))

    async def GetPaymentQrCode(
        self, request: payment_pb2.GetPaymentQrCodeRequest, context: Context
    ) -> httpbody_pb2.HttpBody:
        image_format = enum_from_proto(
            payment_pb2.ImageFormat, request.format, ImageFormat, "format"
        )
        data, content_type = await asyncio.to_thread(
            payments.qr_code, self.uow, request.payment_id, image_format, request.scale
        )
        return httpbody_pb2.HttpBody(content_type=content_type, data=data)

    async def ListPayments(
        self, request: payment_pb2.ListPaymentsRequest, context: Context
    ) -> payment_pb2.ListPaymentsResponse:
        status = enum_from_proto(payment_pb2.PaymentStatus, request.status, PaymentStatus, "status")
        page, token = await asyncio.to_thread(
            payments.list_payments, self.uow, status, request.page_size, request.page_token
        )
        return payment_pb2.ListPaymentsResponse(
            payments=[to_proto(p) for p in page], next_page_token=token
        )

    async def RefundPayment(
        self, request: payment_pb2.RefundPaymentRequest, context: Context
    ) -> payment_pb2.Payment:
        return to_proto(
            await asyncio.to_thread(
                payments.refund, self.uow, request.payment_id, request.reason, acting_subject()
            )
        )

    async def ReceiveProviderNotification(
        self, request: payment_pb2.ReceiveProviderNotificationRequest, context: Context
    ) -> payment_pb2.ReceiveProviderNotificationResponse:
        metadata = dict(context.invocation_metadata() or ())
        signature = str(metadata.get("x-signature", ""))
        duplicate, payment = await asyncio.to_thread(
            payments.receive_notification,
            self.uow,
            self.provider,
            request.provider,
            request.body.data,
            signature,
        )
        return payment_pb2.ReceiveProviderNotificationResponse(
            duplicate=duplicate, status=enum_to_proto(payment_pb2.PaymentStatus, payment.status)
        )


class FakeCheckoutApi(payment_pb2_grpc.FakeCheckoutServiceServicer):
    """The customer's bank app, simulated; only when PAYMENT_FAKE_CHECKOUT is on (otherwise
    every call is UNIMPLEMENTED, naming the setting)."""

    def __init__(self, uow: UowFactory, provider: FakePixProvider, enabled: bool) -> None:
        self.uow = uow
        self.provider = provider
        self.enabled = enabled

    async def _require_enabled(self, context: Context) -> None:
        if not self.enabled:
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                "the fake checkout is off (PAYMENT_FAKE_CHECKOUT=false): payments are approved "
                "by the provider's signed notifications only",
            )

    async def PayFakeCheckout(
        self, request: payment_pb2.PayFakeCheckoutRequest, context: Context
    ) -> payment_pb2.Payment:
        await self._require_enabled(context)
        return to_proto(
            await asyncio.to_thread(
                payments.fake_checkout, self.uow, self.provider, request.payment_id, True
            )
        )

    async def DeclineFakeCheckout(
        self, request: payment_pb2.DeclineFakeCheckoutRequest, context: Context
    ) -> payment_pb2.Payment:
        await self._require_enabled(context)
        return to_proto(
            await asyncio.to_thread(
                payments.fake_checkout,
                self.uow,
                self.provider,
                request.payment_id,
                False,
                request.reason,
            )
        )
