"""The gateway as a raw ASGI application (no framework on the hot path).

A request is matched against the route table, its message is built by the route's mapper, the
pre-built callable of its method is called with a deadline and the forwarded headers as
metadata, and the response (or the failure, as a google.rpc.Status) is written back. Besides
the API: /healthz, /readyz, /metrics, /openapi.json, /docs and the screens (/kiosk, /monitor,
/kitchen).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import grpc

from chassis import logs
from gateway import bindings, metrics, screens, streaming
from gateway.api import Api, Route
from gateway.backends import Backend, ServiceBackend
from gateway.config import GatewayConfig
from gateway.errors import HttpError, bad_request, from_rpc_error
from gateway.limits import StreamLimits, client_address
from gateway.local import LocalBackend
from gateway.protojson import dumps
from gateway.routes import NoRoute

log = logging.getLogger(__name__)
access = logging.getLogger("comanda.access")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Page = tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]  # status, body, content type, headers
Handler = Callable[[], Awaitable[Page]]

STATIC = Path(__file__).parent / "static"
HEALTH_TIMEOUT = 0.5
# Request headers passed to the services as gRPC metadata (lower-case), besides x-request-id.
FORWARDED = frozenset({b"authorization", b"traceparent", b"tracestate", b"x-signature"})
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_GRPC_TIMEOUT = re.compile(r"(\d{1,8})([HMSmun])\Z")
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}\Z")
_JSON = b"application/json"


class ClientGone(Exception):
    """The client closed the connection before sending its whole request."""


class Gateway:
    """`local`: the services whose method handlers are in this process (name -> its wrapped
    handlers by method path), called in-process; every other service is called over gRPC."""

    def __init__(
        self,
        config: GatewayConfig,
        api: Api,
        openapi_json: bytes,
        local: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.config = config
        self.api = api
        self.table = api.table
        self.openapi_json = openapi_json
        self.local = dict(local or {})
        self.backends: dict[str, ServiceBackend] = {}
        self.draining = asyncio.Event()
        self.streams = StreamLimits(config.max_streams_per_client, config.max_streams)
        docs = (STATIC / "index.html").read_bytes()
        self.pages: dict[str, Page] = {
            "/openapi.json": (200, openapi_json, _JSON, []),
            "/docs": (200, docs, b"text/html; charset=utf-8", []),
            "/docs/": (200, docs, b"text/html; charset=utf-8", []),
            "/docs/docs.js": (
                200,
                (STATIC / "docs.js").read_bytes(),
                b"text/javascript; charset=utf-8",
                [],
            ),
            "/docs/docs.css": (
                200,
                (STATIC / "docs.css").read_bytes(),
                b"text/css; charset=utf-8",
                [],
            ),
            "/": (307, b"", b"text/plain", [(b"location", b"/docs")]),
            **screens.pages(),
        }
        self.probes: dict[str, Handler] = {
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/metrics": self._metrics,
        }

    # -- ASGI ---------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def start(self) -> None:
        """Open the channels (they need the running event loop)."""
        self.draining = asyncio.Event()
        self.backends = {
            name: (
                LocalBackend(name, self.local[name])
                if name in self.local
                else Backend(name, self.config.target(name))
            )
            for name in bindings.backend_names()
        }
        self.api.connect(self.backends)

    async def close(self) -> None:
        await asyncio.gather(*(backend.close() for backend in self.backends.values()))

    # -- requests -----------------------------------------------------------------------
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method: str = scope["method"]
        raw_path = scope.get("raw_path")
        path = raw_path.decode("latin-1") if raw_path else scope["path"]
        headers: dict[bytes, bytes] = {}
        metadata: list[tuple[str, str]] = []
        unfit = ""  # a header that cannot travel as gRPC metadata
        for name, value in scope["headers"]:
            headers[name] = value
            if name in FORWARDED:
                text = value.decode("latin-1")
                if not (value.isascii() and text.isprintable()):
                    unfit = name.decode()
                metadata.append((name.decode(), text))
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")
        if not _REQUEST_ID.match(request_id):
            request_id = str(uuid.uuid4())
        logs.request_id_var.set(request_id)
        metadata.append(("x-request-id", request_id))
        echo = (b"x-request-id", request_id.encode())
        route_name, status, probe = "(unmatched)", 500, False
        try:
            if unfit:
                raise bad_request(unfit, "only printable ASCII can be passed on to the service")
            special = self._special(method, path)
            if special is not None:
                route_name, probe = path, True
                status, body, content_type, extra = await special()
                await _respond(send, status, body, content_type, echo, *extra)
                return
            try:
                template, route, segments = self.table.match(method, path)
            except NoRoute as exc:
                own_page = path in self.probes or path in self.pages
                raise _no_route(method, path, ("GET",) if own_page else exc.allowed) from None
            route_name = route.name
            try:
                variables = template.bind(segments)
            except UnicodeDecodeError:
                raise HttpError(
                    grpc.StatusCode.INVALID_ARGUMENT, "the path is not valid UTF-8 once decoded"
                ) from None
            status = await self._call(
                route, variables, scope, receive, send, headers, metadata, echo
            )
        except HttpError as error:
            status = error.http_status
            if status >= 500:
                log.warning("%s %s: %d %s", method, route_name, status, error.message)
            await _respond(send, status, error.body(), _JSON, echo, *error.headers)
        except ClientGone:
            status = 499
        except Exception:
            log.exception("%s %s failed", method, route_name)
            internal = HttpError(
                grpc.StatusCode.INTERNAL, f"internal error (request id {request_id})"
            )
            status = internal.http_status
            await _respond(send, status, internal.body(), _JSON, echo)
        finally:
            elapsed = time.perf_counter() - started
            metrics.observe(method, route_name, status, elapsed)
            # Route templates, never paths: no ids or personal data in the message.
            fields = {
                "route": route_name,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
            }
            message = f"{method} {route_name} {status} {elapsed * 1000:.1f}ms"
            if probe:  # probes and scrapes: not worth a line
                access.debug(message, extra=fields)
            else:
                logs.info_line(access, message, fields)

    async def _call(
        self,
        route: Route,
        variables: dict[str, str],
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: Mapping[bytes, bytes],
        metadata: list[tuple[str, str]],
        echo: tuple[bytes, bytes],
    ) -> int:
        mapper = route.mapper
        body = b""
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if mapper.takes_body:
            body = await self._read_body(receive, headers.get(b"content-length"))
            if body and not mapper.raw_body and content_type and not _is_json(content_type):
                raise HttpError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"unsupported content type {content_type!r}: send application/json",
                    http_status=415,
                )
        message = mapper.build(
            variables,
            scope.get("query_string", b""),
            body,
            content_type,
            headers.get(b"idempotency-key", b"").decode("latin-1"),
        )
        timeout = _grpc_timeout(headers.get(b"grpc-timeout"))
        assert route.invoke is not None, "the gateway was not started"
        if route.rpc.server_streaming:
            peer = (scope.get("client") or ("unknown", 0))[0]
            with self.streams.hold(client_address(peer, headers, self.config.trusted_proxies)):
                call = route.invoke(message, timeout=timeout, metadata=metadata)
                sse = b"text/event-stream" in headers.get(b"accept", b"")
                await streaming.serve(
                    call,
                    route.renderer,
                    sse,
                    timeout or self.config.timeout,
                    [echo],
                    receive,
                    send,
                    self.draining,
                )
            return 200
        try:
            response = await route.invoke(
                message, timeout=timeout or self.config.timeout, metadata=metadata
            )
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
        payload, response_type = route.renderer.render(response)
        await _respond(send, 200, payload, response_type, echo)
        return 200

    async def _read_body(self, receive: Receive, content_length: bytes | None) -> bytes:
        """The request body: 408 if it does not arrive within the body timeout, 413 if it
        is larger than allowed."""
        try:
            async with asyncio.timeout(self.config.body_timeout):
                return await self._receive_body(receive, content_length)
        except TimeoutError:
            raise HttpError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"the request body did not arrive within {self.config.body_timeout:g}s",
                http_status=408,
                headers=[(b"connection", b"close")],
            ) from None

    async def _receive_body(self, receive: Receive, content_length: bytes | None) -> bytes:
        limit = self.config.max_body
        if content_length is not None and content_length.isdigit() and int(content_length) > limit:
            raise _too_large(limit)
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        body: bytes = message.get("body", b"")
        if not message.get("more_body"):
            if len(body) > limit:
                raise _too_large(limit)
            return body
        chunks, size = [body], len(body)
        while message.get("more_body"):
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        return b"".join(chunks)

    # -- the gateway's own pages --------------------------------------------------------
    def _special(self, method: str, path: str) -> Handler | None:
        if method != "GET":
            return None
        probe = self.probes.get(path)
        if probe is not None:
            return probe
        page = self.pages.get(path)
        if page is None:
            return None

        async def serve_page() -> Page:
            return page

        return serve_page

    async def backend_health(self) -> dict[str, str]:
        names = list(self.backends)
        answers = await asyncio.gather(*(self.backends[n].health(HEALTH_TIMEOUT) for n in names))
        return dict(zip(names, answers, strict=True))

    async def _healthz(self) -> Page:
        backends = await self.backend_health()
        return 200, dumps({"status": "SERVING", "backends": backends}), _JSON, []

    async def _readyz(self) -> Page:
        if self.draining.is_set():
            raise HttpError(grpc.StatusCode.UNAVAILABLE, "not ready: shutting down")
        backends = await self.backend_health()
        down = {name: state for name, state in backends.items() if state != "SERVING"}
        if down:
            states = ", ".join(f"{name} is {state}" for name, state in sorted(down.items()))
            raise HttpError(grpc.StatusCode.UNAVAILABLE, f"not ready: {states}")
        return 200, dumps({"status": "READY", "backends": backends}), _JSON, []

    async def _metrics(self) -> Page:
        return 200, metrics.exposition(), metrics.CONTENT_TYPE, []


async def _respond(
    send: Send, status: int, body: bytes, content_type: bytes, *headers: tuple[bytes, bytes]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _grpc_timeout(value: bytes | None) -> float | None:
    if not value:
        return None
    match = _GRPC_TIMEOUT.match(value.decode("latin-1").strip())
    if match is None:
        raise HttpError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Grpc-Timeout {value.decode('latin-1')!r}: expected digits and a unit "
            "(H, M, S, m, u, n), e.g. 5S",
        )
    return int(match.group(1)) * _TIMEOUT_UNITS[match.group(2)]


def _no_route(method: str, path: str, allowed: tuple[str, ...]) -> HttpError:
    if allowed:
        return HttpError(
            grpc.StatusCode.UNIMPLEMENTED,
            f"{method} is not allowed on {path}; use {', '.join(allowed)}",
            http_status=405,
            headers=[(b"allow", ", ".join(allowed).encode())],
        )
    return HttpError(grpc.StatusCode.NOT_FOUND, f"no route for {method} {path}")


def _too_large(limit: int) -> HttpError:
    return HttpError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"the request body is larger than {limit} bytes",
        http_status=413,
    )
