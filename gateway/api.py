"""The gateway's routes: every annotated RPC of the services, compiled once for serving."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType

from gateway import bindings
from gateway.backends import Invoker, ServiceBackend
from gateway.bindings import HttpBinding, Rpc
from gateway.routes import Entry, RouteTable
from gateway.transcode import RequestMapper, ResponseRenderer


@dataclass(eq=False)
class Route:
    binding: HttpBinding
    mapper: RequestMapper
    renderer: ResponseRenderer
    invoke: Invoker | None = None  # set by Api.connect, once channels exist

    @property
    def rpc(self) -> Rpc:
        return self.binding.rpc

    @property
    def name(self) -> str:
        """The route's template, as metrics and logs name it."""
        return self.binding.template.text


class Api:
    """Raises bindings.BindingError or routes.RouteConflict when the annotations cannot be
    served as they are."""

    def __init__(
        self,
        modules: Iterable[ModuleType] = bindings.SERVICE_MODULES,
        backends: Mapping[str, str] = bindings.BACKENDS,
    ) -> None:
        self.rpcs = bindings.rpcs(modules, backends)
        self.routes = [
            Route(binding, RequestMapper(binding), ResponseRenderer(binding))
            for rpc in self.rpcs
            for binding in bindings.http_bindings(rpc)
        ]
        self.table: RouteTable[Route] = RouteTable(
            Entry(r.binding.method, r.binding.template, r, r.rpc.label) for r in self.routes
        )

    def connect(self, backends: Mapping[str, ServiceBackend]) -> None:
        """Give every route the pre-built callable of its method."""
        invokers: dict[str, Invoker] = {}
        for route in self.routes:
            rpc = route.rpc
            if rpc.path not in invokers:
                invokers[rpc.path] = backends[rpc.backend].invoker(
                    rpc.path,
                    rpc.request.SerializeToString,
                    rpc.response.FromString,
                    rpc.server_streaming,
                )
            route.invoke = invokers[rpc.path]
