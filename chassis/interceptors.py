"""gRPC server interceptors, one concern each, chained in this order (the first is outermost):

- `AccessLog`: metrics and one access log line per call, with the status it ended with.
- `RequestContext`: the request id (`x-request-id`, or a new one) and the id of the aggregate
  the request or response is about, in the logging context.
- `ErrorMapping`: domain errors to their status code with a `google.rpc.Status` in the
  trailers (BadRequest field violations, PreconditionFailure, ResourceInfo); the database away
  to UNAVAILABLE; a lost lock conflict to ABORTED; anything else to INTERNAL without leaking
  internals.
- `Auth`: who is calling (`caller_var`, and `actor` in the logs): the staff token (a JWT) of
  the `authorization` header, checked by a `TokenVerifier`, against the called method's
  `comanda.options.v1` audience and roles: UNAUTHENTICATED without a valid token,
  PERMISSION_DENIED without the role (`chassis.access`).

Each wraps a method's handler once, the first time the method is called.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from chassis import access, db, errors, logs, metrics
from chassis.tokens import Identity, TokenVerifier

log = logging.getLogger(__name__)
access_log = logging.getLogger("comanda.access")

ServicerContext = grpc.aio.ServicerContext[Any, Any]


class _Interceptor(grpc.aio.ServerInterceptor):
    """Runs every call of a unary-unary or unary-stream method inside `around`."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    def around(
        self, method: str, request: Any, context: ServicerContext
    ) -> contextlib.AbstractAsyncContextManager[None]:
        raise NotImplementedError

    def on_response(self, response: Any) -> None:
        """Called with a unary call's response, inside `around`."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(details)
        method = details.method
        if handler is None or method.startswith(("/grpc.health", "/grpc.reflection")):
            return handler
        known = self._wrapped.get(method)
        if known is None or known[0] is not handler:
            known = (handler, self._wrap(handler, method))
            self._wrapped[method] = known
        return known[1]

    def _wrap(self, handler: Any, method: str) -> Any:
        around, on_response = self.around, self.on_response
        if handler.unary_unary:
            inner: Any = handler.unary_unary

            async def unary_unary(request: Any, context: ServicerContext) -> Any:
                async with around(method, request, context):
                    response = await inner(request, context)
                    on_response(response)
                    return response

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream:
            inner_stream: Any = handler.unary_stream

            async def unary_stream(request: Any, context: ServicerContext) -> AsyncIterator[Any]:
                async with around(method, request, context):
                    async for item in inner_stream(request, context):
                        yield item

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, handler.request_deserializer, handler.response_serializer
            )
        return handler


def _metadata(context: ServicerContext, key: str) -> str:
    for item in context.invocation_metadata() or ():
        if item[0] == key:
            return str(item[1])
    return ""


def _short(method: str) -> str:
    return method.rsplit("/", 1)[-1]


class AccessLog(_Interceptor):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    @contextlib.asynccontextmanager
    async def around(
        self, method: str, request: Any, context: ServicerContext
    ) -> AsyncIterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            code = context.code() if hasattr(context, "code") else None
            name = code.name if isinstance(code, grpc.StatusCode) else "OK"
            elapsed = time.perf_counter() - started
            rpc = _short(method)
            metrics.GRPC_REQUESTS.labels(self.service, rpc, name).inc()
            metrics.GRPC_LATENCY.labels(self.service, rpc).observe(elapsed)
            access_log.info(
                "%s %s %.1fms",
                rpc,
                name,
                elapsed * 1000,
                extra={"rpc": rpc, "code": name, "duration_ms": round(elapsed * 1000, 2)},
            )


class RequestContext(_Interceptor):
    def __init__(self, aggregate_field: str, aggregate_ids: Mapping[str, str]) -> None:
        """`aggregate_field`: the field of any message that names the aggregate (order_id);
        `aggregate_ids`: the messages that name it in another field (an Order's `id`)."""
        super().__init__()
        self.aggregate_field = aggregate_field
        self.aggregate_ids = aggregate_ids

    @contextlib.asynccontextmanager
    async def around(
        self, method: str, request: Any, context: ServicerContext
    ) -> AsyncIterator[None]:
        logs.request_id_var.set(_metadata(context, "x-request-id") or str(uuid.uuid4()))
        logs.aggregate_id_var.set("")
        self.on_response(request)
        yield

    def on_response(self, message: Any) -> None:
        """Put the aggregate a message is about into the logging context."""
        field = self.aggregate_ids.get(message.DESCRIPTOR.full_name, self.aggregate_field)
        aggregate_id = getattr(message, field, "")
        if aggregate_id:
            logs.aggregate_id_var.set(str(aggregate_id))


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


class ErrorMapping(_Interceptor):
    @contextlib.asynccontextmanager
    async def around(
        self, method: str, request: Any, context: ServicerContext
    ) -> AsyncIterator[None]:
        try:
            yield
        except grpc.aio.AbortError:
            raise
        except errors.DomainError as exc:
            code, status = status_for(exc)
            await context.abort(
                code,
                status.message,
                trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),),
            )
        except Exception as exc:
            if db.conflict(exc):  # a deadlock or serialization failure: nothing was written
                log.warning("%s: lost a lock conflict; the caller may retry", _short(method))
                await context.abort(
                    grpc.StatusCode.ABORTED, "a concurrent change won; retry the call"
                )
            if db.unavailable(exc):
                log.warning("%s: database unavailable: %s", _short(method), db.first_line(exc))
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE, "database unavailable; retry shortly"
                )
            log.exception("%s failed", _short(method))
            await context.abort(
                grpc.StatusCode.INTERNAL, f"internal error (request id {logs.request_id_var.get()})"
            )


# Who is calling: the identity a staff token proved, or None (anonymous).
caller_var: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("caller", default=None)


def acting_subject() -> str:
    """The `sub` of the staff member this call acts for; "" for an anonymous caller."""
    caller = caller_var.get()
    return caller.subject if caller is not None else ""


class Auth(_Interceptor):
    """Who is calling, and whether they may: `chassis.access.authorize` with the staff token
    verifier, against the called method's audience and roles in the contract."""

    def __init__(self, verifier: TokenVerifier) -> None:
        super().__init__()
        self.verifier = verifier

    @contextlib.asynccontextmanager
    async def around(
        self, method: str, request: Any, context: ServicerContext
    ) -> AsyncIterator[None]:
        caller_var.set(None)
        logs.actor_var.set("")
        rule = access.of_path(method)
        identity = access.identify(
            _short(method), rule, _metadata(context, "authorization"), self.verifier
        )
        if identity is not None:  # named in the logs even when refused for lack of a role
            caller_var.set(identity)
            logs.actor_var.set(identity.subject)
        access.permit(_short(method), rule, identity)
        yield


def chain(
    service: str, verifier: TokenVerifier, aggregate_field: str, aggregate_ids: Mapping[str, str]
) -> list[grpc.aio.ServerInterceptor]:
    """Every service's interceptors, in order."""
    return [
        AccessLog(service),
        RequestContext(aggregate_field, aggregate_ids),
        ErrorMapping(),
        Auth(verifier),
    ]
