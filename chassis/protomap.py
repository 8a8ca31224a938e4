"""Small helpers to map between protobuf values and domain values."""

from __future__ import annotations

import enum
import functools
import re
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf import timestamp_pb2

from chassis.errors import InvalidArgument

E = TypeVar("E", bound=enum.Enum)


def enum_prefix(enum_descriptor: Any) -> str:
    """The prefix of an enum's value names: OrderStatus -> "ORDER_STATUS_"."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum_descriptor.name).upper() + "_"


@functools.cache
def _prefix(wrapper: Any) -> str:
    return enum_prefix(wrapper.DESCRIPTOR)


# (proto enum wrapper, domain value) -> its number: looked up once, then from here (a lookup
# by name took 2 µs, ten of them in every order's message).
_NUMBERS: dict[tuple[Any, enum.Enum], int] = {}


def enum_to_proto(wrapper: Any, value: enum.Enum | None) -> Any:
    """`OrderStatus.RECEIVED` -> the number of `ORDER_STATUS_RECEIVED`; None -> 0."""
    if value is None:
        return 0
    number = _NUMBERS.get((wrapper, value))
    if number is None:
        number = _NUMBERS[(wrapper, value)] = int(wrapper.Value(_prefix(wrapper) + value.name))
    return number


def enum_from_proto(
    wrapper: Any, number: int, cls: type[E], field: str, required: bool = False
) -> E | None:
    """The domain enum of a proto enum number; None for UNSPECIFIED unless required."""
    if number == 0:
        if required:
            raise InvalidArgument(field, f"is required: one of {', '.join(m.name for m in cls)}")
        return None
    try:
        name = wrapper.Name(number).removeprefix(_prefix(wrapper))
        return cls[name]
    except (ValueError, KeyError):
        raise InvalidArgument(
            field, f"{number} is not one of {', '.join(m.name for m in cls)}"
        ) from None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    """What `Timestamp.FromDatetime` gives (a naive datetime is UTC), in a third of its time."""
    if value is None:
        return None
    since = (value if value.tzinfo is not None else value.replace(tzinfo=UTC)) - _EPOCH
    return timestamp_pb2.Timestamp(
        seconds=since.days * 86400 + since.seconds, nanos=since.microseconds * 1000
    )


def from_timestamp(message: object, field: str) -> datetime | None:
    """The datetime of an optional Timestamp field, None when unset."""
    if not message.HasField(field):  # type: ignore[attr-defined]
        return None
    value: timestamp_pb2.Timestamp = getattr(message, field)
    return value.ToDatetime(tzinfo=UTC)
