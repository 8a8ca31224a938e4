"""Each service's migration history applies to an empty database and is reversible."""

import pytest
import sqlalchemy as sa

from chassis import migrations
from orders.app import DEFINITION as ORDERS
from payment.app import DEFINITION as PAYMENT

EXPECTED = {
    "orders": {
        "customers",
        "products",
        "orders",
        "order_items",
        "order_history",
        "outbox",
        "inbox",
    },
    "payment": {"payments", "payment_history", "provider_notifications", "outbox", "inbox"},
}


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize("definition", [ORDERS, PAYMENT], ids=["orders", "payment"])
def test_migrations_apply_to_an_empty_database_and_revert(pg, definition):
    name, url = pg.create_database(f"{definition.name}_mig")
    try:
        version_table = f"alembic_version_{definition.name}"
        assert tables(url) == set()
        migrations.upgrade(definition.name, definition.versions_dir, url)
        assert tables(url) == EXPECTED[definition.name] | {version_table}
        assert migrations.is_current(definition.name, definition.versions_dir, url)
        migrations.downgrade(definition.name, definition.versions_dir, url, "base")
        assert tables(url) == {version_table}, "downgrade to base must leave only the version table"
        assert not migrations.is_current(definition.name, definition.versions_dir, url)
        migrations.upgrade(
            definition.name, definition.versions_dir, url
        )  # and again: nothing left behind
        assert tables(url) == EXPECTED[definition.name] | {version_table}
        migrations.upgrade(definition.name, definition.versions_dir, url)  # idempotent
    finally:
        pg.drop_database(name)
