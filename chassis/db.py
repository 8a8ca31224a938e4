"""The database: engine on postgresql+psycopg2, and the unit of work.

A unit of work is one transaction. The aggregates it saw record events; the published ones
become outbox rows in that same transaction (no dual writes): a repository may write them in
the statement that stores the state changes (`take_events`, `chassis.repository.StateChanges`,
which repositories run at the commit: `before_commit`); whatever is left is written on commit.
After the commit the unit of work tells the relay there is something to publish, and hands
every event it committed to the service's effects.
`reading()` makes a unit of work for reads only (autocommit, no transaction).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar, NamedTuple, Self

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from chassis import faults, logs
from chassis.config import redact_url
from chassis.events import Aggregate, DomainEvent, Event
from chassis.messaging.codec import ACTOR_HEADER, REQUEST_ID_HEADER, EventCodec
from chassis.messaging.schema import outbox

log = logging.getLogger(__name__)


class DatabaseUnavailable(Exception):
    """The database cannot be reached (one-line reason)."""


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database is away (cannot be reached, dropped the connection,
    or has no connection to spare), which says nothing about the request or message at hand:
    an RPC answers UNAVAILABLE, a consumer pauses instead of spending the message's
    deliveries. A lost race (`conflict`) is not the database being away."""
    if conflict(exc):
        return False
    if isinstance(exc, DatabaseUnavailable):
        return True
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.TimeoutError)


# SQLSTATEs of a transaction that lost a race and only needs to run again.
_CONFLICTS = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected


def conflict(exc: BaseException) -> bool:
    """Whether `exc` is a deadlock or serialization failure: the transaction lost a race and
    can simply run again."""
    return getattr(getattr(exc, "orig", None), "pgcode", None) in _CONFLICTS


def create_engine(url: str, pool_size: int = 10, connect_timeout: int = 5) -> Engine:
    return sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping (a round trip per transaction): a connection broken by a database
        # restart fails its statement, SQLAlchemy then discards the whole pool, and the caller
        # gets UNAVAILABLE (an RPC) or pauses until the database is back (a consumer).
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={"connect_timeout": connect_timeout, "application_name": "comanda"},
    )


def first_line(exc: BaseException) -> str:
    """A database error in one line: the driver's own message (or the error's type)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_connection(engine: Engine) -> None:
    """Raise DatabaseUnavailable with a one-line reason if the database cannot be used."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.SQLAlchemyError as exc:
        if not unavailable(exc):
            raise
        reason = first_line(exc)
        raise DatabaseUnavailable(
            f"cannot connect to the database at "
            f"{redact_url(engine.url.render_as_string())}: {reason}"
        ) from None


class Origin(NamedTuple):
    """Where a change came from: the request id and, for a staff call, the acting staff
    member. A unit of work written for many callers at once (a batch) keeps each aggregate's
    own (`UnitOfWork.origins`); otherwise it is the current call's (`Origin.current()`)."""

    request_id: str
    actor: str

    @classmethod
    def current(cls) -> Origin:
        return cls(logs.request_id_var.get(), logs.actor_var.get())


def outbox_rows(
    codec: EventCodec, events: list[DomainEvent], origins: dict[str, Origin] | None = None
) -> list[dict[str, Any]]:
    """Outbox rows (encoded events) carrying in their headers the origin of their aggregate
    in `origins`, or else the current call's."""
    current = Origin.current()
    rows = []
    for event in events:
        envelope = codec.encode(event)
        request_id, actor = (origins or {}).get(envelope.aggregate_id, current)
        headers = {REQUEST_ID_HEADER: request_id} if request_id else {}
        if actor:
            headers[ACTOR_HEADER] = actor
        rows.append(
            {
                "event_id": envelope.event_id,
                "event_type": envelope.event_type,
                "subject": envelope.subject,
                "aggregate_id": envelope.aggregate_id,
                "payload": envelope.payload,
                "headers": headers,
            }
        )
    return rows


class UnitOfWork:
    """One transaction; subclass it to add a service's repositories in `_open` and to give
    the codec of its events (`codec`).

    It collects the events of the aggregates it tracks (those a repository loaded or wrote):
    the published ones become outbox rows in this transaction, and once it has committed all
    of them go to `effects` (the service's message bus), which runs what must follow them.
    """

    codec: ClassVar[EventCodec]
    connection: Connection

    def __init__(
        self,
        engine: Engine,
        on_commit: Callable[[], None] | None = None,
        effects: Callable[[list[Event]], None] | None = None,
    ) -> None:
        self.engine = engine
        self._on_commit = on_commit
        self._effects = effects
        self._read_only = False

    def _forget(self) -> None:
        self._seen: dict[Aggregate, None] = {}  # an ordered set
        # aggregate -> how many of its recorded events the outbox already has (written by a
        # repository's statement, or flushed)
        self._written: dict[Aggregate, int] = {}
        self._wrote_events = False
        self._pending_rows: list[dict[str, Any]] = []
        # aggregate id -> the origin its events carry, when one transaction works for
        # several requests or messages (a group commit, a consumer's batch)
        self.origins: dict[str, Origin] = {}

    def reading(self) -> Self:
        """Use this unit of work for reads only: each statement runs on its own (autocommit),
        which saves the BEGIN/ROLLBACK round trip of a transaction that writes nothing."""
        self._read_only = True
        return self

    def __enter__(self) -> Self:
        self.connection = self.engine.connect()
        if self._read_only:
            self.connection = self.connection.execution_options(isolation_level="AUTOCOMMIT")
        self._transaction = self.connection.begin()
        self._forget()
        self._before_commit: list[Callable[[], None]] = []
        self._open()
        return self

    def _open(self) -> None:
        """Hook for subclasses: create repositories on `self.connection`."""

    def lock(self, aggregate_ids: list[str]) -> None:
        """Lock and load, in one go, the aggregates a batch of messages is about, before its
        handlers run (which then find them loaded): a consumer's batch costs a few statements,
        not a read per message. The rows are taken in id order, the one order every
        transaction that locks several aggregates uses. A subclass whose handlers change
        aggregates overrides it; by default it does nothing."""

    def before_commit(self, write: Callable[[], None]) -> None:
        """Have `write` run at the commit, before the events are stored: a repository writes
        there the state changes it deferred (one statement for all of them)."""
        self._before_commit.append(write)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._transaction.is_active:
                self._transaction.rollback()
        finally:
            self.connection.close()

    def track(self, aggregate: Aggregate) -> None:
        """Remember an aggregate that is in the database (loaded, or written by this
        transaction): its recorded events are stored on commit and then handed to `effects`."""
        self._seen[aggregate] = None

    def take_events(self, aggregate: Aggregate) -> list[dict[str, Any]]:
        """The outbox rows of an aggregate's new published events, for a repository that
        writes them in its own statement (one round trip for the state change and its events).
        They are not written again on commit; they count only if the aggregate is tracked (a
        statement that wrote nothing leaves it untracked)."""
        start = self._written.get(aggregate, 0)
        new = aggregate.events[start:] if start else aggregate.events
        rows = outbox_rows(self.codec, _published(new), self.origins)
        self._written[aggregate] = len(aggregate.events)
        self._wrote_events = self._wrote_events or bool(rows)
        return rows

    def flush_events(self) -> None:
        """Encode the published events recorded so far (with the current request id) for the
        commit."""
        for aggregate in self._seen:  # the consumer flushes after each event of a batch
            if len(aggregate.events) > self._written.get(aggregate, 0):
                self._pending_rows.extend(self.take_events(aggregate))

    def commit(self) -> None:
        for write in self._before_commit:
            write()
        self.flush_events()
        rows, self._pending_rows = self._pending_rows, []
        if rows:
            self.connection.execute(outbox.insert(), rows)
        self._transaction.commit()
        wrote = self._wrote_events
        if wrote:
            faults.crash("outbox.after_commit")
        events = [event for aggregate in self._seen for event in aggregate.events]
        for aggregate in self._seen:
            aggregate.events.clear()
        self._forget()
        if wrote and self._on_commit is not None:
            self._on_commit()
        if events and self._effects is not None:
            self._effects(events)

    def rollback(self) -> None:
        """Undo everything, in the database and in the repositories (made afresh)."""
        self._transaction.rollback()
        self._transaction = self.connection.begin()
        self._forget()
        self._before_commit = []
        self._open()


def _published(events: list[Event]) -> list[DomainEvent]:
    return [event for event in events if isinstance(event, DomainEvent)]
