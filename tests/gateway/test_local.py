"""The in-process backend (gateway/local.py) against handlers of its own: what a call returns
or raises is what the same call over gRPC would, and a stream is read, ended and cancelled as
a grpc.aio call is. (The real services behind it: test_e2e.py, the "in-process" front.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import wrappers_pb2
from google.rpc import status_pb2

from gateway.errors import from_rpc_error
from gateway.local import LocalBackend

DETAILS = status_pb2.Status(code=5, message="order 42 not found").SerializeToString()


async def echo(request: Any, context: Any) -> Any:
    metadata = dict(context.invocation_metadata())
    return wrappers_pb2.StringValue(value=f"{request.value} {metadata.get('x-request-id', '')}")


async def missing(request: Any, context: Any) -> Any:
    await context.abort(
        grpc.StatusCode.NOT_FOUND,
        "not found",
        trailing_metadata=(("grpc-status-details-bin", DETAILS),),
    )


async def slow(request: Any, context: Any) -> Any:
    await asyncio.Event().wait()


async def counting(request: Any, context: Any) -> AsyncIterator[Any]:
    for i in range(int(request.value)):
        yield wrappers_pb2.StringValue(value=str(i))


async def refusing_after_one(request: Any, context: Any) -> AsyncIterator[Any]:
    yield wrappers_pb2.StringValue(value="first")
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, "no longer allowed")


class Endless:
    def __init__(self) -> None:
        self.closed = asyncio.Event()

    async def __call__(self, request: Any, context: Any) -> AsyncIterator[Any]:
        try:
            yield wrappers_pb2.StringValue(value="first")
            await asyncio.Event().wait()
        finally:
            self.closed.set()


def backend(**handlers: Any) -> LocalBackend:
    def handler(behaviour: Any) -> Any:
        if asyncio.iscoroutinefunction(behaviour):
            return grpc.unary_unary_rpc_method_handler(behaviour)
        return grpc.unary_stream_rpc_method_handler(behaviour)

    return LocalBackend("test", {f"/t.S/{name}": handler(b) for name, b in handlers.items()})


def invoker(local: LocalBackend, name: str, streaming: bool = False) -> Any:
    return local.invoker(f"/t.S/{name}", lambda m: m, lambda b: b, streaming)


async def test_a_call_gets_the_request_and_the_metadata_and_returns_the_message():
    call = invoker(backend(Echo=echo), "Echo")
    request = wrappers_pb2.StringValue(value="hello")
    response = await call(request, timeout=1, metadata=[("x-request-id", "r-1")])
    assert response == wrappers_pb2.StringValue(value="hello r-1")


async def test_an_abort_is_the_rpc_error_a_grpc_client_gets_with_its_details():
    call = invoker(backend(Missing=missing), "Missing")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(wrappers_pb2.StringValue(), timeout=1)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "not found"
    http = from_rpc_error(raised.value)
    assert (http.http_status, http.message) == (404, "order 42 not found")


async def test_a_call_past_its_deadline_is_deadline_exceeded():
    call = invoker(backend(Slow=slow), "Slow")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(wrappers_pb2.StringValue(), timeout=0.05)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_a_stream_is_read_to_its_end():
    stream = invoker(backend(Count=counting), "Count", streaming=True)(
        wrappers_pb2.StringValue(value="3")
    )
    read = [await stream.read() for _ in range(4)]
    assert read[:3] == [wrappers_pb2.StringValue(value=str(i)) for i in range(3)]
    assert read[3] is grpc.aio.EOF


async def test_a_stream_that_aborts_raises_its_status_after_what_it_sent():
    stream = invoker(backend(Refuse=refusing_after_one), "Refuse", streaming=True)(
        wrappers_pb2.StringValue()
    )
    assert (await stream.read()).value == "first"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stream.read()
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_cancelled_stream_ends_its_handler_and_its_reader():
    endless = Endless()
    stream = invoker(backend(Endless=endless), "Endless", streaming=True)(
        wrappers_pb2.StringValue()
    )
    assert (await stream.read()).value == "first"
    reading = asyncio.ensure_future(stream.read())
    stream.cancel()
    async with asyncio.timeout(2):
        await endless.closed.wait()
    with pytest.raises(asyncio.CancelledError):
        await reading
    with pytest.raises(asyncio.CancelledError):
        await stream.read()


async def test_the_backend_is_this_process_so_it_serves_while_it_runs():
    local = backend(Echo=echo)
    assert await local.health(0.1) == "SERVING"
    await local.close()
