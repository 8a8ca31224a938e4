"""Every domain event of both services goes through the codec and back unchanged, and every
event message of the contract is published by exactly one service."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import types
import typing
from datetime import UTC, datetime
from typing import Any

import pytest
from google.protobuf import message

from chassis.events import DomainEvent
from chassis.protomap import enum_prefix
from orders.domain import events as order_events
from orders.service_layer.unit_of_work import CODEC as ORDERS_CODEC
from payment.domain import events as payment_events
from payment.service_layer.unit_of_work import CODEC as PAYMENT_CODEC

WHEN = datetime(2026, 11, 28, 12, 30, 15, 123000, tzinfo=UTC)


def published(module: types.ModuleType) -> list[type[DomainEvent]]:
    """The events a domain module declares for publishing (not its bases)."""
    classes = [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, DomainEvent) and cls.__module__ == module.__name__
    ]
    return [cls for cls in classes if not any(c is not cls and issubclass(c, cls) for c in classes)]


EVENTS = [(cls, ORDERS_CODEC) for cls in published(order_events)] + [
    (cls, PAYMENT_CODEC) for cls in published(payment_events)
]


def sample(kind: Any, name: str, variant: int) -> Any:
    """A value of type `kind` for the field `name`; variant 1 leaves optional fields empty."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (types.UnionType, typing.Union):
        if variant == 1 and type(None) in args:
            return None
        return sample(next(a for a in args if a is not type(None)), name, variant)
    if origin is list:
        return [sample(args[0], name, variant), sample(args[0], name, variant + 1)]
    if kind is str:
        return f"{name}-{variant}"
    if kind is int:
        return 7 + variant
    if kind is datetime:
        return WHEN
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        members = list(kind)
        return members[variant % len(members)]
    if dataclasses.is_dataclass(kind):
        return build(kind, variant)  # type: ignore[arg-type]
    raise TypeError(f"no sample for {kind!r}")


def build(cls: type[Any], variant: int) -> Any:
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: sample(hints[f.name], f.name, variant) for f in dataclasses.fields(cls)})


def rebuild(cls: type[Any], msg: message.Message) -> Any:
    """The dataclass `cls` read back from its protobuf message, field by field."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        values[f.name] = read(hints[f.name], msg, f.name)
    return cls(**values)


def read(kind: Any, msg: message.Message, name: str) -> Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    field = msg.DESCRIPTOR.fields_by_name[name]
    if origin in (types.UnionType, typing.Union):
        if field.message_type is not None and not msg.HasField(name):
            return None
        kind = next(a for a in args if a is not type(None))
    value = getattr(msg, name)
    if typing.get_origin(kind) is list:
        return [rebuild(typing.get_args(kind)[0], item) for item in value]
    if kind is datetime:
        return value.ToDatetime(tzinfo=UTC)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        enum_type = field.enum_type
        assert enum_type is not None
        return kind[enum_type.values_by_number[value].name.removeprefix(enum_prefix(enum_type))]
    if dataclasses.is_dataclass(kind):
        return rebuild(kind, value)  # type: ignore[arg-type]
    return value


@pytest.mark.parametrize("variant", [0, 1, 2])
@pytest.mark.parametrize(("cls", "codec"), EVENTS, ids=[cls.__name__ for cls, _ in EVENTS])
def test_a_domain_event_goes_through_the_codec_and_back_unchanged(cls, codec, variant):
    event = build(cls, variant)
    envelope = codec.encode(event)
    assert envelope.event_type == f"{codec.package}.{cls.__name__}"
    assert envelope.aggregate_id == event.order_id
    decoded = codec.decode(envelope.event_type, envelope.payload)
    assert envelope.subject == f"{codec.subject(type(decoded))}.{event.order_id}"
    assert rebuild(cls, decoded) == event


def test_every_event_of_the_contract_is_published_by_exactly_one_service():
    declared = [cls.__name__ for cls, _ in EVENTS]
    contract = [kind.DESCRIPTOR.name for kind in ORDERS_CODEC.message_types]
    assert sorted(declared) == sorted(contract), "one domain event per event message, no more"
    assert len(set(declared)) == len(declared), f"an event declared twice: {declared}"
