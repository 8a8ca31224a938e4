"""Domain events to protobuf and back.

A domain event dataclass `X` becomes the message `comanda.events.v1.X`, field by field:
datetimes become Timestamps, Python enums become the proto enum value with the same name
after the type prefix (`OrderStatus.RECEIVED` -> `ORDER_STATUS_RECEIVED`), nested
dataclasses become nested messages. The subject comes from the message's `event_subject`
option, followed by the order id.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf import message

from chassis.events import DomainEvent
from chassis.protomap import enum_prefix
from comanda.events.v1 import events_pb2
from comanda.options.v1 import options_pb2

EVENT_TYPE_HEADER = "Comanda-Event-Type"
REQUEST_ID_HEADER = "X-Request-Id"
MSG_ID_HEADER = "Nats-Msg-Id"


class UndecodableEvent(Exception):
    """A message that no retry can make readable: unknown type or corrupt payload."""


@dataclass(frozen=True)
class Envelope:
    """An event ready for the outbox and JetStream."""

    event_id: str
    event_type: str
    subject: str
    order_id: str
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


@functools.cache
def _event(event_type: str) -> tuple[type[message.Message], str]:
    """An event's message class and subject prefix (looked up once per type)."""
    package, _, name = event_type.rpartition(".")
    cls = getattr(events_pb2, name, None) if package == events_pb2.DESCRIPTOR.package else None
    subject = str(cls.DESCRIPTOR.GetOptions().Extensions[options_pb2.event_subject]) if cls else ""
    if cls is None or not subject:
        raise UndecodableEvent(f"unknown event type {event_type!r}")
    return cls, subject


def event_class(event_type: str) -> type[message.Message]:
    return _event(event_type)[0]


def encode(event: DomainEvent) -> Envelope:
    event_type = f"{events_pb2.DESCRIPTOR.package}.{type(event).__name__}"
    cls, prefix = _event(event_type)
    msg = cls()
    _fill(msg, event)
    return Envelope(
        event_id=event.event_id,
        event_type=event_type,
        subject=f"{prefix}.{event.order_id}",
        order_id=event.order_id,
        payload=msg.SerializeToString(),
    )


def decode(event_type: str | None, payload: bytes) -> Any:
    """The protobuf message of a received event; UndecodableEvent when it cannot be."""
    if not event_type:
        raise UndecodableEvent(f"missing {EVENT_TYPE_HEADER} header")
    msg = event_class(event_type)()
    try:
        msg.ParseFromString(payload)
    except message.DecodeError as exc:
        raise UndecodableEvent(f"corrupt {event_type} payload: {exc}") from exc
    if not getattr(msg, "event_id", "") or not getattr(msg, "order_id", ""):
        raise UndecodableEvent(f"{event_type} without event_id or order_id")
    return msg
