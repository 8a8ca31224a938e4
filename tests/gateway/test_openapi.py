"""Every annotated RPC is routed, every route is documented, and the document says what the
protos say."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from gateway import bindings, comments, openapi
from gateway.api import Api
from gateway.comments import REPO

API = Api()
COMMENTS = comments.load()
DOC = openapi.document(API, COMMENTS)


def _annotated_methods() -> set[str]:
    """Read straight from the generated modules, independently of gateway.bindings."""
    return {
        f"/{service.full_name}/{method.name}"
        for module in bindings.SERVICE_MODULES
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
        if method.GetOptions().HasExtension(annotations_pb2.http)
    }


def test_the_four_modules_declare_the_six_services():
    services = {rpc.descriptor.containing_service.name for rpc in API.rpcs}

    assert services == {
        "CustomerService",
        "CatalogService",
        "OrderService",
        "KitchenService",
        "PaymentService",
        "FakeCheckoutService",
    }


def test_every_annotated_rpc_has_a_route():
    annotated = _annotated_methods()
    routed = {route.rpc.path for route in API.routes}

    assert annotated, "no annotated method found"
    assert annotated - routed == set(), (
        f"annotated RPCs without a route: {sorted(annotated - routed)}"
    )
    assert routed - annotated == set(), (
        f"routes of RPCs without annotation: {sorted(routed - annotated)}"
    )


def test_every_rpc_of_the_services_is_annotated():
    unannotated = [rpc.label for rpc in API.rpcs if bindings.http_rule(rpc) is None]

    assert not unannotated, f"RPCs without google.api.http: {unannotated}"


def test_every_route_has_an_openapi_operation_and_nothing_else_does():
    expected = {
        (route.binding.template.openapi_path(), route.binding.method.lower())
        for route in API.routes
    }
    documented = {(path, method) for path, item in DOC["paths"].items() for method in item}

    assert expected - documented == set(), f"routes without an operation: {expected - documented}"
    assert documented - expected == set(), f"operations without a route: {documented - expected}"
    ids = [op["operationId"] for item in DOC["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)), "operation ids are unique"


def test_every_path_variable_and_query_field_is_a_parameter():
    for route in API.routes:
        operation = DOC["paths"][route.binding.template.openapi_path()][
            route.binding.method.lower()
        ]
        params = {(p["in"], p["name"]) for p in operation.get("parameters", [])}
        for variable in route.binding.template.variables:
            assert ("path", variable.field_path) in params, (
                f"{route.rpc.label}: {variable.field_path}"
            )
        query = {name for where, name in params if where == "query"}
        assert len(query) == len(route.mapper.query_params()), f"{route.rpc.label}: {query}"


def test_staff_methods_need_a_bearer_token_with_a_role_and_public_ones_do_not():
    for route in API.routes:
        operation = DOC["paths"][route.binding.template.openapi_path()][
            route.binding.method.lower()
        ]
        staff = route.rpc.access.staff
        assert (operation.get("security") == [{"bearerAuth": []}]) == staff, route.rpc.label
        if staff:
            assert operation["x-roles"] and operation["x-roles"] == list(route.rpc.access.roles)
            assert operation["description"].startswith("**Staff only: role `"), route.rpc.label
            assert {"401", "403"} <= set(operation["responses"]), route.rpc.label
        else:
            assert "x-roles" not in operation and "403" not in operation["responses"]
    scheme = DOC["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert scheme["bearerFormat"] == "JWT" and "make token" in scheme["description"]
    roles = {route.rpc.label: route.rpc.access.roles for route in API.routes}
    assert roles["KitchenService.UpdateOrderStatus"] == ("kitchen",)
    assert roles["KitchenService.ListKitchenQueue"] == ("kitchen",)
    for manager_only in (
        "CatalogService.CreateProduct",
        "CatalogService.UpdateProduct",
        "CatalogService.ArchiveProduct",
        "OrderService.ListOrders",
        "PaymentService.ListPayments",
        "PaymentService.RefundPayment",
        "CustomerService.EraseCustomer",
        "CustomerService.GetCustomer",
    ):
        assert roles[manager_only] == ("manager",), manager_only
    assert roles["OrderService.CreateOrder"] == ()


def test_the_proto_comments_are_the_descriptions():
    create = DOC["paths"]["/v1/orders"]["post"]
    order = DOC["components"]["schemas"]["comanda.orders.v1.Order"]
    status = DOC["components"]["schemas"]["comanda.orders.v1.OrderStatus"]

    assert create["summary"] == "Checks out a cart", create["summary"]
    assert "snapshots names and prices" in create["description"]
    assert order["description"] == "An order."
    assert order["properties"]["totalCentavos"] == {
        "type": "string",
        "format": "int64",
        "description": "Sum of the lines, in centavos.",
    }
    assert "ORDER_STATUS_READY" in status["enum"]
    assert "- `ORDER_STATUS_READY`: Ready for pickup (Pronto)." in status["description"]
    tags = {tag["name"]: tag["description"] for tag in DOC["tags"]}
    assert tags["KitchenService"] == "The kitchen's work: its queue and the status steps it takes."


def test_field_behaviors_become_required_and_read_only():
    schemas = DOC["components"]["schemas"]

    assert schemas["comanda.orders.v1.RegisterCustomerRequest"]["required"] == [
        "cpf",
        "name",
        "email",
    ]
    assert schemas["comanda.orders.v1.Customer"]["properties"]["createTime"]["readOnly"] is True


def test_every_reference_resolves():
    schemas = DOC["components"]["schemas"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for value in node for r in refs(value)]
        return []

    dangling = [
        ref for ref in refs(DOC) if ref.removeprefix("#/components/schemas/") not in schemas
    ]
    assert not dangling, dangling
    json.dumps(DOC)  # serialisable as it is served


def test_errors_streams_and_raw_bodies_are_described():
    watch = DOC["paths"]["/v1/orders/{order_id}:watch"]["get"]["responses"]["200"]["content"]
    webhook = DOC["paths"]["/v1/webhooks/{provider}"]["post"]
    update = DOC["paths"]["/v1/kitchen/orders/{order_id}:advance"]["post"]

    assert set(watch) == {"application/x-ndjson", "text/event-stream"}
    assert watch["application/x-ndjson"]["schema"]["properties"]["result"] == {
        "$ref": "#/components/schemas/comanda.orders.v1.Order"
    }
    assert webhook["requestBody"]["content"] == {
        "*/*": {"schema": {"type": "string", "format": "binary"}}
    }
    assert {"name": "x-signature", "in": "header"}.items() <= webhook["parameters"][1].items()
    body = update["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"status"}, "the path-bound order_id is not in the body"
    assert update["responses"]["default"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/google.rpc.Status"
    }
    checkout_params = {p["name"] for p in DOC["paths"]["/v1/orders"]["post"]["parameters"]}
    assert "Idempotency-Key" in checkout_params


@pytest.mark.parametrize(
    "name",
    [
        "comanda.orders.v1.OrderService.CreateOrder",
        "comanda.orders.v1.Order.total_centavos",
        "comanda.orders.v1.OrderStatus.ORDER_STATUS_READY",
        "comanda.payment.v1.PaymentService",
    ],
)
def test_comments_are_read_from_the_protos(name):
    assert COMMENTS.get(name), f"no comment for {name}"


def test_the_descriptor_set_is_what_compiling_the_protos_now_gives(tmp_path):
    # The same script, into a scratch directory: the set next to the generated code is the
    # protos as they are, with their comments.
    subprocess.run(
        [REPO / "scripts" / "gen_protos.sh"],
        env={**os.environ, "OUT": str(tmp_path)},
        check=True,
        capture_output=True,
    )
    fresh = descriptor_pb2.FileDescriptorSet.FromString(
        (tmp_path / "comanda" / "descriptor_set.binpb").read_bytes()
    )
    expected = {}
    for file in fresh.file:
        expected.update(comments.from_file(file))
    assert expected == COMMENTS
    files = {rpc.descriptor.containing_service.file.name for rpc in API.rpcs}
    assert files <= {file.name for file in fresh.file}


def test_without_the_descriptor_set_the_document_has_no_descriptions_but_every_operation(
    monkeypatch, tmp_path
):
    monkeypatch.setattr(comments, "BUILT_SET", tmp_path / "absent.binpb")

    found = comments.load()
    document = openapi.document(API, found)

    assert found == {}
    assert document["paths"].keys() == DOC["paths"].keys()
