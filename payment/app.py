"""The payment service: its settings and how its parts plug into the chassis."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from chassis import config as cfg
from chassis.config import setting
from chassis.messagebus import MessageBus
from chassis.periodic import Periodic
from chassis.service import Runtime, ServiceConfig, ServiceDefinition, Wiring
from comanda.payment.v1 import payment_pb2, payment_pb2_grpc
from payment.adapters.provider import FakePixProvider
from payment.entrypoints.grpc_api import FakeCheckoutApi, PaymentApi
from payment.service_layer import handlers, payments
from payment.service_layer.unit_of_work import CODEC, PaymentUnitOfWork

log = logging.getLogger(__name__)

DEV_WEBHOOK_SECRET = "dev-webhook-secret"
# How often the fake provider's auto-approval looks for due charges it was not woken for.
AUTO_APPROVAL_SWEEP = 1.0


@dataclass(frozen=True)
class PaymentConfig(ServiceConfig):
    SERVICE = "payment"

    grpc_port: int = setting("PAYMENT_GRPC_PORT", 50052, "gRPC port", cfg.port)
    metrics_port: int = setting(
        "PAYMENT_METRICS_PORT", 9102, "Port of the Prometheus /metrics endpoint; 0 disables it", int
    )
    expiry: float = setting(
        "PAYMENT_EXPIRY_SECONDS", 600.0, "How long a Pix charge can be paid", cfg.positive_float
    )
    expiry_sweep: float = setting(
        "PAYMENT_EXPIRY_SWEEP_SECONDS",
        1.0,
        "How often expired charges are looked for",
        cfg.positive_float,
    )
    webhook_secret: str = setting(
        "PAYMENT_WEBHOOK_SECRET",
        DEV_WEBHOOK_SECRET,
        "HMAC secret of provider notifications (set a secret one in production)",
        secret=True,
    )
    webhook_tolerance: float = setting(
        "PAYMENT_WEBHOOK_TOLERANCE_SECONDS",
        300.0,
        "Maximum age of a notification's signature",
        cfg.positive_float,
    )
    fake_checkout: bool = setting(
        "PAYMENT_FAKE_CHECKOUT",
        False,
        "The fake checkout: RPCs (and routes) that pay or decline any charge, as the customer's "
        "bank app would; development and demos only (refused in production)",
        cfg.boolean,
    )
    auto_approve: float = setting(
        "FAKE_PROVIDER_AUTO_APPROVE_SECONDS",
        -1.0,
        "When >= 0 (and PAYMENT_FAKE_CHECKOUT is on), the fake provider approves every charge "
        "this many seconds after it is issued (demos, benchmarks); negative turns it off",
        float,
    )
    pix_key: str = setting(
        "PAYMENT_PIX_KEY", "pix@comanda.example", "The restaurant's Pix key in QR codes"
    )
    merchant_name: str = setting("PAYMENT_MERCHANT_NAME", "Comanda", "Merchant name in QR codes")
    merchant_city: str = setting("PAYMENT_MERCHANT_CITY", "Sao Paulo", "Merchant city in QR codes")

    def problems(self) -> list[str]:
        found = super().problems()
        if self.auto_approve >= 0 and not self.fake_checkout:
            found.append(
                "FAKE_PROVIDER_AUTO_APPROVE_SECONDS is set but PAYMENT_FAKE_CHECKOUT is off: "
                "auto-approval is part of the fake checkout"
            )
        return found

    def unsafe_for_production(self) -> list[str]:
        unsafe = super().unsafe_for_production()
        problem = cfg.production_secret(
            "PAYMENT_WEBHOOK_SECRET", self.webhook_secret, DEV_WEBHOOK_SECRET
        )
        if problem:
            unsafe.append(problem)
        if self.fake_checkout:
            unsafe.append("PAYMENT_FAKE_CHECKOUT is on (anyone could mark any order paid)")
        return unsafe


def wire(runtime: Runtime) -> Wiring:
    config: PaymentConfig = runtime.config

    provider = FakePixProvider(
        config.webhook_secret,
        config.pix_key,
        config.merchant_name,
        config.merchant_city,
        config.webhook_tolerance,
    )
    expiry = timedelta(seconds=config.expiry)

    def uow() -> PaymentUnitOfWork:
        return PaymentUnitOfWork(
            runtime.engine, on_commit=runtime.outbox_written, effects=bus.after_commit
        )

    periodic = [
        Periodic(
            "payment expiry sweep",
            config.expiry_sweep,
            lambda: payments.expire_overdue(uow),
            report="expired %d payments",
        )
    ]
    auto_approval: Callable[[], None] = _nothing
    if config.fake_checkout and config.auto_approve >= 0:
        after = timedelta(seconds=config.auto_approve)
        approver = Periodic(
            "fake provider auto-approval",
            AUTO_APPROVAL_SWEEP,
            lambda: payments.auto_approve(uow, provider, after),
            report="auto-approved %d payments",
            batch=payments.AUTO_APPROVAL_BATCH,
            linger=config.batch_linger,
        )
        periodic.append(approver)
        # A charge issued here is looked at when it becomes due; the sweep is for the rest.
        auto_approval = functools.partial(approver.wake, config.auto_approve)
    bus = MessageBus[PaymentUnitOfWork](
        handlers.HANDLERS,
        handlers.EFFECTS,
        provider=provider,
        expiry=expiry,
        auto_approval=auto_approval,
    )
    return Wiring(
        registrations=[
            (payment_pb2_grpc.add_PaymentServiceServicer_to_server, PaymentApi(uow, provider)),
            (
                payment_pb2_grpc.add_FakeCheckoutServiceServicer_to_server,
                FakeCheckoutApi(uow, provider, enabled=config.fake_checkout),
            ),
        ],
        service_names=[
            payment_pb2.DESCRIPTOR.services_by_name["PaymentService"].full_name,
            payment_pb2.DESCRIPTOR.services_by_name["FakeCheckoutService"].full_name,
        ],
        uow_factory=uow,
        bus=bus,
        consumer=handlers.CONSUMER,
        periodic=periodic,
    )


def _nothing() -> None:
    pass


DEFINITION = ServiceDefinition(
    name="payment",
    config_class=PaymentConfig,
    versions_dir=Path(__file__).parent / "migrations",
    wire=wire,
    codec=CODEC,
)
