"""The orders unit of work: one transaction with the orders repositories."""

from __future__ import annotations

from collections.abc import Callable

from chassis.db import UnitOfWork
from orders.adapters.repository import CustomerRepository, OrderRepository, ProductRepository


class OrdersUnitOfWork(UnitOfWork):
    customers: CustomerRepository
    products: ProductRepository
    orders: OrderRepository

    def _open(self) -> None:
        self.customers = CustomerRepository(self.connection)
        self.products = ProductRepository(self.connection)
        self.orders = OrderRepository(self)


UowFactory = Callable[[], OrdersUnitOfWork]
