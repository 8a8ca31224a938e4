"""The gRPC side: one grpc.aio channel per backend (balanced over its replicas with the
round_robin policy), a pre-built callable per method, and grpc.health.v1 checks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health_pb2

from gateway.config import channel_targets

CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    # A backend that comes back is found within two seconds, not after minutes of backoff.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
Invoker = Callable[..., Any]


class ServiceBackend(Protocol):
    """What the gateway needs of a service: a remote `Backend`, or a `gateway.local`
    `LocalBackend` when the gateway runs inside that service's server."""

    name: str

    def invoker(
        self, path: str, serializer: Invoker, deserializer: Invoker, streaming: bool
    ) -> Invoker: ...

    async def health(self, timeout: float) -> str: ...

    async def close(self) -> None: ...


class Backend:
    """One gRPC service (all its replicas)."""

    def __init__(self, name: str, targets: str) -> None:
        self.name = name
        self.targets = targets
        self.channels = [
            grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
            for target in channel_targets(targets)
        ]
        self._turn = 0
        self._health = [
            channel.unary_unary(
                HEALTH_CHECK,
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )
            for channel in self.channels
        ]

    def invoker(
        self, path: str, serializer: Invoker, deserializer: Invoker, streaming: bool
    ) -> Invoker:
        """The callable of one method: `invoker(request, timeout=..., metadata=...)`."""
        callables: list[Invoker] = [
            (channel.unary_stream if streaming else channel.unary_unary)(
                path,
                request_serializer=serializer,
                response_deserializer=deserializer,
                _registered_method=True,  # type: ignore[call-arg]
            )
            for channel in self.channels
        ]
        if len(callables) == 1:
            return callables[0]

        def rotate(*args: Any, **kwargs: Any) -> Any:
            self._turn = (self._turn + 1) % len(callables)
            return callables[self._turn](*args, **kwargs)

        return rotate

    async def health(self, timeout: float) -> str:
        """SERVING when a replica says so; otherwise what the first one said (or why it could
        not say)."""
        answers = await asyncio.gather(*(self._check(call, timeout) for call in self._health))
        return "SERVING" if "SERVING" in answers else answers[0]

    @staticmethod
    async def _check(call: Invoker, timeout: float) -> str:
        try:
            reply = await call(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            return str(exc.code().name)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self.channels))
