"""The outbox and inbox tables, defined once and created by each service's migrations.

Each row carries the id of the aggregate its event is about (`aggregate_id`, for the
timeline). Its column is named `order_id`, as Comanda's first migrations created it: renaming
it would break replicas still running the old code during a rolling upgrade, for no gain.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

metadata = sa.MetaData()

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("event_id", pg.UUID(as_uuid=False), nullable=False, unique=True),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("order_id", sa.Text, key="aggregate_id", nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("headers", pg.JSONB, nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("published_at", sa.DateTime(timezone=True)),
)

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("consumer", sa.Text, primary_key=True),
    sa.Column("event_id", pg.UUID(as_uuid=False), primary_key=True),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("order_id", sa.Text, key="aggregate_id", nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column(
        "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)


def create_tables_v1(op: Any) -> None:
    """Called from a service's first migration: the outbox and inbox as of schema version 1.

    Frozen: a later change to the tables above gets a new function, called from a new
    migration of each service, so that old migrations keep meaning what they meant.
    """
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", pg.UUID(as_uuid=False), nullable=False, unique=True),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("headers", pg.JSONB, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("published_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.Text, primary_key=True),
        sa.Column("event_id", pg.UUID(as_uuid=False), primary_key=True),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    # The relay's work list: only unpublished rows are indexed, so it stays tiny.
    op.create_index(
        "outbox_unpublished", "outbox", ["id"], postgresql_where=sa.text("published_at IS NULL")
    )
    op.create_index("outbox_order_id", "outbox", ["order_id"])
    op.create_index("outbox_published_at", "outbox", ["published_at"])
    op.create_index("inbox_order_id", "inbox", ["order_id"])
    op.create_index("inbox_received_at", "inbox", ["received_at"])


def drop_tables_v1(op: Any) -> None:
    op.drop_table("inbox")
    op.drop_table("outbox")
