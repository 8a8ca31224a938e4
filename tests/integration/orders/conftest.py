"""Fixtures of the orders integration tests."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from orders.service_layer.unit_of_work import OrdersUnitOfWork, UowFactory


@pytest.fixture
def uow(orders_engine: sa.Engine) -> UowFactory:
    return lambda: OrdersUnitOfWork(orders_engine)
