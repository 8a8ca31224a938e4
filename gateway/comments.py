"""The comments of the protos, for the OpenAPI document.

Generated Python code keeps descriptors but drops source info (the comments), so they are read
from a descriptor set compiled with `--include_source_info`: `comanda/descriptor_set.binpb`
when the build wrote one, else the protos compiled here and now with grpc_tools.protoc
(about 0.1 s). Without either, the document simply has no descriptions.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from google.protobuf import descriptor_pb2

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
BUILT_SET = REPO / "comanda" / "descriptor_set.binpb"
PROTO_ROOTS = (REPO / "protos", REPO / "third_party" / "googleapis")


def load(proto_files: Iterable[str]) -> dict[str, str]:
    """Full name (of a message, field, enum, enum value, service or method) → its leading
    comment; `proto_files` are the files (as imported, e.g. comanda/orders/v1/orders.proto)
    to compile when no descriptor set was built."""
    data = BUILT_SET.read_bytes() if BUILT_SET.exists() else _compile(list(proto_files))
    if not data:
        return {}
    files = descriptor_pb2.FileDescriptorSet.FromString(data).file
    comments: dict[str, str] = {}
    for file in files:
        comments.update(from_file(file))
    return comments


def _compile(proto_files: list[str]) -> bytes:
    roots = [root for root in PROTO_ROOTS if root.is_dir()]
    if not roots:
        log.warning("no protos/ next to the gateway: the API document has no descriptions")
        return b""
    from grpc_tools import protoc  # type: ignore[import-untyped]  # only needed here

    includes = [*roots, Path(str(importlib.resources.files("grpc_tools") / "_proto"))]
    with tempfile.TemporaryDirectory(prefix="comanda-gateway-") as tmp:
        out = os.path.join(tmp, "set.binpb")
        args = [
            "protoc",
            *(f"-I{path}" for path in includes),
            "--include_source_info",
            "--include_imports",
            f"--descriptor_set_out={out}",
            *proto_files,
        ]
        if protoc.main(args) != 0:
            log.warning("could not compile the protos: the API document has no descriptions")
            return b""
        return Path(out).read_bytes()


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
