"""Domain events to protobuf and back, for the event messages a service hands it.

A service makes one `EventCodec` from the generated module of its events' proto file and the
name of the field that carries the aggregate's id. Every message of that file with the
`event_subject` option is an event: a domain event dataclass `X` becomes the message `X`,
field by field (datetimes become Timestamps, Python enums the proto enum value with the same
name after the type prefix, `OrderStatus.RECEIVED` -> `ORDER_STATUS_RECEIVED`, nested
dataclasses nested messages), published under its subject followed by the aggregate's id.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from datetime import datetime
from types import ModuleType
from typing import Any

from google.protobuf import message

from chassis.events import DomainEvent
from chassis.protomap import enum_prefix
from comanda.options.v1 import options_pb2

EVENT_TYPE_HEADER = "Comanda-Event-Type"
REQUEST_ID_HEADER = "X-Request-Id"
# The staff member whose call caused the event (their token's `sub`); absent otherwise.
ACTOR_HEADER = "Comanda-Actor"
MSG_ID_HEADER = "Nats-Msg-Id"


class UndecodableEvent(Exception):
    """A message that no retry can make readable: unknown type or corrupt payload."""


@dataclass(frozen=True)
class Envelope:
    """An event ready for the outbox and JetStream."""

    event_id: str
    event_type: str
    subject: str
    aggregate_id: str
    payload: bytes


def _fill(msg: message.Message, obj: Any) -> None:
    fields = msg.DESCRIPTOR.fields_by_name
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        fd = fields.get(f.name)
        if fd is None:
            raise TypeError(f"{type(msg).__name__} has no field {f.name!r}")
        if value is None:
            continue
        if isinstance(value, datetime):
            getattr(msg, f.name).FromDatetime(value)
        elif isinstance(value, enum.Enum):
            enum_type = fd.enum_type
            assert enum_type is not None
            setattr(
                msg, f.name, enum_type.values_by_name[enum_prefix(enum_type) + value.name].number
            )
        elif isinstance(value, list | tuple):
            container = getattr(msg, f.name)
            for item in value:
                if dataclasses.is_dataclass(item):
                    _fill(container.add(), item)
                else:
                    container.append(item)
        elif dataclasses.is_dataclass(value):
            _fill(getattr(msg, f.name), value)
        else:
            setattr(msg, f.name, value)


class EventCodec:
    def __init__(self, events: ModuleType, aggregate_field: str) -> None:
        """`events`: the generated module of a proto file (e.g. `events_pb2`);
        `aggregate_field`: the field every event names its aggregate's id in."""
        self.aggregate_field = aggregate_field
        self.package: str = events.DESCRIPTOR.package
        # message full name -> (message class, subject prefix), for every event message
        self._events: dict[str, tuple[type[message.Message], str]] = {}
        for name, descriptor in events.DESCRIPTOR.message_types_by_name.items():
            subject = str(descriptor.GetOptions().Extensions[options_pb2.event_subject])
            if subject:
                if aggregate_field not in descriptor.fields_by_name:
                    raise TypeError(f"{descriptor.full_name} has no field {aggregate_field!r}")
                self._events[descriptor.full_name] = (getattr(events, name), subject)

    @property
    def message_types(self) -> list[type[message.Message]]:
        """Every event message, in the order the proto file declares them."""
        return [cls for cls, _ in self._events.values()]

    @property
    def subjects(self) -> list[str]:
        """Every event's subject prefix, in the order the proto file declares them."""
        return [subject for _, subject in self._events.values()]

    def is_event(self, message_type: type[Any]) -> bool:
        name = getattr(getattr(message_type, "DESCRIPTOR", None), "full_name", "")
        known = self._events.get(name)
        return known is not None and known[0] is message_type

    def subject(self, message_type: type[Any]) -> str:
        """The subject prefix of an event message type; TypeError for any other type."""
        if not self.is_event(message_type):
            raise TypeError(f"{message_type!r} is not an event of {self.package}")
        return self._events[message_type.DESCRIPTOR.full_name][1]

    def encode(self, event: DomainEvent) -> Envelope:
        event_type = f"{self.package}.{type(event).__name__}"
        cls, prefix = self._event(event_type)
        msg = cls()
        _fill(msg, event)
        aggregate_id = str(getattr(event, self.aggregate_field))
        return Envelope(
            event_id=event.event_id,
            event_type=event_type,
            subject=f"{prefix}.{aggregate_id}",
            aggregate_id=aggregate_id,
            payload=msg.SerializeToString(),
        )

    def decode(self, event_type: str | None, payload: bytes) -> Any:
        """The protobuf message of a received event; UndecodableEvent when it cannot be."""
        if not event_type:
            raise UndecodableEvent(f"missing {EVENT_TYPE_HEADER} header")
        msg = self._event(event_type)[0]()
        try:
            msg.ParseFromString(payload)
        except message.DecodeError as exc:
            raise UndecodableEvent(f"corrupt {event_type} payload: {exc}") from exc
        if not getattr(msg, "event_id", "") or not getattr(msg, self.aggregate_field, ""):
            raise UndecodableEvent(f"{event_type} without event_id or {self.aggregate_field}")
        return msg

    def aggregate_id(self, msg: Any) -> str:
        """The aggregate id a decoded event message carries."""
        return str(getattr(msg, self.aggregate_field))

    def _event(self, event_type: str) -> tuple[type[message.Message], str]:
        known = self._events.get(event_type)
        if known is None:
            raise UndecodableEvent(f"unknown event type {event_type!r}")
        return known
