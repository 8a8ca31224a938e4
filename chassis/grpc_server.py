"""The gRPC server bootstrap: grpc.aio with health, reflection, interceptors and graceful
shutdown (health goes NOT_SERVING, new calls are refused, in-flight calls get `grace`
seconds to finish)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_reflection.v1alpha._async import ReflectionServicer

from chassis.interceptors import Interceptors
from chassis.ports import PortUnavailable

log = logging.getLogger(__name__)


class _Reflection(ReflectionServicer):  # type: ignore[misc]
    """Server reflection that also resolves method and enum-value symbols.

    The Python descriptor pool cannot find the file of `pkg.Service.Method` (nor of an enum
    value), so `grpcurl describe pkg.Service.Method` fails with the stock servicer; resolve
    the enclosing symbol instead.
    """

    def _file_containing_symbol(self, request: Any, fully_qualified_name: str) -> Any:
        pool = descriptor_pool.Default()
        name = fully_qualified_name
        while name:
            try:
                pool.FindFileContainingSymbol(name)
                return super()._file_containing_symbol(request, name)
            except KeyError:
                name = name.rpartition(".")[0]
        return super()._file_containing_symbol(request, fully_qualified_name)


Registration = tuple[Callable[[Any, grpc.aio.Server], None], Any]


class GrpcServer:
    def __init__(
        self,
        service: str,
        host: str,
        port: int,
        registrations: Sequence[Registration],
        service_names: Sequence[str],
        interceptors: Interceptors | None = None,
    ) -> None:
        self.service = service
        self.address = f"{host}:{port}"
        self.health = health.aio.HealthServicer()
        self.service_names = list(service_names)
        self.server = grpc.aio.server(
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", 4 * 1024 * 1024),
                ("grpc.keepalive_permit_without_calls", 1),
                # Clients reconnect (and re-resolve DNS) now and then, so replicas added by an
                # autoscaler get their share of long-lived channels such as the gateway's.
                ("grpc.max_connection_age_ms", 300_000),
                ("grpc.max_connection_age_grace_ms", 30_000),
                ("grpc.http2.min_ping_interval_without_data_ms", 5000),
            ],
        )
        # The services' own methods get the interceptors; health and reflection do not.
        own = interceptors.registering(self.server) if interceptors else self.server
        for add, servicer in registrations:
            add(servicer, own)
        # The services' own methods as wrapped for gRPC, by path, to be called in-process.
        self.handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = getattr(own, "handlers", {})
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [*self.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME]
        reflection._reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
            _Reflection(names), self.server
        )
        self.port = 0

    async def start(self) -> int:
        try:
            self.port = self.server.add_insecure_port(self.address)
        except RuntimeError:
            self.port = 0
        if not self.port:
            raise PortUnavailable(
                f"cannot listen on {self.address}: the port is in use or not allowed"
            )
        await self.server.start()
        for name in ["", *self.service_names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return self.port

    async def stop(self, grace: float) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
