"""Published outbox rows and old inbox rows are purged after the retention; nothing else is."""

import uuid
from datetime import timedelta

import sqlalchemy as sa

from chassis.messaging import housekeeping
from chassis.messaging.schema import inbox, outbox


def row(**overrides):
    values = {
        "event_id": str(uuid.uuid4()),
        "event_type": "t",
        "subject": "s",
        "aggregate_id": "o",
        "payload": b"",
        "headers": {},
    }
    values.update(overrides)
    return values


def test_purge_keeps_unpublished_and_recent_rows(orders_engine):
    old = sa.func.now() - sa.text("interval '8 days'")
    with orders_engine.begin() as conn:
        conn.execute(outbox.insert(), [row(), row(), row()])
        ids = [r.id for r in conn.execute(sa.select(outbox.c.id).order_by(outbox.c.id))]
        conn.execute(outbox.update().where(outbox.c.id == ids[0]).values(published_at=old))  # purge
        conn.execute(
            outbox.update().where(outbox.c.id == ids[1]).values(published_at=sa.func.now())
        )  # keep
        # ids[2] is unpublished: kept however old
        conn.execute(outbox.update().where(outbox.c.id == ids[2]).values(created_at=old))
        for received in (old, sa.func.now()):
            conn.execute(
                inbox.insert().values(
                    consumer="c",
                    event_id=str(uuid.uuid4()),
                    event_type="t",
                    subject="s",
                    aggregate_id="o",
                    outcome="x",
                    received_at=received,
                )
            )
    assert housekeeping.purge(orders_engine, timedelta(days=7), batch=1) == (1, 1)
    with orders_engine.connect() as conn:
        assert sorted(r.id for r in conn.execute(sa.select(outbox.c.id))) == ids[1:]
        assert conn.execute(sa.select(sa.func.count()).select_from(inbox)).scalar() == 1
    assert housekeeping.purge(orders_engine, timedelta(days=7)) == (0, 0)
