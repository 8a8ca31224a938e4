"""Server-streaming RPCs over HTTP/1.1: newline-delimited JSON (`{"result": …}` per message,
`{"error": <Status>}` on failure), or Server-Sent Events (`data: <message>` per message,
`event: error` with a Status on failure) when the client accepts `text/event-stream`.

The response starts only once the first message arrived, so a call that fails at once (an
unknown id, a missing token) is an ordinary error response with its HTTP status. After that
the stream runs until the RPC ends, the client leaves (the call is cancelled) or the gateway
shuts down (the client gets an UNAVAILABLE error to reconnect elsewhere).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

from gateway.errors import HttpError, from_rpc_error
from gateway.protojson import dumps
from gateway.transcode import ResponseRenderer

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
NDJSON, SSE = b"application/x-ndjson", b"text/event-stream"


async def serve(
    call: Any,
    renderer: ResponseRenderer,
    sse: bool,
    first_timeout: float,
    headers: Sequence[tuple[bytes, bytes]],
    receive: Receive,
    send: Send,
    draining: asyncio.Event,
) -> None:
    """Relay the gRPC stream `call` to the client; raises HttpError if it fails before its
    first message."""
    try:
        first = await asyncio.wait_for(call.read(), first_timeout)
    except TimeoutError:
        call.cancel()
        raise HttpError(
            grpc.StatusCode.DEADLINE_EXCEEDED, f"no first message within {first_timeout:g}s"
        ) from None
    except grpc.aio.AioRpcError as exc:
        raise from_rpc_error(exc) from None
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", SSE if sse else NDJSON),
                (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),
                *headers,
            ],
        }
    )
    watcher = asyncio.ensure_future(_until_gone_or_draining(receive, draining))
    watcher.add_done_callback(lambda _: call.cancel())
    item, ending = first, b""
    try:
        while item is not grpc.aio.EOF:
            await send(
                {
                    "type": "http.response.body",
                    "body": _frame(renderer, item, sse),
                    "more_body": True,
                }
            )
            item = await call.read()
    except (grpc.aio.AioRpcError, asyncio.CancelledError) as exc:
        if not watcher.done():
            if isinstance(exc, asyncio.CancelledError):
                raise
            assert isinstance(exc, grpc.aio.AioRpcError)
            ending = _error_frame(from_rpc_error(exc), sse)
        elif watcher.result() == "draining":
            ending = _error_frame(
                HttpError(grpc.StatusCode.UNAVAILABLE, "the gateway is shutting down; reconnect"),
                sse,
            )
        else:
            return  # the client left: nobody to tell
    finally:
        watcher.cancel()
    with contextlib.suppress(OSError):
        await send({"type": "http.response.body", "body": ending, "more_body": False})


def _frame(renderer: ResponseRenderer, message: Any, sse: bool) -> bytes:
    value = renderer.value(message)
    return b"data: " + dumps(value) + b"\n\n" if sse else dumps({"result": value}) + b"\n"


def _error_frame(error: HttpError, sse: bool) -> bytes:
    if sse:
        return b"event: error\ndata: " + error.body() + b"\n\n"
    return dumps({"error": error.status()}) + b"\n"


async def _until_gone_or_draining(receive: Receive, draining: asyncio.Event) -> str:
    gone = asyncio.ensure_future(_disconnected(receive))
    drain = asyncio.ensure_future(draining.wait())
    try:
        done, _ = await asyncio.wait({gone, drain}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        drain.cancel()
    return "gone" if gone in done else "draining"


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
