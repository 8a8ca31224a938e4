"""The orders service: its settings and how its parts plug into the chassis."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from chassis import config as cfg
from chassis import db
from chassis.config import setting
from chassis.messagebus import MessageBus
from chassis.periodic import Periodic
from chassis.service import SERVER, Runtime, ServiceConfig, ServiceDefinition, Wiring
from comanda.orders.v1 import (
    catalog_pb2,
    catalog_pb2_grpc,
    customers_pb2,
    customers_pb2_grpc,
    orders_pb2,
    orders_pb2_grpc,
)
from orders.entrypoints.grpc_api import CatalogApi, CustomerApi, KitchenApi, OrderApi
from orders.entrypoints.watch import order_feed
from orders.service_layer import catalog, handlers, ordering
from orders.service_layer.unit_of_work import CODEC, OrdersUnitOfWork

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OrdersConfig(ServiceConfig):
    SERVICE = "orders"

    grpc_port: int = setting("ORDERS_GRPC_PORT", 50051, "gRPC port", cfg.port)
    metrics_port: int = setting(
        "ORDERS_METRICS_PORT", 9101, "Port of the Prometheus /metrics endpoint; 0 disables it", int
    )
    payment_timeout: float = setting(
        "ORDERS_PAYMENT_TIMEOUT_SECONDS",
        720.0,
        "A PENDING_PAYMENT order with no payment outcome after this long is cancelled "
        "(keep it longer than PAYMENT_EXPIRY_SECONDS)",
        cfg.positive_float,
    )
    live_resync: float = setting(
        "ORDERS_LIVE_RESYNC_SECONDS",
        5.0,
        "How often live streams (WatchOrder, the board, the kitchen) re-read what they show, "
        "in case a change notification was lost",
        cfg.positive_float,
    )
    timeout_sweep: float = setting(
        "ORDERS_TIMEOUT_SWEEP_SECONDS",
        1.0,
        "How often overdue orders are looked for",
        cfg.positive_float,
    )


def _service_names() -> list[str]:
    return [
        customers_pb2.DESCRIPTOR.services_by_name["CustomerService"].full_name,
        catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name,
        orders_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name,
        orders_pb2.DESCRIPTOR.services_by_name["KitchenService"].full_name,
    ]


def wire(runtime: Runtime) -> Wiring:
    config: OrdersConfig = runtime.config

    def uow() -> OrdersUnitOfWork:
        return OrdersUnitOfWork(
            runtime.engine, on_commit=runtime.outbox_written, effects=bus.after_commit
        )

    # Watchers are served by the server; a worker only announces the changes it commits.
    changes = order_feed(uow, runtime.nc, config.live_resync, listen=runtime.role == SERVER)
    bus = MessageBus[OrdersUnitOfWork](handlers.HANDLERS, handlers.EFFECTS, watchers=changes)

    return Wiring(
        registrations=[
            (customers_pb2_grpc.add_CustomerServiceServicer_to_server, CustomerApi(uow)),
            (catalog_pb2_grpc.add_CatalogServiceServicer_to_server, CatalogApi(uow)),
            (
                orders_pb2_grpc.add_OrderServiceServicer_to_server,
                OrderApi(uow, changes, timedelta(seconds=config.payment_timeout)),
            ),
            (orders_pb2_grpc.add_KitchenServiceServicer_to_server, KitchenApi(uow, changes)),
        ],
        service_names=_service_names(),
        uow_factory=uow,
        bus=bus,
        consumer=handlers.CONSUMER,
        periodic=[
            Periodic(
                "order timeout sweep",
                config.timeout_sweep,
                lambda: ordering.time_out_overdue(uow),
                report="cancelled %d orders past their payment deadline",
            )
        ],
        background=[changes.run],
    )


def seed_menu(config: OrdersConfig) -> str:
    engine = db.create_engine(config.database_url, pool_size=1)
    try:
        db.check_connection(engine)
        added = catalog.seed_sample_menu(lambda: OrdersUnitOfWork(engine))
    finally:
        engine.dispose()
    return f"sample menu: {added} products added, {len(catalog.SAMPLE_MENU) - added} already there"


DEFINITION = ServiceDefinition(
    name="orders",
    config_class=OrdersConfig,
    versions_dir=Path(__file__).parent / "migrations",
    wire=wire,
    codec=CODEC,
    aggregate_ids={orders_pb2.Order.DESCRIPTOR.full_name: "id"},
    commands={"seed-menu": seed_menu},
)
