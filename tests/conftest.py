"""Shared fixtures: a throwaway PostgreSQL for the session, migrated template databases, fresh
databases per test, and stacks of real service processes."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from orders.app import DEFINITION as ORDERS
from payment.app import DEFINITION as PAYMENT
from tests.support.servers import NatsServer, PostgresServer
from tests.support.stack import Stack

# Tests run in development (COMANDA_ENV's default is production, which refuses development
# secrets and the fake checkout); every process they start inherits it.
os.environ["COMANDA_ENV"] = "development"


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def templates(pg: PostgresServer) -> dict[str, str]:
    return {
        "orders": pg.migrated_template("orders", ORDERS.versions_dir),
        "payment": pg.migrated_template("payment", PAYMENT.versions_dir),
    }


def _fresh_engine(pg: PostgresServer, service: str, template: str) -> Iterator[sa.Engine]:
    name, url = pg.create_database(f"{service}_it", template)
    engine = sa.create_engine(url, pool_size=20, max_overflow=10)
    yield engine
    engine.dispose()
    pg.drop_database(name)


@pytest.fixture
def orders_engine(pg: PostgresServer, templates: dict[str, str]) -> Iterator[sa.Engine]:
    """A fresh, migrated orders database."""
    yield from _fresh_engine(pg, "orders", templates["orders"])


@pytest.fixture
def payment_engine(pg: PostgresServer, templates: dict[str, str]) -> Iterator[sa.Engine]:
    """A fresh, migrated payment database."""
    yield from _fresh_engine(pg, "payment", templates["payment"])


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    """A NATS JetStream server of this test's own."""
    server = NatsServer()
    server.start()
    yield server
    server.stop()


def _stack(pg: PostgresServer, templates: dict[str, str], **kwargs: object) -> Iterator[Stack]:
    stack = Stack(pg, templates, **kwargs)  # type: ignore[arg-type]
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def stack(pg: PostgresServer, templates: dict[str, str]) -> Iterator[Stack]:
    """orders + payment + a gateway process, the servers serving the HTTP API in-process too
    (`http_url`, as deployed), shared by the tests of a module (they must not depend on each
    other's data)."""
    yield from _stack(pg, templates, gateway=True, http=True)


@pytest.fixture
def own_stack(
    pg: PostgresServer, templates: dict[str, str], request: pytest.FixtureRequest
) -> Iterator[Stack]:
    """A stack for one test (to kill or reconfigure); parametrize with indirect=True to pass
    Stack arguments as a dict."""
    yield from _stack(pg, templates, **getattr(request, "param", {}))
