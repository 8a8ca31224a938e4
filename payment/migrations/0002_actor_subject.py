"""Who did it: the staff member (their token's `sub`) of a payment status change (a refund).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "payment_history",
        sa.Column("actor_subject", sa.Text, nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_column("payment_history", "actor_subject")
