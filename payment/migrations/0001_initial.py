"""Payments, their history, provider notifications; outbox and inbox.

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
STATUS = pg.ENUM(
    "PENDING",
    "APPROVED",
    "DECLINED",
    "EXPIRED",
    "CANCELLED",
    "REFUNDED",
    name="payment_status",
    create_type=False,
)


def upgrade() -> None:
    STATUS.create(op.get_bind())
    op.create_table(
        "payments",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("order_id", UUID, nullable=False, unique=True),  # one payment per order
        sa.Column("amount_centavos", sa.BigInteger, nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("provider_reference", sa.Text, nullable=False),
        sa.Column("qr_code", sa.Text, nullable=False),
        sa.Column("expires_at", NOW),
        sa.Column("created_at", NOW, nullable=False),
        sa.Column("updated_at", NOW, nullable=False),
    )
    op.create_index("payments_reference", "payments", ["provider", "provider_reference"])
    op.create_index(
        "payments_created", "payments", [sa.text("created_at DESC"), sa.text("id DESC")]
    )
    op.create_index("payments_status", "payments", ["status", sa.text("created_at DESC")])
    # The expiry sweeper and the fake provider's auto-approval read pending payments only.
    op.create_index(
        "payments_pending_expiry",
        "payments",
        ["expires_at"],
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.create_index(
        "payments_pending_created",
        "payments",
        ["created_at"],
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.create_table(
        "payment_history",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("payment_id", UUID, sa.ForeignKey("payments.id"), nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("time", NOW, nullable=False),
    )
    op.create_index("payment_history_payment", "payment_history", ["payment_id", "id"])
    op.create_table(
        "provider_notifications",
        sa.Column("provider", sa.Text, primary_key=True),
        sa.Column("notification_id", sa.Text, primary_key=True),
        sa.Column("payment_id", UUID, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("received_at", NOW, nullable=False, server_default=sa.func.now()),
    )
    schema.create_tables_v1(op)


def downgrade() -> None:
    schema.drop_tables_v1(op)
    for table in ("provider_notifications", "payment_history", "payments"):
        op.drop_table(table)
    STATUS.drop(op.get_bind())
