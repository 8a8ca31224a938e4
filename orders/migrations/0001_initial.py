"""Customers, catalogue, orders, their items and history; outbox and inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from chassis.messaging import schema

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UUID = pg.UUID(as_uuid=False)
NOW = sa.DateTime(timezone=True)


def _enum(name: str, *values: str) -> pg.ENUM:
    return pg.ENUM(*values, name=name, create_type=False)


CATEGORY = _enum("product_category", "BURGER", "SIDE", "DRINK", "DESSERT")
ORDER_STATUS = _enum(
    "order_status",
    "PENDING_PAYMENT",
    "RECEIVED",
    "IN_PREPARATION",
    "READY",
    "COMPLETED",
    "CANCELLED",
)
PAYMENT_STATUS = _enum(
    "payment_status",
    "UNSPECIFIED",
    "PENDING",
    "APPROVED",
    "DECLINED",
    "EXPIRED",
    "CANCELLED",
    "REFUNDED",
)
ACTOR = _enum("actor", "CUSTOMER", "KITCHEN", "PAYMENT", "TIMEOUT", "STAFF")
ENUMS = (CATEGORY, ORDER_STATUS, PAYMENT_STATUS, ACTOR)


def upgrade() -> None:
    bind = op.get_bind()
    for enum in ENUMS:
        enum.create(bind)
    op.create_table(
        "customers",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("cpf", sa.Text),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("created_at", NOW, nullable=False),
        sa.Column("erased_at", NOW),
    )
    # Unique among customers that still have one: an erased customer's CPF is free again.
    op.create_index(
        "customers_cpf",
        "customers",
        ["cpf"],
        unique=True,
        postgresql_where=sa.text("cpf IS NOT NULL"),
    )
    op.create_table(
        "products",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("category", CATEGORY, nullable=False),
        sa.Column("price_centavos", sa.BigInteger, nullable=False),
        sa.Column("preparation_seconds", sa.Integer, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", NOW, nullable=False),
        sa.Column("updated_at", NOW, nullable=False),
        sa.CheckConstraint("price_centavos > 0", name="price_positive"),
    )
    op.create_index("products_menu", "products", ["category", "name", "id"])
    op.create_table(
        "orders",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("number", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
        sa.Column("customer_id", UUID, sa.ForeignKey("customers.id")),
        sa.Column("request_id", sa.Text, nullable=False, unique=True),
        sa.Column("status", ORDER_STATUS, nullable=False),
        sa.Column("payment_status", PAYMENT_STATUS, nullable=False),
        sa.Column("payment_id", UUID),
        sa.Column("payment_deadline", NOW),
        sa.Column("total_centavos", sa.BigInteger, nullable=False),
        sa.Column("created_at", NOW, nullable=False),
        sa.Column("updated_at", NOW, nullable=False),
    )
    # Listing newest first, by customer, by status; the kitchen queue reads (status, created_at)
    # for its three statuses only, and the timeout sweeper the pending deadlines.
    op.create_index("orders_created", "orders", [sa.text("created_at DESC"), sa.text("id DESC")])
    op.create_index("orders_customer", "orders", ["customer_id", sa.text("created_at DESC")])
    op.create_index("orders_status", "orders", ["status", sa.text("created_at DESC")])
    op.create_index(
        "orders_kitchen_queue",
        "orders",
        ["status", "created_at", "id"],
        postgresql_where=sa.text("status IN ('RECEIVED', 'IN_PREPARATION', 'READY')"),
    )
    op.create_index(
        "orders_payment_deadline",
        "orders",
        ["payment_deadline"],
        postgresql_where=sa.text("status = 'PENDING_PAYMENT'"),
    )
    op.create_table(
        "order_items",
        sa.Column("order_id", UUID, sa.ForeignKey("orders.id"), primary_key=True),
        sa.Column("line", sa.SmallInteger, primary_key=True),
        sa.Column("product_id", UUID, sa.ForeignKey("products.id"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("category", CATEGORY, nullable=False),
        sa.Column("unit_price_centavos", sa.BigInteger, nullable=False),
        sa.Column("quantity", sa.SmallInteger, nullable=False),
        sa.Column("notes", sa.Text, nullable=False),
    )
    op.create_index("order_items_product", "order_items", ["product_id"])
    op.create_table(
        "order_history",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("order_id", UUID, sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("status", ORDER_STATUS, nullable=False),
        sa.Column("actor", ACTOR, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("time", NOW, nullable=False),
    )
    op.create_index("order_history_order", "order_history", ["order_id", "id"])
    schema.create_tables_v1(op)


def downgrade() -> None:
    schema.drop_tables_v1(op)
    for table in ("order_history", "order_items", "orders", "products", "customers"):
        op.drop_table(table)
    bind = op.get_bind()
    for enum in reversed(ENUMS):
        enum.drop(bind)
