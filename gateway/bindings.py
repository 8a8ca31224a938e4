"""The API as the protos describe it: the RPCs of the gateway's services and the HTTP bindings
of their `google.api.http` annotations (the rule and its `additional_bindings`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType

from google.api import annotations_pb2, http_pb2
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from chassis import access
from chassis.access import Access
from comanda.orders.v1 import catalog_pb2, customers_pb2, orders_pb2
from comanda.payment.v1 import payment_pb2
from gateway.routes import PathTemplate, TemplateError

SERVICE_MODULES: tuple[ModuleType, ...] = (customers_pb2, catalog_pb2, orders_pb2, payment_pb2)
# Which backend serves the services of each proto package (its address is the setting
# GATEWAY_<NAME>_TARGET).
BACKENDS = {"comanda.orders.v1": "orders", "comanda.payment.v1": "payment"}
ANY_METHOD = ("GET", "POST", "PUT", "PATCH", "DELETE")


def backend_names(backends: Mapping[str, str] = BACKENDS) -> list[str]:
    return list(dict.fromkeys(backends.values()))


class BindingError(ValueError):
    """An annotation the gateway cannot serve (one-line reason)."""


@dataclass(frozen=True)
class Rpc:
    path: str  # the gRPC method path, "/comanda.orders.v1.OrderService/CreateOrder"
    label: str  # "OrderService.CreateOrder"
    backend: str  # "orders" or "payment"
    descriptor: MethodDescriptor
    request: type[Message]
    response: type[Message]
    server_streaming: bool
    access: Access  # who may call it (comanda.options.v1 audience and roles)


@dataclass(frozen=True)
class HttpBinding:
    rpc: Rpc
    method: str  # GET, POST, ...
    template: PathTemplate
    body: str  # "" (no body), "*" or a top-level request field
    response_body: str  # "" (the whole response) or a top-level response field
    index: int  # 0 for the annotation's rule, 1.. for its additional bindings


def rpcs(
    modules: Iterable[ModuleType] = SERVICE_MODULES, backends: Mapping[str, str] = BACKENDS
) -> list[Rpc]:
    """Every RPC of every service declared in `modules`; `backends` names the backend of
    each proto package."""
    found = []
    for module in modules:
        for service in module.DESCRIPTOR.services_by_name.values():
            backend = backends.get(service.file.package)
            if backend is None:
                raise BindingError(
                    f"{service.full_name}: no backend serves package {service.file.package}"
                )
            for method in service.methods:
                if method.client_streaming:
                    continue  # not reachable over HTTP/1.1 request-response
                found.append(
                    Rpc(
                        path=f"/{service.full_name}/{method.name}",
                        label=f"{service.name}.{method.name}",
                        backend=backend,
                        descriptor=method,
                        request=message_factory.GetMessageClass(method.input_type),
                        response=message_factory.GetMessageClass(method.output_type),
                        server_streaming=method.server_streaming,
                        access=access.of_method(method),
                    )
                )
    return found


def http_rule(rpc: Rpc) -> http_pb2.HttpRule | None:
    options = rpc.descriptor.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return None
    rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
    return rule


def http_bindings(rpc: Rpc) -> list[HttpBinding]:
    """The HTTP bindings of an RPC; none when it has no annotation."""
    rule = http_rule(rpc)
    if rule is None:
        return []
    found: list[HttpBinding] = []
    for index, each in enumerate([rule, *rule.additional_bindings]):
        if index and each.additional_bindings:
            raise BindingError(f"{rpc.label}: additional_bindings may not nest")
        pattern = each.WhichOneof("pattern")
        if pattern is None:
            raise BindingError(f"{rpc.label}: an http rule without a method and path")
        if pattern == "custom":
            kind, path = each.custom.kind.upper(), each.custom.path
            methods = ANY_METHOD if kind == "*" else (kind,)
        else:
            methods, path = (pattern.upper(),), getattr(each, pattern)
        try:
            template = PathTemplate.parse(path)
        except TemplateError as exc:
            raise BindingError(f"{rpc.label}: {exc}") from None
        found.extend(
            HttpBinding(rpc, method, template, each.body, each.response_body, index)
            for method in methods
        )
    return found
