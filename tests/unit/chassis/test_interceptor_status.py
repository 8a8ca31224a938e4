import grpc
import pytest
from google.rpc import error_details_pb2

from chassis import errors
from chassis.interceptors import status_for


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (
            errors.InvalidArgument("items[0].quantity", "must be 1..99"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (errors.NotFound("order", "x"), grpc.StatusCode.NOT_FOUND),
        (errors.AlreadyExists("customer", "dup"), grpc.StatusCode.ALREADY_EXISTS),
        (
            errors.FailedPrecondition("order x", "READY", "move to READY"),
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
        (errors.Aborted("retry"), grpc.StatusCode.ABORTED),
        (errors.Unauthenticated("no token"), grpc.StatusCode.UNAUTHENTICATED),
        (errors.PermissionDenied("no"), grpc.StatusCode.PERMISSION_DENIED),
    ],
)
def test_each_domain_error_has_its_code(error, code):
    got, status = status_for(error)
    assert got == code
    assert status.code == code.value[0]
    assert status.message == error.message


def test_invalid_argument_carries_a_field_violation():
    _, status = status_for(errors.InvalidArgument("items[2].notes", "too long"))
    detail = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(detail)
    assert detail.field_violations[0].field == "items[2].notes"


def test_failed_precondition_names_both_states():
    error = errors.FailedPrecondition("order 1", "READY", "move to IN_PREPARATION")
    assert "READY" in error.message and "IN_PREPARATION" in error.message
