"""A synthetic API, registered in the default descriptor pool, with what the real protos do
not use: repeated and nested query parameters, bools, wrappers, maps, multi-segment variables,
additional bindings, custom methods, response_body and a whole-message HttpBody."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from google.api import annotations_pb2, http_pb2, httpbody_pb2
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    field_mask_pb2,
    message_factory,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)

from gateway.api import Api

PACKAGE = "gatewaytest.v1"
F = descriptor_pb2.FieldDescriptorProto
_ = (field_mask_pb2, struct_pb2, timestamp_pb2, wrappers_pb2, httpbody_pb2)  # in the pool


def _field(
    message: Any,
    name: str,
    number: int,
    kind: int,
    type_name: str = "",
    repeated: bool = False,
    proto3_optional: bool = False,
) -> None:
    field = message.field.add(name=name, number=number, type=kind)
    field.label = F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL
    if type_name:
        field.type_name = type_name
    if proto3_optional:
        field.proto3_optional = True
        message.oneof_decl.add(name=f"_{name}")
        field.oneof_index = len(message.oneof_decl) - 1


def _build() -> descriptor_pb2.FileDescriptorProto:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="gatewaytest/v1/test.proto",
        package=PACKAGE,
        syntax="proto3",
        dependency=[
            "google/protobuf/timestamp.proto",
            "google/protobuf/wrappers.proto",
            "google/protobuf/field_mask.proto",
            "google/protobuf/struct.proto",
            "google/api/annotations.proto",
            "google/api/httpbody.proto",
        ],
    )
    color = fdp.enum_type.add(name="Color")
    for number, name in enumerate(["COLOR_UNSPECIFIED", "COLOR_RED", "COLOR_BLUE"]):
        color.value.add(name=name, number=number)

    flt = fdp.message_type.add(name="Filter")
    _field(flt, "kind", 1, F.TYPE_STRING)
    _field(flt, "sizes", 2, F.TYPE_INT32, repeated=True)
    _field(flt, "inner", 3, F.TYPE_MESSAGE, f".{PACKAGE}.Filter")  # recursive

    shelf = fdp.message_type.add(name="Shelf")
    _field(shelf, "name", 1, F.TYPE_STRING)
    _field(shelf, "tags", 2, F.TYPE_STRING, repeated=True)
    _field(shelf, "open", 3, F.TYPE_BOOL)
    _field(shelf, "book_count", 4, F.TYPE_INT64)
    _field(shelf, "filter", 5, F.TYPE_MESSAGE, f".{PACKAGE}.Filter")
    _field(shelf, "filters", 6, F.TYPE_MESSAGE, f".{PACKAGE}.Filter", repeated=True)
    entry = shelf.nested_type.add(name="LabelsEntry")
    entry.options.map_entry = True
    _field(entry, "key", 1, F.TYPE_STRING)
    _field(entry, "value", 2, F.TYPE_INT64)
    _field(shelf, "labels", 7, F.TYPE_MESSAGE, f".{PACKAGE}.Shelf.LabelsEntry", repeated=True)
    _field(shelf, "since", 8, F.TYPE_MESSAGE, ".google.protobuf.Timestamp")
    _field(shelf, "flag", 9, F.TYPE_MESSAGE, ".google.protobuf.BoolValue")
    _field(shelf, "color", 10, F.TYPE_ENUM, f".{PACKAGE}.Color")
    _field(shelf, "ratio", 11, F.TYPE_DOUBLE)
    _field(shelf, "blob", 12, F.TYPE_BYTES)
    _field(shelf, "note", 13, F.TYPE_STRING, proto3_optional=True)
    _field(shelf, "weight", 14, F.TYPE_FLOAT)
    _field(shelf, "extra", 15, F.TYPE_MESSAGE, ".google.protobuf.Struct")
    _field(shelf, "count32", 16, F.TYPE_UINT32)
    _field(shelf, "colors", 17, F.TYPE_ENUM, f".{PACKAGE}.Color", repeated=True)
    bool_entry = shelf.nested_type.add(name="FlagsEntry")
    bool_entry.options.map_entry = True
    _field(bool_entry, "key", 1, F.TYPE_BOOL)
    _field(bool_entry, "value", 2, F.TYPE_MESSAGE, f".{PACKAGE}.Filter")
    _field(shelf, "flags", 18, F.TYPE_MESSAGE, f".{PACKAGE}.Shelf.FlagsEntry", repeated=True)

    get = fdp.message_type.add(name="GetShelfRequest")
    _field(get, "name", 1, F.TYPE_STRING)
    _field(get, "library", 2, F.TYPE_STRING)
    _field(get, "view", 3, F.TYPE_ENUM, f".{PACKAGE}.Color")

    search = fdp.message_type.add(name="SearchRequest")
    _field(search, "shelf", 1, F.TYPE_MESSAGE, f".{PACKAGE}.Shelf")
    _field(search, "page_size", 2, F.TYPE_INT32)
    _field(search, "mask", 3, F.TYPE_MESSAGE, ".google.protobuf.FieldMask")
    _field(search, "request_id", 4, F.TYPE_STRING)

    update = fdp.message_type.add(name="UpdateShelfRequest")
    _field(update, "shelf", 1, F.TYPE_MESSAGE, f".{PACKAGE}.Shelf")
    _field(update, "update_mask", 2, F.TYPE_MESSAGE, ".google.protobuf.FieldMask")
    _field(update, "request_id", 3, F.TYPE_STRING)

    service = fdp.service.add(name="ShelfService")

    def method(
        name: str,
        request: str,
        response: str,
        rule: http_pb2.HttpRule | None,
        streaming: bool = False,
    ) -> None:
        m = service.method.add(name=name, input_type=request, output_type=response)
        m.server_streaming = streaming
        if rule is not None:
            m.options.Extensions[annotations_pb2.http].CopyFrom(rule)

    shelf_t, body_t = f".{PACKAGE}.Shelf", ".google.api.HttpBody"
    method(
        "GetShelf",
        f".{PACKAGE}.GetShelfRequest",
        shelf_t,
        http_pb2.HttpRule(
            get="/v1/{name=shelves/*}",
            additional_bindings=[http_pb2.HttpRule(get="/v1/libraries/{library}/{name=shelves/*}")],
        ),
    )
    method(
        "SearchShelves", f".{PACKAGE}.SearchRequest", shelf_t, http_pb2.HttpRule(get="/v1/shelves")
    )
    method(
        "UpdateShelf",
        f".{PACKAGE}.UpdateShelfRequest",
        shelf_t,
        http_pb2.HttpRule(patch="/v1/shelves/{shelf.name}", body="shelf"),
    )
    method(
        "RenameShelf",
        f".{PACKAGE}.UpdateShelfRequest",
        shelf_t,
        http_pb2.HttpRule(post="/v1/shelves/{shelf.name}:rename", body="*", response_body="name"),
    )
    method("Upload", body_t, body_t, http_pb2.HttpRule(post="/v1/blobs:upload", body="*"))
    method(
        "ListTags",
        f".{PACKAGE}.GetShelfRequest",
        shelf_t,
        http_pb2.HttpRule(get="/v1/{name=shelves/*}/tags", response_body="tags"),
    )
    method(
        "Watch",
        f".{PACKAGE}.GetShelfRequest",
        shelf_t,
        http_pb2.HttpRule(
            custom=http_pb2.CustomHttpPattern(kind="*", path="/v1/{name=shelves/*}:watch")
        ),
        streaming=True,
    )
    method(
        "Files",
        f".{PACKAGE}.GetShelfRequest",
        shelf_t,
        http_pb2.HttpRule(get="/v1/files/{name=**}"),
    )
    method("Hidden", f".{PACKAGE}.GetShelfRequest", shelf_t, None)
    return fdp


def _register() -> Any:
    pool = descriptor_pool.Default()
    try:
        return pool.FindFileByName("gatewaytest/v1/test.proto")
    except KeyError:
        pool.Add(_build())
        return pool.FindFileByName("gatewaytest/v1/test.proto")


FILE = _register()
MODULE = SimpleNamespace(DESCRIPTOR=FILE)
Shelf: Any = message_factory.GetMessageClass(FILE.message_types_by_name["Shelf"])
Filter: Any = message_factory.GetMessageClass(FILE.message_types_by_name["Filter"])


def api() -> Api:
    return Api([MODULE], {PACKAGE: "orders"})  # type: ignore[list-item]
