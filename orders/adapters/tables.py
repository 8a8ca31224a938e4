"""The orders database schema (SQLAlchemy Core). Migrations create it; see migrations/."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from orders.domain.model import Actor, Category, OrderStatus, PaymentStatus

metadata = sa.MetaData()


def _enum(cls: type, name: str) -> sa.Enum:
    return sa.Enum(
        cls, name=name, values_callable=lambda e: [m.value for m in e], create_type=False
    )


category_enum = _enum(Category, "product_category")
order_status_enum = _enum(OrderStatus, "order_status")
payment_status_enum = _enum(PaymentStatus, "payment_status")
actor_enum = _enum(Actor, "actor")

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", pg.UUID(as_uuid=False), primary_key=True),
    sa.Column("cpf", sa.Text),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("erased_at", sa.DateTime(timezone=True)),
)

products = sa.Table(
    "products",
    metadata,
    sa.Column("id", pg.UUID(as_uuid=False), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("category", category_enum, nullable=False),
    sa.Column("price_centavos", sa.BigInteger, nullable=False),
    sa.Column("preparation_seconds", sa.Integer, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("price_centavos > 0", name="price_positive"),
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", pg.UUID(as_uuid=False), primary_key=True),
    sa.Column("number", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
    sa.Column("customer_id", pg.UUID(as_uuid=False), sa.ForeignKey("customers.id")),
    sa.Column("request_id", sa.Text, nullable=False, unique=True),
    sa.Column("status", order_status_enum, nullable=False),
    sa.Column("payment_status", payment_status_enum, nullable=False),
    sa.Column("payment_id", pg.UUID(as_uuid=False)),
    sa.Column("payment_deadline", sa.DateTime(timezone=True)),
    sa.Column("total_centavos", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

order_items = sa.Table(
    "order_items",
    metadata,
    sa.Column("order_id", pg.UUID(as_uuid=False), sa.ForeignKey("orders.id"), primary_key=True),
    sa.Column("line", sa.SmallInteger, primary_key=True),
    sa.Column("product_id", pg.UUID(as_uuid=False), sa.ForeignKey("products.id"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("category", category_enum, nullable=False),
    sa.Column("unit_price_centavos", sa.BigInteger, nullable=False),
    sa.Column("quantity", sa.SmallInteger, nullable=False),
    sa.Column("notes", sa.Text, nullable=False),
)

order_history = sa.Table(
    "order_history",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("order_id", pg.UUID(as_uuid=False), sa.ForeignKey("orders.id"), nullable=False),
    sa.Column("status", order_status_enum, nullable=False),
    sa.Column("actor", actor_enum, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    # The staff member who caused it (their token's `sub`); '' for customers and the saga.
    sa.Column("actor_subject", sa.Text, nullable=False, server_default=""),
)
