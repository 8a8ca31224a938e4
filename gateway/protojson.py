"""The proto3 JSON mapping of outgoing messages, compiled once per message type.

`to_dict(message)` gives what `json_format.MessageToDict(message,
always_print_fields_with_no_presence=True)` gives (lowerCamelCase names, enums by name, 64-bit
integers as strings, bytes as base64, Timestamps as RFC 3339, fields without presence always
present), several times faster: the fields of each type and their converters are worked out
the first time the type is seen, not on every message. The well-known types other than
Timestamp, Duration and FieldMask are left to json_format. The tests compare both.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Callable
from typing import Any, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.internal import type_checkers
from google.protobuf.message import Message

Writer = Callable[[Any], Any]

_INT64 = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}
_AS_STRING = {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"}
_PLAIN, _CONVERTED, _PRESENT, _REPEATED, _MAP = range(5)
_writers: dict[str, Writer] = {}


def to_dict(message: Message) -> Any:
    """The message as JSON-ready Python values."""
    return writer(cast(Descriptor, message.DESCRIPTOR))(message)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def writer(descriptor: Descriptor) -> Writer:
    """The compiled converter of one message type."""
    found = _writers.get(descriptor.full_name)
    if found is None:
        found = _compile(descriptor)
    return found


def _compile(descriptor: Descriptor) -> Writer:
    name = descriptor.full_name
    if name == "google.protobuf.Timestamp":
        _writers[name] = timestamp_string
        return timestamp_string
    if name in _AS_STRING:
        _writers[name] = _to_json_string
        return _to_json_string
    if name.startswith("google.protobuf."):
        _writers[name] = _by_json_format
        return _by_json_format
    # Recursive types: nested references resolve through the table once it is filled.
    _writers[name] = lambda message: _writers[name](message)
    plan: list[tuple[str, str, int, Writer | None]] = []
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_field = field.message_type.fields_by_name["key"]
            value_conv = _converter(field.message_type.fields_by_name["value"])
            bool_keys = key_field.type == FieldDescriptor.TYPE_BOOL
            plan.append((field.name, field.json_name, _MAP, _map_writer(value_conv, bool_keys)))
            continue
        conv = _converter(field)
        if field.is_repeated:
            plan.append((field.name, field.json_name, _REPEATED, conv))
        elif field.has_presence:
            plan.append((field.name, field.json_name, _PRESENT, conv or _identity))
        else:
            plan.append((field.name, field.json_name, _CONVERTED if conv else _PLAIN, conv))
    steps = tuple(plan)

    def write(message: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field_name, key, mode, conv in steps:
            if mode == _PLAIN:
                out[key] = getattr(message, field_name)
            elif mode == _CONVERTED:
                out[key] = conv(getattr(message, field_name))  # type: ignore[misc]
            elif mode == _PRESENT:
                if message.HasField(field_name):
                    out[key] = conv(getattr(message, field_name))  # type: ignore[misc]
            elif mode == _REPEATED:
                values = getattr(message, field_name)
                out[key] = [conv(v) for v in values] if conv else list(values)
            else:
                out[key] = conv(getattr(message, field_name))  # type: ignore[misc]
        return out

    _writers[name] = write
    return write


def _converter(field: FieldDescriptor) -> Writer | None:
    """How one value of the field becomes JSON; None when it is already JSON-ready."""
    if field.message_type is not None:
        return writer(field.message_type)
    if field.enum_type is not None:
        if field.enum_type.full_name == "google.protobuf.NullValue":
            return lambda _value: None
        names = {v.number: v.name for v in field.enum_type.values}
        return lambda value: names.get(value, value)
    if field.type in _INT64:
        return str
    if field.type == FieldDescriptor.TYPE_BYTES:
        return lambda value: base64.b64encode(value).decode()
    if field.type == FieldDescriptor.TYPE_DOUBLE:
        return _double
    if field.type == FieldDescriptor.TYPE_FLOAT:
        return _float
    return None


def _map_writer(value_conv: Writer | None, bool_keys: bool) -> Writer:
    def write(mapping: Any) -> dict[str, Any]:
        out = {}
        for key, value in mapping.items():
            text = ("true" if key else "false") if bool_keys else str(key)
            out[text] = value_conv(value) if value_conv else value
        return out

    return write


def _identity(value: Any) -> Any:
    return value


def _special(value: float) -> str | None:
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    return "NaN" if math.isnan(value) else None


def _double(value: float) -> float | str:
    special = _special(value)
    return value if special is None else special


def _float(value: float) -> float | str:
    special = _special(value)
    return type_checkers.ToShortestFloat(value) if special is None else special


def _to_json_string(message: Any) -> str:
    return str(message.ToJsonString())


# The range of a valid Timestamp: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799
_dates: dict[int, str] = {}  # "YYYY-MM-DDT" of a day since the epoch


def timestamp_string(message: Any) -> str:
    """What `Timestamp.ToJsonString` gives (RFC 3339 in UTC, with 0, 3, 6 or 9 fractional
    digits) in half its time: the date of each day is formatted once, not through a datetime
    and a timedelta at every one of an order's eight timestamps. Out of range, ToJsonString
    itself raises, as json_format would."""
    seconds, nanos = message.seconds, message.nanos
    if not (_MIN_SECONDS <= seconds <= _MAX_SECONDS and 0 <= nanos < 1_000_000_000):
        return _to_json_string(message)
    days, rest = divmod(seconds, 86_400)
    date = _dates.get(days)
    if date is None:
        if len(_dates) > 4096:
            _dates.clear()
        day = time.gmtime(days * 86_400)
        date = _dates[days] = f"{day.tm_year:04d}-{day.tm_mon:02d}-{day.tm_mday:02d}T"
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    text = f"{date}{hours:02d}:{minutes:02d}:{secs:02d}"
    if nanos == 0:
        return text + "Z"
    if nanos % 1_000_000 == 0:
        return f"{text}.{nanos // 1_000_000:03d}Z"
    if nanos % 1_000 == 0:
        return f"{text}.{nanos // 1_000:06d}Z"
    return f"{text}.{nanos:09d}Z"


def _by_json_format(message: Any) -> Any:
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
