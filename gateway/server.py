"""Runs the gateway: as a process of its own, or inside a service's server process.

    python -m gateway            serve (default)
    python -m gateway config     print the settings as this process would use them
    python -m gateway openapi    print the OpenAPI document

uvicorn (httptools, uvloop) serves the raw ASGI app. The port is bound before anything else
starts, so a busy port ends the process at once with exit code 1 and one line on stderr; bad
configuration exits with 2. SIGTERM or SIGINT: stop accepting connections, end open streams,
let in-flight requests finish (up to SHUTDOWN_GRACE_SECONDS), exit 0.

`IN_PROCESS` is the same gateway inside a service's server (`{SERVICE}_HTTP_PORT`, wired by
`chassis.service`): that service's methods are called in-process (gateway/local.py), the
others over gRPC as here; the server's own signal handling stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import signal
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import uvicorn
import uvloop

from chassis import config as cfg
from chassis import logs
from chassis.ports import PortUnavailable, bind
from gateway import bindings, comments, limits, openapi
from gateway.api import Api
from gateway.app import Gateway
from gateway.bindings import BindingError
from gateway.config import GatewayConfig
from gateway.protojson import dumps
from gateway.routes import RouteConflict

log = logging.getLogger("gateway")


class _Server(uvicorn.Server):
    """uvicorn's server with signal handling that drains the gateway and exits cleanly
    (uvicorn's own re-raises the signal once it has shut down)."""

    def __init__(self, gateway: Gateway) -> None:
        config = gateway.config
        super().__init__(
            uvicorn.Config(
                gateway,
                http=limits.protocol(config.header_timeout),
                ws="none",
                lifespan="on",
                access_log=False,
                log_config=None,
                proxy_headers=False,
                server_header=False,
                backlog=2048,
                timeout_graceful_shutdown=math.ceil(config.shutdown_grace),
            )
        )
        self.gateway = gateway

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop, sig)
        try:
            yield
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    def _stop(self, sig: int) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        log.info("gateway shutting down (%s)", signal.Signals(sig).name)
        self.drain()

    def drain(self) -> None:
        self.gateway.draining.set()
        self.should_exit = True


class _InProcessServer(_Server):
    """The gateway's server inside a service's process: the process owns the signals, and
    `ready` is set once the gateway takes requests."""

    def __init__(self, gateway: Gateway, ready: asyncio.Event) -> None:
        super().__init__(gateway)
        self.ready = ready

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            self.ready.set()


_LISTENING = {"GATEWAY_HTTP_HOST", "GATEWAY_HTTP_PORT"}


class InProcess:
    """The gateway as a service's server serves it (`chassis.service.HttpFront`)."""

    def settings(self) -> list[tuple[str, str, str]]:
        """The gateway's settings but where it listens (the server's own say that); raises
        chassis.config.ConfigError if they are unusable."""
        config = cfg.load(GatewayConfig)
        cfg.check(config)
        return [row for row in cfg.effective(config) if row[0] not in _LISTENING]

    async def serve(
        self,
        service: str,
        handlers: Mapping[str, Any],
        sock: socket.socket,
        started: asyncio.Event,
        stopping: asyncio.Event,
    ) -> None:
        """Serve HTTP on `sock` until `stopping` is set, `service`'s methods through
        `handlers` (path -> wrapped handler); `started` is set once requests are taken (a
        server that could not start returns without setting it)."""
        host, port = sock.getsockname()[:2]
        config = dataclasses.replace(cfg.load(GatewayConfig), http_host=host, http_port=port)
        # uvicorn's "Started server process" and the like would name the server's own life,
        # which it logs itself; its warnings and errors still show.
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        api, document = build(config)
        gateway = Gateway(config, api, dumps(document), local={service: handlers})
        server = _InProcessServer(gateway, started)
        serving = asyncio.ensure_future(server.serve(sockets=[sock]))
        stop = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait({serving, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            server.drain()
            await serving


IN_PROCESS = InProcess()


def build(config: GatewayConfig) -> tuple[Api, dict[str, object]]:
    """The routes and the OpenAPI document; raises BindingError or RouteConflict."""
    api = Api()
    return api, openapi.document(api, comments.load())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway")
    parser.add_argument(
        "command", nargs="?", default="serve", choices=["serve", "config", "openapi"]
    )
    args = parser.parse_args(argv)
    try:
        config = cfg.load(GatewayConfig)
    except cfg.ConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    if args.command == "config":
        for env, value, doc in cfg.effective(config):
            print(f"{env:32} {value:24} {doc}")
        return 0
    logs.configure("gateway", config.log_level, config.log_format)
    try:
        api, document = build(config)
    except (BindingError, RouteConflict) as exc:
        print(f"gateway: error: {exc}", file=sys.stderr)
        return 1
    if args.command == "openapi":
        print(json.dumps(document, indent=2))
        return 0
    try:
        sock = bind(config.http_host, config.http_port)
    except PortUnavailable as exc:
        print(f"gateway: error: {exc}", file=sys.stderr)
        return 1
    server = _Server(Gateway(config, api, dumps(document)))
    log.info(
        "gateway listening on %s:%d (HTTP); %s; %d routes",
        config.http_host,
        config.http_port,
        ", ".join(f"{name} at {config.target(name)}" for name in bindings.backend_names()),
        len(api.routes),
        extra={"port": config.http_port},
    )
    with sock:
        uvloop.run(server.serve(sockets=[sock]))
    return 0
