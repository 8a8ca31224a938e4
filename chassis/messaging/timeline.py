"""An aggregate's saga timeline: the events this service emitted (outbox) and consumed (inbox)
about it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from chassis.messaging.codec import ACTOR_HEADER
from chassis.messaging.schema import inbox, outbox


@dataclass(frozen=True)
class TimelineEntry:
    event_id: str
    event_type: str
    subject: str
    emitted: bool
    time: datetime
    outcome: str
    publish_time: datetime | None
    actor: str  # the staff member whose call caused an emitted event; "" otherwise


def for_aggregate(conn: Connection, aggregate_id: str) -> list[TimelineEntry]:
    emitted = sa.select(
        outbox.c.event_id,
        outbox.c.event_type,
        outbox.c.subject,
        sa.true().label("emitted"),
        outbox.c.created_at.label("time"),
        sa.case((outbox.c.published_at.is_(None), "pending"), else_="published").label("outcome"),
        outbox.c.published_at.label("publish_time"),
        sa.func.coalesce(outbox.c.headers[ACTOR_HEADER].astext, "").label("actor"),
    ).where(outbox.c.aggregate_id == aggregate_id)
    consumed = sa.select(
        inbox.c.event_id,
        inbox.c.event_type,
        inbox.c.subject,
        sa.false(),
        inbox.c.received_at,
        inbox.c.outcome,
        sa.null(),
        sa.literal(""),
    ).where(inbox.c.aggregate_id == aggregate_id)
    union = sa.union_all(emitted, consumed).subquery()
    # Within one transaction (same time) the event consumed comes before those it caused.
    rows = conn.execute(sa.select(union).order_by(union.c.time, union.c.emitted, union.c.event_id))
    return [
        TimelineEntry(
            str(r.event_id),
            r.event_type,
            r.subject,
            r.emitted,
            r.time,
            r.outcome,
            r.publish_time,
            r.actor,
        )
        for r in rows
    ]
