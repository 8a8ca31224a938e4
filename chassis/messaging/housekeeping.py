"""Purges published outbox rows and old inbox rows.

Both are kept for `retention` (default 7 days), far longer than JetStream's duplicate window
(2 minutes) and as long as the streams keep messages, so a late redelivery still finds its
inbox row; until purged they also make up each aggregate's saga timeline.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from chassis.messaging.schema import inbox, outbox


def purge(engine: Engine, retention: timedelta, batch: int = 5000) -> tuple[int, int]:
    """Delete what is older than `retention`; returns (outbox rows, inbox rows) deleted."""
    cutoff = sa.func.now() - retention
    deleted = [0, 0]
    for index, (table, column) in enumerate(
        ((outbox, outbox.c.published_at), (inbox, inbox.c.received_at))
    ):
        while True:
            with engine.begin() as conn:
                victims: Any = (
                    sa.select(sa.literal_column("ctid"))
                    .select_from(table)
                    .where(column < cutoff)
                    .limit(batch)
                )
                result = conn.execute(table.delete().where(sa.literal_column("ctid").in_(victims)))
            deleted[index] += result.rowcount
            if result.rowcount < batch:
                break
    return deleted[0], deleted[1]
