"""Runs the gateway process.

    python -m gateway            serve (default)
    python -m gateway config     print the settings as this process would use them
    python -m gateway openapi    print the OpenAPI document

uvicorn (httptools, uvloop) serves the raw ASGI app. The port is bound before anything else
starts, so a busy port ends the process at once with exit code 1 and one line on stderr; bad
configuration exits with 2. SIGTERM or SIGINT: stop accepting connections, end open streams,
let in-flight requests finish (up to SHUTDOWN_GRACE_SECONDS), exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import signal
import socket
import sys
from collections.abc import Iterator, Sequence

import uvicorn
import uvloop

from chassis import config as cfg
from chassis import logs
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

    def __init__(self, config: uvicorn.Config, gateway: Gateway) -> None:
        super().__init__(config)
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
        self.gateway.draining.set()
        self.should_exit = True


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port; raises OSError (e.g. the port is in use)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


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
        sock = listen(config.http_host, config.http_port)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(
            f"gateway: error: cannot listen on {config.http_host}:{config.http_port}: {reason}",
            file=sys.stderr,
        )
        return 1
    gateway = Gateway(config, api, dumps(document))
    server = _Server(
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
        ),
        gateway,
    )
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
