"""gRPC failures as HTTP: the status mapping and google.rpc.Status bodies with their details."""

from __future__ import annotations

import json

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from gateway.errors import HttpError, bad_request, from_rpc_error

Code = grpc.StatusCode


@pytest.mark.parametrize(
    ("code", "http"),
    [
        (Code.INVALID_ARGUMENT, 400),
        (Code.NOT_FOUND, 404),
        (Code.ALREADY_EXISTS, 409),
        (Code.FAILED_PRECONDITION, 400),
        (Code.ABORTED, 409),
        (Code.UNAUTHENTICATED, 401),
        (Code.PERMISSION_DENIED, 403),
        (Code.RESOURCE_EXHAUSTED, 429),
        (Code.UNIMPLEMENTED, 501),
        (Code.UNAVAILABLE, 503),
        (Code.DEADLINE_EXCEEDED, 504),
        (Code.INTERNAL, 500),
        (Code.UNKNOWN, 500),
        (Code.DATA_LOSS, 500),
        (Code.OUT_OF_RANGE, 400),
        (Code.CANCELLED, 499),
    ],
)
def test_grpc_codes_map_to_http_statuses(code, http):
    error = from_rpc_error(_rpc_error(code, "boom"))

    assert error.http_status == http, f"{code.name}: expected {http}, got {error.http_status}"
    assert error.status()["code"] == code.value[0]


def test_unauthenticated_asks_for_a_bearer_token():
    error = from_rpc_error(_rpc_error(Code.UNAUTHENTICATED, "no token"))

    assert (b"www-authenticate", b'Bearer realm="comanda"') in error.headers


def test_details_come_from_the_status_trailer():
    status = status_pb2.Status(
        code=Code.INVALID_ARGUMENT.value[0], message="cpf: check digits do not match"
    )
    _pack(
        status,
        error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field="cpf", description="check digits do not match"
                )
            ]
        ),
    )
    _pack(status, error_details_pb2.ResourceInfo(resource_type="customer", resource_name="c1"))

    error = from_rpc_error(_rpc_error(Code.INVALID_ARGUMENT, "ignored", status))
    body = json.loads(error.body())

    assert body == {
        "code": 3,
        "message": "cpf: check digits do not match",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": "cpf", "description": "check digits do not match"}],
            },
            {
                "@type": "type.googleapis.com/google.rpc.ResourceInfo",
                "resourceType": "customer",
                "resourceName": "c1",
            },
        ],
    }


def test_a_detail_of_an_unknown_type_is_kept_as_base64():
    status = status_pb2.Status(code=5, message="m")
    status.details.add(type_url="type.googleapis.com/acme.Unknown", value=b"\x01\x02")

    body = json.loads(from_rpc_error(_rpc_error(Code.NOT_FOUND, "m", status)).body())

    assert body["details"] == [{"@type": "type.googleapis.com/acme.Unknown", "value": "AQI="}]


def test_a_failure_without_trailer_keeps_the_grpc_message():
    body = json.loads(from_rpc_error(_rpc_error(Code.NOT_FOUND, "order 'x' not found")).body())

    assert body == {"code": 5, "message": "order 'x' not found", "details": []}


def test_bad_request_names_the_field():
    body = json.loads(bad_request("items.quantity", "expected an integer").body())

    assert body["message"] == "items.quantity: expected an integer"
    assert body["details"][0]["fieldViolations"] == [
        {"field": "items.quantity", "description": "expected an integer"}
    ]


def test_explicit_http_status_wins():
    error = HttpError(Code.INVALID_ARGUMENT, "unsupported content type", http_status=415)

    assert error.http_status == 415
    assert json.loads(error.body())["code"] == 3


def _pack(status: status_pb2.Status, detail) -> None:
    packed = any_pb2.Any()
    packed.Pack(detail)
    status.details.append(packed)


def _rpc_error(code, details, status=None) -> grpc.aio.AioRpcError:
    trailers = grpc.aio.Metadata()
    if status is not None:
        trailers.add("grpc-status-details-bin", status.SerializeToString())
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, details)
