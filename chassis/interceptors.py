"""What runs around every call of a service's own methods, one concern each, in this order
(the first is outermost):

- `AccessLog`: metrics and one access log line per call, with the status it ended with.
- `RequestContext`: the request id (`x-request-id`, or a new one) and the id of the aggregate
  the request or response is about, in the logging context.
- `abort_with_status`: domain errors to their status code with a `google.rpc.Status` in the
  trailers (BadRequest field violations, PreconditionFailure, ResourceInfo); the database away
  to UNAVAILABLE; a lost lock conflict to ABORTED; anything else to INTERNAL without leaking
  internals.
- `Auth`: who is calling (`caller_var`, and `actor` in the logs): the staff token (a JWT) of
  the `authorization` header, checked by a `TokenVerifier`, against the called method's
  `comanda.options.v1` audience and roles: UNAUTHENTICATED without a valid token,
  PERMISSION_DENIED without the role (`chassis.access`).

`Interceptors.wrap` wraps a method's handler once, when the server registers it
(`Interceptors.registering(server)`, which the generated `add_*_to_server` functions are
given); a call then runs one coroutine doing these steps in turn. They are not grpc.aio server
interceptors: grpc.aio looks a call's handler up through every interceptor, a coroutine each,
per call, and with an async context manager per layer four of them cost 170 µs a GetOrder, more
than its database read (docs/performance.md). Health and reflection are registered on the
server itself and go unwrapped.
"""

from __future__ import annotations

import contextvars
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from chassis import access, db, errors, logs, metrics
from chassis.tokens import Identity, TokenVerifier

log = logging.getLogger(__name__)
access_log = logging.getLogger("comanda.access")

ServicerContext = grpc.aio.ServicerContext[Any, Any]


def _headers(context: ServicerContext) -> tuple[str, str]:
    """The call's `x-request-id` and `authorization` metadata ("" when absent)."""
    request_id = authorization = ""
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id":
            request_id = str(value)
        elif key == "authorization":
            authorization = str(value)
    return request_id, authorization


def _short(method: str) -> str:
    return method.rsplit("/", 1)[-1]


class AccessLog:
    def __init__(self, service: str) -> None:
        self.service = service
        # The labelled metrics of each method and code, made once.
        self._metrics: dict[tuple[str, str], tuple[Any, Any]] = {}

    def record(self, rpc: str, context: ServicerContext, started: float) -> None:
        code = context.code() if hasattr(context, "code") else None
        name = code.name if isinstance(code, grpc.StatusCode) else "OK"
        elapsed = time.perf_counter() - started
        labelled = self._metrics.get((rpc, name))
        if labelled is None:
            labelled = self._metrics[(rpc, name)] = (
                metrics.GRPC_REQUESTS.labels(self.service, rpc, name),
                metrics.GRPC_LATENCY.labels(self.service, rpc),
            )
        labelled[0].inc()
        labelled[1].observe(elapsed)
        logs.info_line(
            access_log,
            f"{rpc} {name} {elapsed * 1000:.1f}ms",
            {"rpc": rpc, "code": name, "duration_ms": round(elapsed * 1000, 2)},
        )


class RequestContext:
    def __init__(self, aggregate_field: str, aggregate_ids: Mapping[str, str]) -> None:
        """`aggregate_field`: the field of any message that names the aggregate (order_id);
        `aggregate_ids`: the messages that name it in another field (an Order's `id`)."""
        self.aggregate_field = aggregate_field
        self.aggregate_ids = aggregate_ids

    def start(self, request_id: str, request: Any) -> None:
        logs.request_id_var.set(request_id or str(uuid.uuid4()))
        logs.aggregate_id_var.set("")
        self.on_response(request)

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


async def abort_with_status(rpc: str, exc: Exception, context: ServicerContext) -> NoReturn:
    """End the call with the status `exc` stands for (raises grpc.aio's AbortError)."""
    if isinstance(exc, errors.DomainError):
        code, status = status_for(exc)
        await context.abort(
            code,
            status.message,
            trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),),
        )
    if db.conflict(exc):  # a deadlock or serialization failure: nothing was written
        log.warning("%s: lost a lock conflict; the caller may retry", rpc)
        await context.abort(grpc.StatusCode.ABORTED, "a concurrent change won; retry the call")
    if db.unavailable(exc):
        log.warning("%s: database unavailable: %s", rpc, db.first_line(exc))
        await context.abort(grpc.StatusCode.UNAVAILABLE, "database unavailable; retry shortly")
    log.error("%s failed", rpc, exc_info=exc)
    await context.abort(
        grpc.StatusCode.INTERNAL, f"internal error (request id {logs.request_id_var.get()})"
    )


# Who is calling: the identity a staff token proved, or None (anonymous).
caller_var: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("caller", default=None)


def acting_subject() -> str:
    """The `sub` of the staff member this call acts for; "" for an anonymous caller."""
    caller = caller_var.get()
    return caller.subject if caller is not None else ""


class Auth:
    """Who is calling, and whether they may: `chassis.access.authorize` with the staff token
    verifier, against the called method's audience and roles in the contract."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier

    def check(self, rpc: str, rule: access.Access, authorization: str) -> None:
        caller_var.set(None)
        logs.actor_var.set("")
        identity = access.identify(rpc, rule, authorization, self.verifier)
        if identity is not None:  # named in the logs even when refused for lack of a role
            caller_var.set(identity)
            logs.actor_var.set(identity.subject)
        access.permit(rpc, rule, identity)


class Interceptors:
    """Every service's steps around a call, in the order of the module's list."""

    def __init__(
        self,
        service: str,
        verifier: TokenVerifier,
        aggregate_field: str,
        aggregate_ids: Mapping[str, str],
    ) -> None:
        self.access_log = AccessLog(service)
        self.context = RequestContext(aggregate_field, aggregate_ids)
        self.auth = Auth(verifier)

    def registering(self, server: grpc.aio.Server) -> Any:
        """`server` as the generated `add_*_to_server` functions see it: the handlers they
        add are wrapped."""
        return _Registering(server, self.wrap)

    def wrap(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """`handler` of `/package.Service/Method` with these steps around each call."""
        rpc, rule = _short(method), access.of_path(method)
        log_call, context_of, auth = self.access_log.record, self.context, self.auth

        def enter(request: Any, context: ServicerContext) -> None:
            """The request's context, then who calls (raises a domain error to map)."""
            request_id, authorization = _headers(context)
            context_of.start(request_id, request)
            auth.check(rpc, rule, authorization)

        if handler.unary_unary:
            inner: Any = handler.unary_unary

            async def unary_unary(request: Any, context: ServicerContext) -> Any:
                started = time.perf_counter()
                try:
                    enter(request, context)
                    response = await inner(request, context)
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await abort_with_status(rpc, exc, context)
                else:
                    context_of.on_response(response)
                    return response
                finally:
                    log_call(rpc, context, started)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream:
            inner_stream: Any = handler.unary_stream

            async def unary_stream(request: Any, context: ServicerContext) -> AsyncIterator[Any]:
                started = time.perf_counter()
                try:
                    enter(request, context)
                    async for item in inner_stream(request, context):
                        yield item
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await abort_with_status(rpc, exc, context)
                finally:
                    log_call(rpc, context, started)

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, handler.request_deserializer, handler.response_serializer
            )
        return handler


class _Registering:
    """A grpc.aio server to the generated `add_*_to_server` functions: each method handler
    they add is wrapped once, here."""

    def __init__(self, server: grpc.aio.Server, wrap: Any) -> None:
        self.server = server
        self.wrap = wrap
        # Every wrapped handler by its method's path, for callers in this process (the
        # gateway's in-process backend, gateway/local.py).
        self.handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.server.add_generic_rpc_handlers([_Wrapped(h, self.wrap) for h in handlers])

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        wrapped = {name: self.wrap(f"/{service}/{name}", h) for name, h in handlers.items()}
        self.handlers.update({f"/{service}/{name}": h for name, h in wrapped.items()})
        self.server.add_registered_method_handlers(service, wrapped)


class _Wrapped(grpc.GenericRpcHandler):
    """A generic handler whose method handlers are wrapped (each once, when first asked)."""

    def __init__(self, inner: grpc.GenericRpcHandler, wrap: Any) -> None:
        self.inner = inner
        self.wrap = wrap
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    def service(self, details: grpc.HandlerCallDetails) -> Any:
        handler = self.inner.service(details)
        if handler is None:
            return None
        known = self._wrapped.get(details.method)
        if known is None or known[0] is not handler:
            known = self._wrapped[details.method] = (handler, self.wrap(details.method, handler))
        return known[1]
