"""The comments of the protos, for the OpenAPI document.

Generated Python code keeps descriptors but drops source info (the comments), so they are read
from the descriptor set `scripts/gen_protos.sh` compiles with `--include_source_info` next to
the generated code (`comanda/descriptor_set.binpb`). Without it, the document simply has no
descriptions.
"""

from __future__ import annotations

import logging
from pathlib import Path

from google.protobuf import descriptor_pb2

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
BUILT_SET = REPO / "comanda" / "descriptor_set.binpb"


def load() -> dict[str, str]:
    """Full name (of a message, field, enum, enum value, service or method) → its leading
    comment."""
    if not BUILT_SET.exists():
        log.warning("no %s: the API document has no descriptions", BUILT_SET)
        return {}
    files = descriptor_pb2.FileDescriptorSet.FromString(BUILT_SET.read_bytes()).file
    comments: dict[str, str] = {}
    for file in files:
        comments.update(from_file(file))
    return comments


def from_file(file: descriptor_pb2.FileDescriptorProto) -> dict[str, str]:
    names = _names(file)
    comments = {}
    for location in file.source_code_info.location:
        name = names.get(tuple(location.path))
        text = location.leading_comments or location.trailing_comments
        if name and text:
            comments[name] = _clean(text)
    return comments


def _names(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    """Source-info paths (descriptor.proto field numbers and indexes) → full names."""
    names: dict[tuple[int, ...], str] = {}
    package = file.package

    def enum(path: tuple[int, ...], proto: descriptor_pb2.EnumDescriptorProto, scope: str) -> None:
        full = f"{scope}.{proto.name}"
        names[path] = full
        for k, value in enumerate(proto.value):
            names[(*path, 2, k)] = f"{full}.{value.name}"

    def message(path: tuple[int, ...], proto: descriptor_pb2.DescriptorProto, scope: str) -> None:
        full = f"{scope}.{proto.name}"
        names[path] = full
        for j, field in enumerate(proto.field):
            names[(*path, 2, j)] = f"{full}.{field.name}"
        for j, nested in enumerate(proto.nested_type):
            message((*path, 3, j), nested, full)
        for j, nested_enum in enumerate(proto.enum_type):
            enum((*path, 4, j), nested_enum, full)

    for i, proto in enumerate(file.message_type):
        message((4, i), proto, package)
    for i, enum_proto in enumerate(file.enum_type):
        enum((5, i), enum_proto, package)
    for i, service in enumerate(file.service):
        names[(6, i)] = f"{package}.{service.name}"
        for j, method in enumerate(service.method):
            names[(6, i, 2, j)] = f"{package}.{service.name}.{method.name}"
    return names


def _clean(text: str) -> str:
    lines = [line[1:] if line.startswith(" ") else line for line in text.strip("\n").split("\n")]
    return "\n".join(lines).strip()
