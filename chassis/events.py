"""The bases of the events aggregates record: plain dataclasses, no transport.

- `DomainEvent`: published. A service's domain declares one dataclass per event it publishes,
  named like the protobuf message it becomes (see `chassis.messaging.codec`); the unit of work
  writes it to the outbox in the transaction of the change. Every one carries its own id, when
  it happened and the id of the event that caused it, and the id of the aggregate it is about
  in the field the service's codec names (`aggregate_field`).
- `LocalEvent`: never published; it exists for the service's own effects after commit
  (`chassis.messagebus`), carrying what they need.

Both reach the effects registered for their type once the transaction that recorded them has
committed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(kw_only=True)
class DomainEvent:
    causation_id: str = ""
    event_id: str = field(default_factory=new_id)
    occur_time: datetime = field(default_factory=utcnow)


@dataclass(kw_only=True, slots=True)
class LocalEvent:
    pass


Event = DomainEvent | LocalEvent


class Aggregate:
    """An entity that records the events its state changes cause.

    The unit of work collects them from every aggregate it saw and writes them to the outbox
    in the same transaction as the state change.
    """

    def __init__(self) -> None:
        self.events: list[Event] = []

    def record(self, event: Event) -> None:
        self.events.append(event)
