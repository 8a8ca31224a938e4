"""The OpenAPI 3.1 document of the gateway, generated from the same descriptors and annotations
that route requests: one operation per binding, schemas of the messages and enums it uses,
the proto comments as descriptions, the google.rpc.Status error schema, and a bearer security
requirement on the staff-only methods."""

from __future__ import annotations

from typing import Any, cast

from google.api import field_behavior_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from chassis import access
from gateway.api import Api, Route
from gateway.streaming import NDJSON, SSE
from gateway.transcode import JSON_ALL, JSON_FIELD, NO_BODY

STATUS = "google.rpc.Status"
ERROR_RESPONSE = {
    "description": "The call failed: a google.rpc.Status (gRPC code, message, typed details).",
    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{STATUS}"}}},
}
_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_SINT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "uint32", "minimum": 0},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "uint32", "minimum": 0},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte", "contentEncoding": "base64"},
}
_WRAPPERS = {
    "DoubleValue": "number",
    "FloatValue": "number",
    "Int64Value": "string",
    "UInt64Value": "string",
    "Int32Value": "integer",
    "UInt32Value": "integer",
    "BoolValue": "boolean",
    "StringValue": "string",
    "BytesValue": "string",
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?\d+(\.\d{1,9})?s$"},
    "google.protobuf.FieldMask": {
        "type": "string",
        "description": "Comma-separated field paths, e.g. `name,priceCentavos`.",
    },
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "additionalProperties": True,
    },
    **{f"google.protobuf.{name}": {"type": [kind, "null"]} for name, kind in _WRAPPERS.items()},
}
DESCRIPTION = """\
HTTP/JSON access to the Comanda services, transcoded to gRPC by the gateway from the
`google.api.http` annotations of the protos.

- **JSON**: the proto3 JSON mapping: lowerCamelCase names (snake_case accepted in requests and
  query parameters), enums by name, 64-bit integers as strings, timestamps in RFC 3339, unset
  fields present with their default value.
- **Errors**: a `google.rpc.Status` body (`code`, `message`, `details`) with the standard gRPC to
  HTTP status mapping, e.g. INVALID_ARGUMENT 400, NOT_FOUND 404, ALREADY_EXISTS 409,
  FAILED_PRECONDITION 400, UNAUTHENTICATED 401, PERMISSION_DENIED 403, RESOURCE_EXHAUSTED 429,
  UNAVAILABLE 503, DEADLINE_EXCEEDED 504.
- **Staff operations** name the roles they need (`kitchen`, `manager`) and take
  `Authorization: Bearer <token>`, a signed JWT with `sub` and `roles` (in development:
  `make token ROLE=kitchen`): without a valid one 401, without the role 403.
- **Headers**: `X-Request-Id`
  (generated when absent, echoed back); `traceparent`; `Grpc-Timeout` (e.g. `5S`, `500m`) to
  set the call's deadline; `Idempotency-Key` fills an empty `requestId`.
- **Streams**: newline-delimited JSON, `{"result": ...}` per message and `{"error": <Status>}`
  on failure; or Server-Sent Events with `Accept: text/event-stream`.
"""


def document(api: Api, comments: dict[str, str], title: str = "Comanda API") -> dict[str, Any]:
    builder = _Builder(comments)
    paths: dict[str, dict[str, Any]] = {}
    taken: set[str] = set()
    for route in api.routes:
        operation = builder.operation(route)
        operation_id = route.rpc.label.replace(".", "_")
        suffix = 1
        while operation_id in taken:
            operation_id = f"{route.rpc.label.replace('.', '_')}_{suffix}"
            suffix += 1
        taken.add(operation_id)
        operation["operationId"] = operation_id
        path = route.binding.template.openapi_path()
        paths.setdefault(path, {})[route.binding.method.lower()] = operation
    services = {rpc.descriptor.containing_service for rpc in api.rpcs}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "v1", "description": DESCRIPTION},
        "tags": [
            {"name": service.name, "description": comments.get(service.full_name, "")}
            for service in sorted(services, key=lambda s: s.full_name)
        ],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(builder.schemas.items())),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A staff token: a JWT with `sub` (who) and `roles` (each "
                    "operation names the roles it needs). In development `make token "
                    "ROLE=kitchen` prints one; in production the identity provider issues them.",
                },
            },
        },
    }


class _Builder:
    def __init__(self, comments: dict[str, str]) -> None:
        self.comments = comments
        self.schemas: dict[str, Any] = {STATUS: _status_schema()}

    def operation(self, route: Route) -> dict[str, Any]:
        rpc, mapper = route.rpc, route.mapper
        comment = self.comments.get(rpc.descriptor.full_name, "")
        operation: dict[str, Any] = {
            "tags": [rpc.descriptor.containing_service.name],
            "summary": comment.split(". ", 1)[0].split("\n\n", 1)[0].replace("\n", " ").rstrip("."),
            "description": comment,
        }
        request = cast(Descriptor, rpc.request.DESCRIPTOR)
        parameters = []
        for name, fields, _plain in mapper.path_fields:
            parameters.append(
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "description": self.comments.get(fields[-1].full_name, ""),
                    "schema": self.field(fields[-1], single=True),
                }
            )
        for param in mapper.query_params():
            leaf = param.leaf
            json_path = ".".join(f.json_name for f in _fields(request, param.path))
            parameters.append(
                {
                    "name": json_path,
                    "in": "query",
                    "required": False,
                    "description": self.comments.get(leaf.full_name, ""),
                    "schema": self.field(leaf),
                    **({"style": "form", "explode": True} if param.repeated else {}),
                }
            )
        if mapper.fills_request_id:
            parameters.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "Fills `requestId` when the body leaves it empty.",
                    "schema": {"type": "string"},
                }
            )
        if rpc.access.audience == access.PROVIDER:
            parameters.append(
                {
                    "name": "x-signature",
                    "in": "header",
                    "required": True,
                    "description": "The provider's signature of the body, passed on as it came.",
                    "schema": {"type": "string"},
                }
            )
        if parameters:
            operation["parameters"] = parameters
        body = self.request_body(route)
        if body is not None:
            operation["requestBody"] = body
        operation["responses"] = {"200": self.response(route), "default": ERROR_RESPONSE}
        if rpc.access.staff:
            roles = " or ".join(f"`{role}`" for role in rpc.access.roles)
            operation["security"] = [{"bearerAuth": []}]
            operation["x-roles"] = list(rpc.access.roles)
            operation["description"] = (
                f"**Staff only: role {roles}.**\n\n{operation.get('description', '')}".rstrip()
            )
            operation["responses"]["401"] = {
                **ERROR_RESPONSE,
                "description": "No staff token, or one that is malformed, forged or expired.",
            }
            operation["responses"]["403"] = {
                **ERROR_RESPONSE,
                "description": f"A valid staff token without the role {roles}.",
            }
        return operation

    def request_body(self, route: Route) -> dict[str, Any] | None:
        mapper = route.mapper
        if mapper.body_mode == NO_BODY:
            return None
        if mapper.raw_body:
            return {
                "required": True,
                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            }
        if mapper.body_mode == JSON_FIELD:
            assert mapper.body_field is not None
            schema = self.field(mapper.body_field)
            return {"required": True, "content": {"application/json": {"schema": schema}}}
        assert mapper.body_mode == JSON_ALL
        request = cast(Descriptor, route.rpc.request.DESCRIPTOR)
        bound = {fields[0].name for _, fields, _ in mapper.path_fields if len(fields) == 1}
        if not bound:
            schema = self.ref(request)
        else:
            full = self.message(request)
            keep = [f for f in request.fields if f.name not in bound]
            schema = {
                "type": "object",
                "description": full.get("description", ""),
                "properties": {f.json_name: full["properties"][f.json_name] for f in keep},
            }
            required = [f.json_name for f in keep if f.json_name in full.get("required", [])]
            if required:
                schema["required"] = required
        return {"required": False, "content": {"application/json": {"schema": schema}}}

    def response(self, route: Route) -> dict[str, Any]:
        renderer, response = route.renderer, cast(Descriptor, route.rpc.response.DESCRIPTOR)
        comment = self.comments.get(response.full_name, "") or "The response."
        if renderer.raw:
            return {
                "description": comment,
                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            }
        schema = self.field(renderer.field) if renderer.field is not None else self.ref(response)
        if not route.rpc.server_streaming:
            return {"description": comment, "content": {"application/json": {"schema": schema}}}
        status_ref = {"$ref": f"#/components/schemas/{STATUS}"}
        return {
            "description": f"A stream: {comment}",
            "content": {
                NDJSON.decode(): {
                    "schema": {
                        "type": "object",
                        "description": 'One JSON object per line: `{"result": ...}` per message, '
                        '`{"error": <Status>}` if the stream fails.',
                        "properties": {"result": schema, "error": status_ref},
                    }
                },
                SSE.decode(): {
                    "schema": {
                        "type": "string",
                        "description": "With `Accept: text/event-stream`: `data: <message>` "
                        "per message; `event: error` with a Status if the stream fails.",
                    }
                },
            },
        }

    # -- schemas ----------------------------------------------------------------------
    def ref(self, descriptor: Descriptor) -> dict[str, Any]:
        if descriptor.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[descriptor.full_name])
        self.message(descriptor)
        return {"$ref": f"#/components/schemas/{descriptor.full_name}"}

    def message(self, descriptor: Descriptor) -> dict[str, Any]:
        name = descriptor.full_name
        if name in self.schemas:
            found: dict[str, Any] = self.schemas[name]
            return found
        schema: dict[str, Any] = {"type": "object", "properties": {}}
        self.schemas[name] = schema  # before the fields: types may be recursive
        if self.comments.get(name):
            schema["description"] = self.comments[name]
        required = []
        for field in descriptor.fields:
            schema["properties"][field.json_name] = self.field(field)
            behaviors = field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
            if field_behavior_pb2.REQUIRED in behaviors:
                required.append(field.json_name)
        if required:
            schema["required"] = required
        return schema

    def enum(self, descriptor: EnumDescriptor) -> dict[str, Any]:
        name = descriptor.full_name
        if name not in self.schemas:
            lines = [self.comments.get(name, "")]
            lines += [
                f"- `{value.name}`: {self.comments.get(f'{name}.{value.name}', '')}"
                for value in descriptor.values
            ]
            self.schemas[name] = {
                "type": "string",
                "enum": [value.name for value in descriptor.values],
                "description": "\n".join(line for line in lines if line),
            }
        return {"$ref": f"#/components/schemas/{name}"}

    def field(self, field: FieldDescriptor, single: bool = False) -> dict[str, Any]:
        """A field's schema; `single` for one value of a repeated field."""
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = field.message_type.fields_by_name["value"]
            schema: dict[str, Any] = {"type": "object", "additionalProperties": self.field(value)}
        else:
            if field.message_type is not None:
                schema = self.ref(field.message_type)
            elif field.enum_type is not None:
                schema = self.enum(field.enum_type)
            else:
                schema = dict(_SCALARS[field.type])
            if field.is_repeated and not single:
                schema = {"type": "array", "items": schema}
        description = self.comments.get(field.full_name)
        if description:
            schema["description"] = description
        behaviors = field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
        if field_behavior_pb2.OUTPUT_ONLY in behaviors:
            schema["readOnly"] = True
        return schema


def _fields(descriptor: Descriptor, path: tuple[str, ...]) -> list[FieldDescriptor]:
    fields = []
    current: Descriptor | None = descriptor
    for name in path:
        assert current is not None
        fields.append(current.fields_by_name[name])
        current = fields[-1].message_type
    return fields


def _status_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "An error: the gRPC status code, a message, and typed details.",
        "properties": {
            "code": {
                "type": "integer",
                "format": "int32",
                "description": "The google.rpc.Code (gRPC status code).",
            },
            "message": {
                "type": "string",
                "description": "What went wrong, naming the field, id or state.",
            },
            "details": {
                "type": "array",
                "description": "Typed details: google.rpc.BadRequest (field violations), "
                "PreconditionFailure, ResourceInfo, ...",
                "items": {
                    "type": "object",
                    "properties": {"@type": {"type": "string"}},
                    "required": ["@type"],
                    "additionalProperties": True,
                },
            },
        },
        "required": ["code", "message", "details"],
    }
