"""What every repository does the same way, written once.

- An aggregate with its children is read in one round trip: its row, and each kind of child
  as a JSON array (`children_json`), in a statement compiled once (`compiled`).
- `AggregateRead`: one aggregate by a unique key, plainly or locked for the transaction.
- `SavedHistory`: which entries of an aggregate's append-only history are already stored
  (what cosmicpython's `seen` does for aggregates), kept by the repository, never on the
  domain object.
- State changes are written at the commit, one statement for all of a transaction's changed
  aggregates of a kind: their rows, their new history entries and their events
  (`StateChanges`, `outbox_params`).
- Hot statements are prepared on each connection once (`Prepared`): PostgreSQL parses and
  plans them once per connection instead of at every call.
- Keyset pagination: a listing continues after the sort key of the last row it returned
  (`page_after`; the page tokens are `chassis.pagination`'s).
"""

from __future__ import annotations

import collections
import functools
import itertools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import psycopg2
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Connection

from chassis.db import UnitOfWork

T = TypeVar("T")

_DIALECT = postgresql.psycopg2.dialect()  # type: ignore[no-untyped-call]


def compiled(statement: sa.ClauseElement) -> str:
    """A statement as the SQL text psycopg2 runs (`%(name)s` parameters), built once: the hot
    reads skip SQLAlchemy's statement building on every call."""
    return str(statement.compile(dialect=_DIALECT))


_PARAMETER = re.compile(r"%\((\w+)\)s((?:::[\w\[\]]+)?)")
_NAMES = itertools.count(1)


class Prepared:
    """A hot statement (psycopg2 `%(name)s` parameters), prepared on each connection the first
    time it runs there (`PREPARE`) and then run by name (`EXECUTE`): PostgreSQL no longer
    parses and plans it at every call (30-50 % of a hot statement's time). psycopg2 has no
    protocol-level prepare, so the parameters travel as literals of the EXECUTE, each with the
    cast it has in the statement (a parameter used as an array needs one there).

    It runs on the driver's cursor of the SQLAlchemy connection, inside that connection's
    transaction, and gives plain rows (named tuples, with `_mapping` as SQLAlchemy's have):
    SQLAlchemy's statement execution and result objects cost about as much client CPU as the
    driver's own call, and a prepared statement needs neither. A driver error goes through
    SQLAlchemy's handling, as its own execution's would: the same exception types, and a
    connection broken by a database restart invalidates the pool."""

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.name = f"comanda_{next(_NAMES)}"
        order: dict[str, str] = {}  # parameter -> its cast, in order of first use
        for match in _PARAMETER.finditer(sql):
            order.setdefault(match[1], match[2])
        numbers = {name: i for i, name in enumerate(order, 1)}
        body = _PARAMETER.sub(lambda m: f"${numbers[m[1]]}{m[2]}", sql).replace("%%", "%")
        self.prepare = f"PREPARE {self.name} AS {body}"
        arguments = ", ".join(f"%({name})s{cast}" for name, cast in order.items())
        self.execute = f"EXECUTE {self.name}({arguments})" if order else f"EXECUTE {self.name}"

    def run(self, conn: Connection, params: Mapping[str, Any] | None = None) -> list[Any]:
        """The statement's rows on `conn` (none for a statement that returns none)."""
        if not conn.in_transaction():
            conn.begin()  # what SQLAlchemy's own execution does first (autobegin)
        fairy = conn.connection
        prepared = fairy.info.setdefault("comanda_prepared", set())
        cursor = fairy.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            if self.name not in prepared:
                cursor.execute(self.prepare)  # no parameters: psycopg2 leaves the text alone
                prepared.add(self.name)
            cursor.execute(self.execute, params or {})
            if cursor.description is None:
                return []
            make = _row_type(tuple(column[0] for column in cursor.description))._make
            return [make(row) for row in cursor.fetchall()]
        except psycopg2.Error as exc:
            conn._handle_dbapi_exception(exc, self.execute, params, cursor, None)
        finally:
            cursor.close()

    def first(self, conn: Connection, params: Mapping[str, Any] | None = None) -> Any:
        """The statement's first row on `conn`, or None."""
        rows = self.run(conn, params)
        return rows[0] if rows else None


@functools.cache
def _row_type(columns: tuple[str, ...]) -> Any:
    """The row class of a statement's columns: a named tuple, with SQLAlchemy's `_mapping`."""
    base = collections.namedtuple("Row", columns, rename=True)  # type: ignore[misc]
    return type("Row", (base,), {"__slots__": (), "_mapping": property(base._asdict)})


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
        self.plain = Prepared(f"{select} WHERE {where}")
        self._lock_and_read = Prepared(f"{self.plain.sql} FOR UPDATE OF {table} SKIP LOCKED")
        self._lock = Prepared(f"SELECT 1 FROM {table} WHERE {where} FOR UPDATE")

    def one(self, conn: Connection, params: dict[str, Any], for_update: bool = False) -> Any:
        """The row, or None. With `for_update`, the row is locked until the transaction ends.

        Usually the row is free: lock and read it in one statement that never waits. If another
        transaction holds it, wait for the lock, then read in a second statement: one that
        waited would read the newest row, but its subqueries would keep the snapshot taken
        before the wait (the children could be stale)."""
        if for_update:
            row = self._lock_and_read.first(conn, params)
            if row is not None:
                return row
            if self._lock.first(conn, params) is None:
                return None
        return self.plain.first(conn, params)


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


class HistoryRows:
    """An aggregate's append-only history written from arrays: `table` with the aggregate's
    id in `parent` and `columns` (each with its PostgreSQL type), whose values `entry(change)`
    gives. Its parameters are `h_<column>`; `cte(written)` is the CTE `history` that inserts
    the entries of the aggregates the CTE `written` returned."""

    def __init__(
        self,
        table: str,
        parent: str,
        columns: Mapping[str, str],
        entry: Callable[[Any], Mapping[str, Any]],
    ) -> None:
        self.table = table
        self.parent = parent
        self.entry = entry
        self.columns = {parent: "uuid", **columns}
        self.names = [f"h_{name}" for name in self.columns]

    def cte(self, written: str) -> str:
        return f"""history AS (
  INSERT INTO {self.table} ({", ".join(self.columns)})
  SELECT * FROM {_unnest("h_", "h", self.columns)}
  WHERE h.{self.parent} IN (SELECT id FROM {written}))"""

    def add(self, rows: Arrays, aggregate_id: str, changes: Sequence[Any]) -> None:
        """Append `changes`, entries of the aggregate `aggregate_id`, to `rows`."""
        for change in changes:
            entry = {f"h_{name}": value for name, value in self.entry(change).items()}
            rows.add(**{f"h_{self.parent}": aggregate_id}, **entry)


class StateChanges:
    """The state changes of one kind of aggregate, however many a transaction made, written
    at its commit in one statement: each changed row (an UPDATE from arrays), the new entries
    of each one's append-only history (`history`), and the events of those rows (the outbox).

    `columns` names each written column with its PostgreSQL type; `row(aggregate)` gives their
    values. Events are those of the aggregates whose row was updated, whose `event_key` column
    is their outbox aggregate id.
    """

    def __init__(
        self,
        table: str,
        columns: Mapping[str, str],
        row: Callable[[Any], Mapping[str, Any]],
        history: HistoryRows,
        event_key: str = "id",
    ) -> None:
        self.row = row
        self.history = history
        self.names = ["id", *columns]
        values = {"id": "uuid", **columns}
        sets = ", ".join(f"{name} = v.{name}" for name in columns)
        # The ids also as `= ANY(...)`: an index condition on the primary key, whatever the
        # table's statistics say. Joined to the arrays alone, a table not yet analyzed (a new
        # deployment's first minute) was planned as a hash join over a sequential scan, a write
        # costing in proportion to the table (tests/integration/chassis/test_write_plans.py).
        self.statement = Prepared(f"""
WITH changed AS (
  UPDATE {table} SET {sets}
  FROM {_unnest("", "v", values)}
  WHERE {table}.id = v.id AND {table}.id = ANY(%(id)s::uuid[])
  RETURNING {table}.id, {table}.{event_key} AS event_key),
{history.cte("changed")},
events AS ({OUTBOX_INSERT} WHERE ob.aggregate_id IN (SELECT event_key::text FROM changed))
SELECT count(*) FROM changed""")

    def write(self, uow: UnitOfWork, history: SavedHistory, aggregates: Sequence[Any]) -> None:
        """Store `aggregates`' state, new history entries and new events (one statement)."""
        rows = Arrays([*self.names, *self.history.names])
        events: list[dict[str, Any]] = []
        for aggregate in aggregates:
            rows.add(id=aggregate.id, **self.row(aggregate))
            self.history.add(rows, aggregate.id, history.new(aggregate, aggregate.history))
            events += uow.take_events(aggregate)
        self.statement.run(uow.connection, {**rows.values, **outbox_params(events)})
        for aggregate in aggregates:
            history.saved(aggregate, aggregate.history)


class ChangeSet:
    """The aggregates a repository saved in its unit of work, written together at the commit
    (`StateChanges`): a transaction that changes many costs one statement, not one each."""

    def __init__(self, uow: UnitOfWork, history: SavedHistory, changes: StateChanges) -> None:
        self.uow = uow
        self.history = history
        self.changes = changes
        self._saved: dict[str, Any] = {}  # by id, in the order first saved
        uow.before_commit(self.flush)

    def save(self, aggregate: Any) -> None:
        self._saved[aggregate.id] = aggregate

    def flush(self) -> None:
        if self._saved:
            self.changes.write(self.uow, self.history, list(self._saved.values()))
            self._saved.clear()


def _unnest(prefix: str, alias: str, columns: Mapping[str, str]) -> str:
    """`unnest` of one array parameter per column (`%(<prefix><column>)s`), as `alias`."""
    arrays = ", ".join(f"%({prefix}{name})s::{kind}[]" for name, kind in columns.items())
    return f"unnest({arrays}) AS {alias}({', '.join(columns)})"


class Arrays:
    """The parameters of a multi-row statement over `unnest(...)`: one list per column, a row
    appended at a time."""

    def __init__(self, names: Sequence[str]) -> None:
        self.values: dict[str, list[Any]] = {name: [] for name in names}

    def add(self, **row: Any) -> None:
        for name, value in row.items():
            self.values[name].append(value)


def insert_new(
    uow: UnitOfWork,
    history: SavedHistory,
    statement: Prepared,
    arrays: Arrays,
    new: Sequence[Any],
) -> set[str]:
    """Run a multi-row insert of new aggregates (`arrays`, plus the outbox rows of their
    events); the ids of those written. Those are tracked by the unit of work, with their
    history saved; one the statement skipped (a conflict) is neither."""
    events = [row for aggregate in new for row in uow.take_events(aggregate)]
    rows = statement.run(uow.connection, {**arrays.values, **outbox_params(events)})
    written = {row[0] for row in rows}
    for aggregate in new:
        if aggregate.id in written:
            history.saved(aggregate, aggregate.history)
            uow.track(aggregate)
    return written


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
