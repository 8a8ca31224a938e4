"""The in-process backend: the gateway inside a service's server process calls that service's
methods directly, with no gRPC between them (docs/adr/0008-the-gateway-in-process.md).

A method is called through the handler the server registered, the one wrapped by
`chassis.interceptors` (access log, request context, error statuses, staff tokens), so a call
runs the same steps as one over gRPC; only the transport is gone: no serialisation, no HTTP/2,
no gRPC core. It is grpc-gateway's `Register…HandlerServer`, with the same invoker as a remote
backend (`invoke(request, timeout=…, metadata=…)`), failing with the same `AioRpcError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import grpc

from gateway.backends import Invoker

Metadata = Sequence[tuple[str, Any]]
_DONE = object()


class LocalContext:
    """What a service's handlers use of `grpc.aio.ServicerContext`, for one in-process call:
    its metadata, `abort`, and the code it ended with."""

    __slots__ = ("_code", "_details", "_metadata", "_trailing")

    def __init__(self, metadata: Metadata) -> None:
        self._metadata = tuple(metadata)
        self._code: grpc.StatusCode | None = None
        self._details = ""
        self._trailing: Metadata = ()

    def invocation_metadata(self) -> Metadata:
        return self._metadata

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Metadata = ()
    ) -> None:
        """End the call with `code` (raises grpc.aio's AbortError, as grpc.aio does)."""
        self._code, self._details, self._trailing = code, details, tuple(trailing_metadata)
        raise grpc.aio.AbortError()

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def error(self) -> grpc.aio.AioRpcError:
        """The error a client over gRPC would have got for the abort."""
        return _rpc_error(self._code or grpc.StatusCode.UNKNOWN, self._details, self._trailing)


def _rpc_error(
    code: grpc.StatusCode, details: str, trailing: Metadata = ()
) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailing), details)


def _deadline_exceeded() -> grpc.aio.AioRpcError:
    return _rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")


class LocalStream:
    """A server-streaming call in-process, read as a grpc.aio call is (`read()` until
    `grpc.aio.EOF`, `cancel()`): the handler runs in a task of its own, as under grpc.aio, and
    hands over one message at a time."""

    def __init__(self, messages: AsyncIterator[Any], context: LocalContext, timeout: float | None):
        self._context = context
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)
        self._task = asyncio.ensure_future(self._pump(messages, timeout))

    async def _pump(self, messages: AsyncIterator[Any], timeout: float | None) -> None:
        try:
            async with asyncio.timeout(timeout):
                async for message in messages:
                    await self._queue.put(message)
        except grpc.aio.AbortError:
            await self._queue.put(self._context.error())
        except TimeoutError:
            await self._queue.put(_deadline_exceeded())
        else:
            await self._queue.put(_DONE)

    async def read(self) -> Any:
        if self._task.cancelled():
            raise asyncio.CancelledError
        getting = asyncio.ensure_future(self._queue.get())
        try:
            await asyncio.wait({getting, self._task}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            getting.cancel()
            raise
        if not getting.done():  # the handler ended without a last word: cancelled, or raised
            getting.cancel()
            if self._task.cancelled():
                raise asyncio.CancelledError
            raise _rpc_error(grpc.StatusCode.UNKNOWN, repr(self._task.exception()))
        item = getting.result()
        if item is _DONE:
            return grpc.aio.EOF
        if isinstance(item, grpc.aio.AioRpcError):
            raise item
        return item

    def cancel(self) -> bool:
        return self._task.cancel()


class LocalBackend:
    """A service whose wrapped method handlers (`/package.Service/Method` -> handler) are in
    this process."""

    def __init__(self, name: str, handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]):
        self.name = name
        self.handlers = handlers

    def invoker(
        self, path: str, serializer: Invoker, deserializer: Invoker, streaming: bool
    ) -> Invoker:
        """The callable of one method: `invoker(request, timeout=..., metadata=...)`; the
        request and response are messages, never serialised."""
        handler = self.handlers[path]
        if streaming:
            streamer: Any = handler.unary_stream

            def stream(
                request: Any, timeout: float | None = None, metadata: Metadata = ()
            ) -> LocalStream:
                context = LocalContext(metadata)
                return LocalStream(streamer(request, context), context, timeout)

            return stream
        behaviour: Any = handler.unary_unary

        async def call(request: Any, timeout: float | None = None, metadata: Metadata = ()) -> Any:
            context = LocalContext(metadata)
            try:
                async with asyncio.timeout(timeout):
                    return await behaviour(request, context)
            except grpc.aio.AbortError:
                raise context.error() from None
            except TimeoutError:
                raise _deadline_exceeded() from None

        return call

    async def health(self, timeout: float) -> str:
        """This process is the service: it serves while it runs."""
        return "SERVING"

    async def close(self) -> None:
        """Nothing to close: the server owns the handlers."""
