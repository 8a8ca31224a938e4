"""HTTP request → request message, and response message → HTTP body, for one binding.

Everything that can be worked out from the descriptors (which fields the path binds, where the
body goes, which query parameters exist and what they accept) is worked out once, when the
binding is compiled; a request only fills in values.

- Path variables are percent-decoded (routes.PathTemplate.bind) and set on their fields.
- `body: "*"` parses the JSON body into the message, `body: "<field>"` into that field, no
  body means the rest comes from the query. A body field of type google.api.HttpBody gets
  the raw bytes and the Content-Type, byte for byte.
- Query parameters name a field path (`page_size`, `pageSize`, `product.name`); repeated
  fields take the parameter several times; enums go by name (or number), Timestamps as
  RFC 3339. Any other parameter is rejected.
- Path values win over body values for the same field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from itertools import product
from typing import Any, cast
from urllib.parse import parse_qsl

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from gateway import protojson
from gateway.bindings import BindingError, HttpBinding
from gateway.errors import HttpError, bad_request

HTTP_BODY = "google.api.HttpBody"
_QUERY_WKT = {
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
    "google.protobuf.DoubleValue",
    "google.protobuf.FloatValue",
    "google.protobuf.Int64Value",
    "google.protobuf.UInt64Value",
    "google.protobuf.Int32Value",
    "google.protobuf.UInt32Value",
    "google.protobuf.BoolValue",
    "google.protobuf.StringValue",
    "google.protobuf.BytesValue",
}
_MAX_DEPTH = 5
_FAILED = re.compile(r"Failed to parse (\S+) field: ")
_NO_FIELD = re.compile(r'has no field named "([^"]+)"')
_WHERE = re.compile(r" at [\w.\[\]\"]+\.?$")  # json_format's " at Message.field" suffix
_NOT_INT = re.compile(r"invalid literal for int\(\) with base 10: (.*)")
_TRUE, _FALSE = frozenset({"true", "1"}), frozenset({"false", "0"})
NO_BODY, JSON_ALL, JSON_FIELD, RAW_ALL, RAW_FIELD = range(5)


@dataclass(frozen=True)
class QueryParam:
    path: tuple[str, ...]  # proto field names from the request message down
    leaf: FieldDescriptor

    @property
    def name(self) -> str:
        return ".".join(self.path)

    @property
    def repeated(self) -> bool:
        return bool(self.leaf.is_repeated)


class RequestMapper:
    """How one binding turns an HTTP request into its request message."""

    def __init__(self, binding: HttpBinding) -> None:
        self.binding = binding
        self.message_class = binding.rpc.request
        descriptor = cast(Descriptor, self.message_class.DESCRIPTOR)
        label = f"{binding.rpc.label} ({binding.method} {binding.template.text})"
        # Path variables: (variable, fields from the message down, whether a plain string).
        self.path_fields: list[tuple[str, tuple[FieldDescriptor, ...], bool]] = []
        for var in binding.template.variables:
            fields = field_path(descriptor, var.field_path, label)
            leaf = fields[-1]
            if leaf.is_repeated or leaf.message_type is not None:
                raise BindingError(
                    f"{label}: path variable {var.field_path} must be a primitive field"
                )
            self.path_fields.append(
                (var.field_path, fields, leaf.type == FieldDescriptor.TYPE_STRING)
            )
        bound = {tuple(f.name for f in fields) for _, fields, _ in self.path_fields}
        # The body.
        self.body_field: FieldDescriptor | None = None
        if binding.body == "":
            self.body_mode = NO_BODY
        elif binding.body == "*":
            self.body_mode = RAW_ALL if descriptor.full_name == HTTP_BODY else JSON_ALL
        else:
            self.body_field = descriptor.fields_by_name.get(binding.body)
            if self.body_field is None:
                raise BindingError(
                    f"{label}: body {binding.body!r} is not a field of {descriptor.full_name}"
                )
            is_raw = (
                self.body_field.message_type is not None
                and self.body_field.message_type.full_name == HTTP_BODY
            )
            self.body_mode = RAW_FIELD if is_raw and not self.body_field.is_repeated else JSON_FIELD
        # Query parameters: every leaf neither bound by the path nor inside the body.
        self.query: dict[str, QueryParam] = {}
        if self.body_mode not in (JSON_ALL, RAW_ALL):
            skip = {(self.body_field.name,)} if self.body_field is not None else set()
            for param, spellings in _query_params(
                descriptor, (), bound | skip, {descriptor.full_name}
            ):
                for spelling in spellings:
                    self.query[spelling] = param
        request_id = descriptor.fields_by_name.get("request_id")
        self.fills_request_id = (
            request_id is not None and request_id.type == FieldDescriptor.TYPE_STRING
        )

    @property
    def takes_body(self) -> bool:
        return self.body_mode != NO_BODY

    @property
    def raw_body(self) -> bool:
        return self.body_mode in (RAW_ALL, RAW_FIELD)

    def query_params(self) -> list[QueryParam]:
        """Each query parameter once (by its proto field path)."""
        return list({param.name: param for param in self.query.values()}.values())

    def build(
        self,
        variables: dict[str, str],
        query_string: bytes,
        body: bytes,
        content_type: str,
        idempotency_key: str,
    ) -> Message:
        """The request message; raises HttpError (400) naming what is wrong."""
        message = self.message_class()
        mode = self.body_mode
        if mode == JSON_ALL and body:
            document = _json(body)
            if not isinstance(document, dict):
                raise bad_request("", "the request body must be a JSON object")
            _parse(document, message)
        elif mode == JSON_FIELD and body:
            assert self.body_field is not None
            _parse({self.body_field.name: _json(body)}, message)
        elif mode == RAW_FIELD:
            assert self.body_field is not None
            raw = getattr(message, self.body_field.name)
            raw.content_type, raw.data = content_type, body
        elif mode == RAW_ALL:
            message.content_type, message.data = content_type, body  # type: ignore[attr-defined]
        nested: dict[str, Any] = {}
        for name, fields, plain in self.path_fields:
            value = variables[name]
            if plain and len(fields) == 1:
                setattr(message, fields[0].name, value)
            else:
                _put(nested, tuple(f.name for f in fields), _scalar(fields[-1], name, value))
        if query_string:
            self._query(query_string, nested)
        if nested:
            _parse(nested, message)
        if self.fills_request_id and idempotency_key and not message.request_id:  # type: ignore[attr-defined]
            message.request_id = idempotency_key  # type: ignore[attr-defined]
        return message

    def _query(self, query_string: bytes, nested: dict[str, Any]) -> None:
        try:
            pairs = parse_qsl(
                query_string.decode("latin-1"), keep_blank_values=True, errors="strict"
            )
        except UnicodeDecodeError:
            raise bad_request("", "the query string is not valid UTF-8") from None
        given: dict[str, list[str]] = {}
        unknown = []
        for key, value in pairs:
            param = self.query.get(key)
            if param is None:
                unknown.append(key)
            else:
                given.setdefault(param.name, []).append(value)
        if unknown:
            names = ", ".join(sorted(set(unknown)))
            allowed = ", ".join(sorted(p.name for p in self.query_params())) or "none"
            raise bad_request(
                unknown[0],
                f"unknown query parameter (allowed: {allowed})",
                f"unknown query parameter{'s' if len(set(unknown)) > 1 else ''}: {names}",
            )
        for name, values in given.items():
            param = self.query[name]
            if not param.repeated and len(values) > 1:
                raise bad_request(name, "given more than once; it takes one value")
            converted = [_scalar(param.leaf, name, v) for v in values]
            _put(nested, param.path, converted if param.repeated else converted[0])


class ResponseRenderer:
    """How one binding turns the response message into the HTTP body."""

    def __init__(self, binding: HttpBinding) -> None:
        descriptor = cast(Descriptor, binding.rpc.response.DESCRIPTOR)
        self.field: FieldDescriptor | None = None
        if binding.response_body:
            self.field = descriptor.fields_by_name.get(binding.response_body)
            if self.field is None:
                raise BindingError(
                    f"{binding.rpc.label}: response_body {binding.response_body!r} is not a "
                    f"field of {descriptor.full_name}"
                )
        target = self.field.message_type if self.field is not None else descriptor
        self.raw = (
            target is not None
            and target.full_name == HTTP_BODY
            and not (self.field is not None and self.field.is_repeated)
        )

    def value(self, message: Message) -> Any:
        """The JSON-ready body (for streams: the `result` of one message)."""
        if self.field is None:
            return protojson.to_dict(message)
        if self.field.message_type is not None and not self.field.is_repeated:
            return protojson.to_dict(getattr(message, self.field.name))
        return protojson.to_dict(message).get(self.field.json_name)

    def render(self, message: Message) -> tuple[bytes, bytes]:
        """(body, content type)."""
        if self.raw:
            raw: Any = getattr(message, self.field.name) if self.field is not None else message
            return bytes(raw.data), (raw.content_type or "application/octet-stream").encode(
                "latin-1"
            )
        return protojson.dumps(self.value(message)), b"application/json"


# -- helpers ------------------------------------------------------------------------------
def field_path(descriptor: Descriptor, dotted: str, label: str) -> tuple[FieldDescriptor, ...]:
    """The fields a dotted path names, from `descriptor` down."""
    fields: list[FieldDescriptor] = []
    current: Descriptor | None = descriptor
    for part in dotted.split("."):
        field = current.fields_by_name.get(part) if current is not None else None
        if field is None or (fields and fields[-1].is_repeated):
            raise BindingError(f"{label}: {dotted!r} is not a field path of {descriptor.full_name}")
        fields.append(field)
        current = field.message_type
    return tuple(fields)


def _query_params(
    descriptor: Descriptor,
    prefix: tuple[FieldDescriptor, ...],
    excluded: set[tuple[str, ...]],
    seen: set[str],
) -> list[tuple[QueryParam, list[str]]]:
    found = []
    for field in descriptor.fields:
        fields = (*prefix, field)
        path = tuple(f.name for f in fields)
        if path in excluded:
            continue
        message = field.message_type
        if message is not None and message.GetOptions().map_entry:
            continue
        if message is not None and message.full_name not in _QUERY_WKT:
            too_deep = len(fields) >= _MAX_DEPTH or message.full_name in seen
            if field.is_repeated or too_deep or message.full_name.startswith("google."):
                continue
            found += _query_params(message, fields, excluded, seen | {message.full_name})
            continue
        if message is not None and field.is_repeated:
            continue  # repeated messages cannot be query parameters
        spellings = [".".join(names) for names in product(*({f.name, f.json_name} for f in fields))]
        found.append((QueryParam(path, field), sorted(spellings)))
    return found


def _scalar(field: FieldDescriptor, name: str, text: str) -> Any:
    """A path or query value in the form json_format accepts for the field."""
    is_bool = field.type == FieldDescriptor.TYPE_BOOL or (
        field.message_type is not None
        and field.message_type.full_name == "google.protobuf.BoolValue"
    )
    if is_bool:
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise bad_request(name, f"expected true or false, got {text!r}")
    return text


def _put(nested: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for name in path[:-1]:
        nested = nested.setdefault(name, {})
    nested[path[-1]] = value


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad_request("", f"the request body is not valid JSON: {exc}") from None


def _parse(document: dict[str, Any], message: Message) -> None:
    try:
        json_format.ParseDict(document, message)
    except json_format.ParseError as exc:
        raise parse_error(exc) from None
    except (ValueError, TypeError, AttributeError) as exc:  # odd shapes json_format does not catch
        raise bad_request(
            "", f"the request does not fit {message.DESCRIPTOR.name}: {exc}"
        ) from None


def parse_error(exc: Exception) -> HttpError:
    """json_format's complaint as INVALID_ARGUMENT naming the field (dotted path)."""
    text = str(exc).split("\n", 1)[0]
    names = _FAILED.findall(text)
    description = _FAILED.sub("", text)
    unknown = _NO_FIELD.search(description)
    if unknown:
        names.append(unknown.group(1))
        description = "unknown field"
    description = _WHERE.sub("", description.strip()).rstrip(".")
    description = _NOT_INT.sub(r"expected an integer, got \1", description)
    return bad_request(".".join(names), description)
