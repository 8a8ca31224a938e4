"""Small helpers to map between protobuf values and domain values."""

from __future__ import annotations

import enum
import re
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf import timestamp_pb2

from chassis.errors import InvalidArgument

E = TypeVar("E", bound=enum.Enum)


def enum_prefix(enum_descriptor: Any) -> str:
    """The prefix of an enum's value names: OrderStatus -> "ORDER_STATUS_"."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum_descriptor.name).upper() + "_"


def _prefix(wrapper: Any) -> str:
    return enum_prefix(wrapper.DESCRIPTOR)


def enum_to_proto(wrapper: Any, value: enum.Enum | None) -> Any:
    """`OrderStatus.RECEIVED` -> the number of `ORDER_STATUS_RECEIVED`; None -> 0."""
    if value is None:
        return 0
    return int(wrapper.Value(_prefix(wrapper) + value.name))


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


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def from_timestamp(message: object, field: str) -> datetime | None:
    """The datetime of an optional Timestamp field, None when unset."""
    if not message.HasField(field):  # type: ignore[attr-defined]
        return None
    value: timestamp_pb2.Timestamp = getattr(message, field)
    return value.ToDatetime(tzinfo=UTC)
