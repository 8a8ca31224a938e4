"""gRPC server interceptor: request context, access control, errors, metrics.

- Reads `x-request-id` (or makes one) and puts it in the logging context.
- Enforces the `comanda.options.v1.audience` option of the called method: STAFF methods need
  `authorization: Bearer <staff token>`.
- Turns domain errors into their status code with a `google.rpc.Status` in the trailers
  (BadRequest field violations, PreconditionFailure, ResourceInfo), and anything unexpected
  into INTERNAL without leaking internals.
"""

from __future__ import annotations

import contextlib
import contextvars
import hmac
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2, descriptor_pool
from google.rpc import error_details_pb2, status_pb2

from chassis import db, errors, logs, metrics
from comanda.options.v1 import options_pb2

log = logging.getLogger(__name__)
access = logging.getLogger("comanda.access")

ServicerContext = grpc.aio.ServicerContext[Any, Any]
is_staff_var: contextvars.ContextVar[bool] = contextvars.ContextVar("is_staff", default=False)

_CODES: list[tuple[type[errors.DomainError], grpc.StatusCode]] = [
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Aborted, grpc.StatusCode.ABORTED),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
]


def _pack(detail: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(detail)
    return packed


def status_for(exc: errors.DomainError) -> tuple[grpc.StatusCode, status_pb2.Status]:
    code = next(
        (c for cls, c in _CODES if isinstance(exc, cls)), grpc.StatusCode.FAILED_PRECONDITION
    )
    status = status_pb2.Status(code=code.value[0], message=exc.message)
    if isinstance(exc, errors.InvalidArgument):
        status.details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=exc.field, description=exc.description
                        )
                    ]
                )
            )
        )
    elif isinstance(exc, errors.FailedPrecondition):
        status.details.append(
            _pack(
                error_details_pb2.PreconditionFailure(
                    violations=[
                        error_details_pb2.PreconditionFailure.Violation(
                            type="STATE", subject=exc.subject, description=exc.message
                        )
                    ]
                )
            )
        )
    elif isinstance(exc, errors.AlreadyExists):
        status.details.append(
            _pack(
                error_details_pb2.ResourceInfo(resource_type=exc.resource, description=exc.message)
            )
        )
    elif isinstance(exc, errors.NotFound):
        status.details.append(
            _pack(
                error_details_pb2.ResourceInfo(
                    resource_type=exc.resource,
                    resource_name=exc.resource_id,
                    description=exc.message,
                )
            )
        )
    return code, status


def note_order(message: Any) -> None:
    """Put the order a request or response is about into the logging context."""
    order_id = getattr(message, "order_id", "")
    descriptor = getattr(message, "DESCRIPTOR", None)
    if not order_id and descriptor is not None and descriptor.full_name == ORDER_MESSAGE:
        order_id = message.id
    if order_id:
        logs.aggregate_id_var.set(str(order_id))


ORDER_MESSAGE = "comanda.orders.v1.Order"


def method_audience(full_method: str) -> int:
    """The audience option of `/package.Service/Method`; PUBLIC when unset or unknown."""
    try:
        service, method = full_method.lstrip("/").split("/", 1)
        svc = descriptor_pool.Default().FindServiceByName(service)
        options = svc.methods_by_name[method].GetOptions()
        audience = int(options.Extensions[options_pb2.audience])
    except (KeyError, ValueError):
        return options_pb2.AUDIENCE_PUBLIC
    return audience or options_pb2.AUDIENCE_PUBLIC


class ServerInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, service: str, staff_token: str) -> None:
        self.service = service
        self.staff_token = staff_token
        self._audiences: dict[str, int] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(details)
        if handler is None or details.method.startswith(("/grpc.health", "/grpc.reflection")):
            return handler
        method = details.method
        if method not in self._audiences:
            self._audiences[method] = method_audience(method)
        audience = self._audiences[method]
        metadata = dict(details.invocation_metadata or ())
        short = method.rsplit("/", 1)[-1]

        def enter() -> None:
            logs.request_id_var.set(str(metadata.get("x-request-id") or uuid.uuid4()))
            logs.aggregate_id_var.set("")
            is_staff_var.set(self._is_staff(str(metadata.get("authorization") or "")))
            if audience == options_pb2.AUDIENCE_STAFF and not is_staff_var.get():
                raise errors.Unauthenticated(
                    f"{short} is for staff: send 'authorization: Bearer <staff token>'"
                    if not metadata.get("authorization")
                    else f"{short}: the staff token is not valid"
                )

        async def fail(exc: BaseException, context: ServicerContext) -> None:
            if isinstance(exc, errors.DomainError):
                code, status = status_for(exc)
                await context.abort(
                    code,
                    status.message,
                    trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),),
                )
            if db.unavailable(exc):
                log.warning("%s: database unavailable: %s", short, str(exc).splitlines()[0])
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE, "database unavailable; retry shortly"
                )
            log.exception("%s failed", short)
            await context.abort(
                grpc.StatusCode.INTERNAL, f"internal error (request id {logs.request_id_var.get()})"
            )

        def record(started: float, context: ServicerContext) -> None:
            code = context.code() if hasattr(context, "code") else None
            name = code.name if isinstance(code, grpc.StatusCode) else "OK"
            elapsed = time.perf_counter() - started
            metrics.GRPC_REQUESTS.labels(self.service, short, name).inc()
            metrics.GRPC_LATENCY.labels(self.service, short).observe(elapsed)
            access.info(
                "%s %s %.1fms",
                short,
                name,
                elapsed * 1000,
                extra={"rpc": short, "code": name, "duration_ms": round(elapsed * 1000, 2)},
            )

        @contextlib.asynccontextmanager
        async def guard(request: Any, context: ServicerContext) -> AsyncIterator[None]:
            started = time.perf_counter()
            try:
                enter()
                note_order(request)
                yield
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await fail(exc, context)
            finally:
                record(started, context)

        if handler.unary_unary:
            inner: Any = handler.unary_unary

            async def unary_unary(request: Any, context: ServicerContext) -> Any:
                async with guard(request, context):
                    response = await inner(request, context)
                    note_order(response)
                    return response

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer
            )

        if handler.unary_stream:
            inner_stream: Any = handler.unary_stream

            async def unary_stream(request: Any, context: ServicerContext) -> AsyncIterator[Any]:
                async with guard(request, context):
                    async for item in inner_stream(request, context):
                        yield item

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, handler.request_deserializer, handler.response_serializer
            )
        return handler

    def _is_staff(self, authorization: str | None) -> bool:
        if not authorization or not self.staff_token:
            return False
        scheme, _, token = authorization.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip(), self.staff_token)
