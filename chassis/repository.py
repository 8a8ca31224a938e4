"""What every repository does the same way, written once.

- An aggregate with its children is read in one round trip: its row, and each kind of child
  as a JSON array (`children_json`), in a statement compiled once (`compiled`).
- `AggregateRead`: one aggregate by a unique key, plainly or locked for the transaction.
- `SavedHistory`: which entries of an aggregate's append-only history are already stored
  (what cosmicpython's `seen` does for aggregates), kept by the repository, never on the
  domain object.
- A state change is one statement: the row, its new history entries and its events
  (`state_change_sql`, `outbox_params`).
- Keyset pagination: a listing continues after the sort key of the last row it returned
  (`page_after`; the page tokens are `chassis.pagination`'s).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeVar

import psycopg2
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Connection

T = TypeVar("T")

_DIALECT = postgresql.psycopg2.dialect()  # type: ignore[no-untyped-call]


def compiled(statement: sa.ClauseElement) -> str:
    """A statement as the SQL text psycopg2 runs (`%(name)s` parameters), built once: the hot
    reads skip SQLAlchemy's statement building on every call."""
    return str(statement.compile(dialect=_DIALECT))


def children_json(
    child: sa.Table, foreign_key: str, parent_key: sa.ColumnElement[Any], order_by: str, label: str
) -> sa.Label[Any]:
    """A correlated subquery: the child rows of a parent as one JSON array, in order."""
    alias = child.alias(f"{child.name}_j")
    return (
        sa.select(
            sa.func.coalesce(
                sa.func.json_agg(
                    aggregate_order_by(sa.func.row_to_json(alias.table_valued()), alias.c[order_by])
                ),
                sa.text("'[]'::json"),
            )
        )
        .where(alias.c[foreign_key] == parent_key)
        .scalar_subquery()
        .label(label)
    )


class AggregateRead:
    """One aggregate's row (with its children) by a unique key, plainly or locked.

    `select` is the aggregate's SELECT from `table` without a WHERE; `where` picks the row,
    with `%(name)s` parameters.
    """

    def __init__(self, table: str, select: str, where: str) -> None:
        self.plain = f"{select} WHERE {where}"
        self._lock_and_read = f"{self.plain} FOR UPDATE OF {table} SKIP LOCKED"
        self._lock = f"SELECT 1 FROM {table} WHERE {where} FOR UPDATE"

    def one(self, conn: Connection, params: dict[str, Any], for_update: bool = False) -> Any:
        """The row, or None. With `for_update`, the row is locked until the transaction ends.

        Usually the row is free: lock and read it in one statement that never waits. If another
        transaction holds it, wait for the lock, then read in a second statement: one that
        waited would read the newest row, but its subqueries would keep the snapshot taken
        before the wait (the children could be stale)."""
        if for_update:
            row = conn.exec_driver_sql(self._lock_and_read, params).first()
            if row is not None:
                return row
            if conn.exec_driver_sql(self._lock, params).first() is None:
                return None
        return conn.exec_driver_sql(self.plain, params).first()


class SavedHistory:
    """How many entries of each aggregate's append-only history the database holds, for the
    aggregates one repository loaded or wrote in its unit of work."""

    def __init__(self) -> None:
        self._saved: dict[Any, int] = {}

    def saved(self, aggregate: Any, history: Sequence[Any]) -> None:
        """The database now holds all of `history`."""
        self._saved[aggregate] = len(history)

    def new(self, aggregate: Any, history: list[T]) -> list[T]:
        """The entries of `history` the database does not hold yet."""
        return history[self._saved.get(aggregate, 0) :]


# (The outbox's aggregate id column is named order_id: see chassis.messaging.schema.)
OUTBOX_INSERT = """INSERT INTO outbox (event_id, event_type, subject, order_id, payload, headers)
    SELECT * FROM unnest(%(ob_ids)s::uuid[], %(ob_types)s::text[], %(ob_subjects)s::text[],
                         %(ob_aggregates)s::text[], %(ob_payloads)s::bytea[],
                         %(ob_headers)s::jsonb[])
         AS ob(event_id, event_type, subject, aggregate_id, payload, headers)"""


def state_change_sql(alias: str, change: str, history: str, *extra: str) -> str:
    """One statement for a state change: `change` (an UPDATE ... RETURNING id, named `alias`),
    `extra` CTEs (`name AS (...)`), the history rows (`history` selects FROM alias) and the
    outbox rows (OUTBOX_INSERT's parameters)."""
    ctes = [
        f"{alias} AS ({change})",
        *extra,
        f"history AS ({history})",
        f"events AS ({OUTBOX_INSERT})",
    ]
    return "WITH " + ",\n".join(ctes) + f"\nSELECT count(*) FROM {alias}"


def outbox_params(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Parameters of OUTBOX_INSERT, a statement a repository can use as one of its CTEs."""
    return {
        "ob_ids": [r["event_id"] for r in rows],
        "ob_types": [r["event_type"] for r in rows],
        "ob_subjects": [r["subject"] for r in rows],
        "ob_aggregates": [r["aggregate_id"] for r in rows],
        "ob_payloads": [psycopg2.Binary(r["payload"]) for r in rows],
        "ob_headers": [json.dumps(r["headers"]) for r in rows],
    }


def page_after(
    query: sa.Select[Any],
    key: Sequence[sa.ColumnElement[Any]],
    after: Sequence[Any] | None,
    limit: int,
    descending: bool = False,
) -> sa.Select[Any]:
    """`query` sorted by the columns of `key` (all in one direction), from just after `after`
    (their values in the last row of the previous page; None for the first page), at most
    `limit` rows."""
    query = query.order_by(*(c.desc() if descending else c.asc() for c in key)).limit(limit)
    if after is None:
        return query
    row = sa.tuple_(*key)
    last = sa.tuple_(*(sa.cast(value, c.type) for c, value in zip(key, after, strict=True)))
    return query.where(row < last if descending else row > last)
