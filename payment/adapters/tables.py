"""The payment database schema (SQLAlchemy Core). Migrations create it; see migrations/."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from payment.domain.model import PaymentStatus

metadata = sa.MetaData()
payment_status_enum = sa.Enum(
    PaymentStatus,
    name="payment_status",
    values_callable=lambda e: [m.value for m in e],
    create_type=False,
)

payments = sa.Table(
    "payments",
    metadata,
    sa.Column("id", pg.UUID(as_uuid=False), primary_key=True),
    sa.Column("order_id", pg.UUID(as_uuid=False), nullable=False, unique=True),
    sa.Column("amount_centavos", sa.BigInteger, nullable=False),
    sa.Column("status", payment_status_enum, nullable=False),
    sa.Column("provider", sa.Text, nullable=False),
    sa.Column("provider_reference", sa.Text, nullable=False),
    sa.Column("qr_code", sa.Text, nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

payment_history = sa.Table(
    "payment_history",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("payment_id", pg.UUID(as_uuid=False), sa.ForeignKey("payments.id"), nullable=False),
    sa.Column("status", payment_status_enum, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    # The staff member who caused it (their token's `sub`): a staff refund; '' otherwise.
    sa.Column("actor_subject", sa.Text, nullable=False, server_default=""),
)

provider_notifications = sa.Table(
    "provider_notifications",
    metadata,
    sa.Column("provider", sa.Text, primary_key=True),
    sa.Column("notification_id", sa.Text, primary_key=True),
    sa.Column("payment_id", pg.UUID(as_uuid=False), nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column(
        "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)
