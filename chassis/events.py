"""The base of domain events: plain dataclasses, no transport.

A service's domain declares one dataclass per event it publishes, named like the protobuf
message it becomes (see `chassis.messaging.codec`). Every event carries its own id, when it
happened and the id of the event that caused it; each service's events also carry the id of
the aggregate they are about, in the field its codec names (`aggregate_field`).
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


class Aggregate:
    """An entity that records the events its state changes cause.

    The unit of work collects them from every aggregate it saw and writes them to the outbox
    in the same transaction as the state change.
    """

    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    def record(self, event: DomainEvent) -> None:
        self.events.append(event)
