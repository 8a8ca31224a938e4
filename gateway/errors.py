"""Every failure as a `google.rpc.Status` JSON body, with the standard gRPC → HTTP mapping
(google/rpc/code.proto)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2

from gateway.protojson import dumps

Code = grpc.StatusCode
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}
BAD_REQUEST_TYPE = "type.googleapis.com/" + error_details_pb2.BadRequest.DESCRIPTOR.full_name
DETAILS_KEY = "grpc-status-details-bin"


class HttpError(Exception):
    """A failure to answer with a Status body; `http_status` defaults to the code's mapping."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        details: Sequence[dict[str, Any]] = (),
        http_status: int | None = None,
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = list(details)
        self.http_status = http_status or HTTP_STATUS.get(code, 500)
        self.headers = list(headers)
        if code == Code.UNAUTHENTICATED:
            self.headers.append((b"www-authenticate", b'Bearer realm="comanda"'))

    def status(self) -> dict[str, Any]:
        """The google.rpc.Status in its JSON form."""
        return {"code": self.code.value[0], "message": self.message, "details": self.details}

    def body(self) -> bytes:
        return dumps(self.status())


def bad_request(field: str, description: str, message: str | None = None) -> HttpError:
    """INVALID_ARGUMENT naming the field, with a BadRequest field violation."""
    violation = {"field": field, "description": description}
    return HttpError(
        Code.INVALID_ARGUMENT,
        message or (f"{field}: {description}" if field else description),
        [{"@type": BAD_REQUEST_TYPE, "fieldViolations": [violation]}],
    )


def from_rpc_error(error: grpc.aio.AioRpcError) -> HttpError:
    """The HTTP form of a failed call, with the details the service put in the
    `grpc-status-details-bin` trailer."""
    code = error.code()
    message = error.details() or code.name
    details: list[dict[str, Any]] = []
    for key, value in error.trailing_metadata() or ():
        if key == DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            message = status.message or message
            details = [_detail(any_detail) for any_detail in status.details]
    if code == Code.UNAVAILABLE and not details:
        message = f"backend unavailable: {message}"
    return HttpError(code, message, details)


def _detail(packed: Any) -> dict[str, Any]:
    try:
        found: dict[str, Any] = json_format.MessageToDict(packed)
        return found
    except (TypeError, KeyError, json_format.Error):  # a type this process does not know
        return {"@type": packed.type_url, "value": base64.b64encode(packed.value).decode()}
