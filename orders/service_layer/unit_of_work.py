"""The orders unit of work: one transaction with the orders repositories."""

from __future__ import annotations

from collections.abc import Callable

from chassis.db import UnitOfWork
from chassis.messaging.codec import EventCodec
from comanda.events.v1 import events_pb2
from orders.adapters.repository import CustomerRepository, OrderRepository, ProductRepository

# The saga's events (comanda.events.v1), each about the order named in its order_id.
CODEC = EventCodec(events_pb2, aggregate_field="order_id")


class OrdersUnitOfWork(UnitOfWork):
    codec = CODEC
    customers: CustomerRepository
    products: ProductRepository
    orders: OrderRepository

    def _open(self) -> None:
        self.customers = CustomerRepository(self.connection)
        self.products = ProductRepository(self.connection)
        self.orders = OrderRepository(self)

    def lock(self, aggregate_ids: list[str]) -> None:
        self.orders.lock(aggregate_ids)


UowFactory = Callable[[], OrdersUnitOfWork]
