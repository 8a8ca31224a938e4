"""The transcoder without any service: HTTP request → request message (path, body, query,
headers), response → body, and the 400s that name the field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf import json_format

from gateway.api import Api
from gateway.bindings import BindingError, HttpBinding
from gateway.errors import HttpError
from gateway.routes import PathTemplate
from gateway.transcode import RequestMapper, ResponseRenderer
from tests.gateway import synthetic

REAL = Api()
SYNTHETIC = synthetic.api()
APIS = {"real": REAL, "synthetic": SYNTHETIC}


def build(
    api: str,
    method: str,
    path: str,
    query: str = "",
    body: object = b"",
    content_type: str = "application/json",
    idempotency_key: str = "",
):
    template, route, segments = APIS[api].table.match(method, path)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return route.mapper.build(
        template.bind(segments), query.encode(), raw, content_type, idempotency_key
    )


def fields_of(message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


CASES = [
    # (id, api, method, path, query, body, idempotency key, expected fields)
    ("path variable", "real", "GET", "/v1/orders/42", "", b"", "", {"order_id": "42"}),
    (
        "path variable is percent-decoded",
        "real",
        "GET",
        "/v1/products/a%20b%2Fc",
        "",
        b"",
        "",
        {"product_id": "a b/c"},
    ),
    (
        "custom verb",
        "real",
        "POST",
        "/v1/orders/42:cancel",
        "",
        {"reason": "changed my mind"},
        "",
        {"order_id": "42", "reason": "changed my mind"},
    ),
    (
        "body * without a body",
        "real",
        "POST",
        "/v1/orders/42:cancel",
        "",
        b"",
        "",
        {"order_id": "42"},
    ),
    (
        "path value wins over the body",
        "real",
        "POST",
        "/v1/orders/42:cancel",
        "",
        {"orderId": "other", "reason": "x"},
        "",
        {"order_id": "42", "reason": "x"},
    ),
    (
        "body * in camelCase and snake_case",
        "real",
        "POST",
        "/v1/orders",
        "",
        {
            "customerCpf": "12345678909",
            "items": [{"product_id": "p1", "quantity": 2, "notes": "sem cebola"}],
        },
        "",
        {
            "customer_cpf": "12345678909",
            "items": [{"product_id": "p1", "quantity": 2, "notes": "sem cebola"}],
        },
    ),
    (
        "Idempotency-Key fills an empty request_id",
        "real",
        "POST",
        "/v1/orders",
        "",
        {"items": [{"productId": "p1", "quantity": 1}]},
        "key-1",
        {"request_id": "key-1", "items": [{"product_id": "p1", "quantity": 1}]},
    ),
    (
        "a request_id in the body wins over Idempotency-Key",
        "real",
        "POST",
        "/v1/orders",
        "",
        {"requestId": "body-id"},
        "key-1",
        {"request_id": "body-id"},
    ),
    (
        "body field and nested path variable",
        "real",
        "PATCH",
        "/v1/products/p9",
        "updateMask=name,priceCentavos",
        {"id": "ignored", "name": "X-Salada", "priceCentavos": "1990"},
        "",
        {
            "product": {"id": "p9", "name": "X-Salada", "price_centavos": "1990"},
            "update_mask": "name,priceCentavos",
        },
    ),
    (
        "query: enum by name, Timestamp, both spellings",
        "real",
        "GET",
        "/v1/orders",
        "status=ORDER_STATUS_READY&customer_id=c1&createdAfter=2026-01-02T03:04:05Z&pageSize=5",
        b"",
        "",
        {
            "status": "ORDER_STATUS_READY",
            "customer_id": "c1",
            "created_after": "2026-01-02T03:04:05Z",
            "page_size": 5,
        },
    ),
    (
        "query: enum by number, bool",
        "real",
        "GET",
        "/v1/products",
        "category=3&include_archived=true",
        b"",
        "",
        {"category": "CATEGORY_DRINK", "include_archived": True},
    ),
    (
        "query: + and %20 are spaces",
        "real",
        "GET",
        "/v1/orders",
        "pageToken=a+b%20c",
        b"",
        "",
        {"page_token": "a b c"},
    ),
    (
        "raw HttpBody field: bytes and content type as sent",
        "real",
        "POST",
        "/v1/webhooks/fake",
        "",
        b'{"id": 1,  "x":"\xc3\xa9"}\n',
        "",
        {
            "provider": "fake",
            "body": {"content_type": "application/json", "data": "eyJpZCI6IDEsICAieCI6IsOpIn0K"},
        },
    ),
    # synthetic API
    (
        "multi-segment variable",
        "synthetic",
        "GET",
        "/v1/shelves/s1",
        "",
        b"",
        "",
        {"name": "shelves/s1"},
    ),
    (
        "additional binding",
        "synthetic",
        "GET",
        "/v1/libraries/lib%201/shelves/s1",
        "view=COLOR_RED",
        b"",
        "",
        {"name": "shelves/s1", "library": "lib 1", "view": "COLOR_RED"},
    ),
    (
        "** variable keeps %2F encoded",
        "synthetic",
        "GET",
        "/v1/files/a/b%2Fc/d%20e",
        "",
        b"",
        "",
        {"name": "a/b%2Fc/d e"},
    ),
    (
        "custom * method matches any method",
        "synthetic",
        "DELETE",
        "/v1/shelves/s1:watch",
        "",
        b"",
        "",
        {"name": "shelves/s1"},
    ),
    (
        "query: nested, repeated and wrapper fields",
        "synthetic",
        "GET",
        "/v1/shelves",
        "shelf.name=n&shelf.tags=a&shelf.tags=b&shelf.filter.sizes=1&shelf.filter.sizes=2&shelf.open=1"
        "&shelf.flag=false&shelf.bookCount=9007199254740993&shelf.ratio=0.5&shelf.note=&mask=a,b.c"
        "&shelf.colors=COLOR_RED&shelf.colors=2&shelf.blob=aGk%3D",
        b"",
        "",
        {
            "shelf": {
                "name": "n",
                "tags": ["a", "b"],
                "filter": {"sizes": [1, 2]},
                "open": True,
                "flag": False,
                "book_count": "9007199254740993",
                "ratio": 0.5,
                "note": "",
                "colors": ["COLOR_RED", "COLOR_BLUE"],
                "blob": "aGk=",
            },
            "mask": "a,b.c",
        },
    ),
    (
        "body * and a nested path variable",
        "synthetic",
        "POST",
        "/v1/shelves/s1:rename",
        "",
        {"shelf": {"tags": ["x"]}, "updateMask": "tags"},
        "",
        {"shelf": {"name": "s1", "tags": ["x"]}, "update_mask": "tags"},
    ),
    (
        "whole-message HttpBody",
        "synthetic",
        "POST",
        "/v1/blobs:upload",
        "",
        b"\x00\xffraw",
        "",
        {"content_type": "application/json", "data": "AP9yYXc="},
    ),
]


@pytest.mark.parametrize(
    ("api", "method", "path", "query", "body", "key", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_requests_become_messages(api, method, path, query, body, key, expected):
    message = build(api, method, path, query, body, idempotency_key=key)

    assert fields_of(message) == expected


def test_raw_body_keeps_any_content_type_and_every_byte():
    body = bytes(range(256))

    message = build(
        "real", "POST", "/v1/webhooks/fake", body=body, content_type="application/x-whatever"
    )

    assert message.body.data == body
    assert message.body.content_type == "application/x-whatever"


ERRORS = [
    # (id, api, method, path, query, body, expected field, words in the message)
    ("malformed JSON", "real", "POST", "/v1/orders", "", b'{"items": [', "", "not valid JSON"),
    ("body * must be an object", "real", "POST", "/v1/orders", "", b"[1, 2]", "", "JSON object"),
    (
        "wrong type, nested",
        "real",
        "POST",
        "/v1/orders",
        "",
        {"items": [{"productId": "p", "quantity": "two"}]},
        "items.quantity",
        "integer",
    ),
    (
        "wrong type, top level",
        "real",
        "POST",
        "/v1/orders",
        "",
        {"items": {"productId": "p"}},
        "items",
        "repeated",
    ),
    (
        "unknown body field",
        "real",
        "POST",
        "/v1/customers",
        "",
        {"cpf": "1", "nickname": "x"},
        "nickname",
        "unknown field",
    ),
    (
        "unknown nested body field",
        "real",
        "POST",
        "/v1/orders",
        "",
        {"items": [{"bogus": 1}]},
        "items.bogus",
        "unknown field",
    ),
    (
        "wrong type in a body field",
        "real",
        "POST",
        "/v1/products",
        "",
        {"priceCentavos": "cheap"},
        "product.priceCentavos",
        "priceCentavos",
    ),
    (
        "unknown query parameter",
        "real",
        "GET",
        "/v1/products",
        "pageSize=2&color=red",
        b"",
        "color",
        "unknown query parameter: color",
    ),
    (
        "query parameter on a body * route",
        "real",
        "POST",
        "/v1/orders/42:cancel",
        "reason=x",
        b"",
        "reason",
        "unknown query parameter",
    ),
    (
        "path-bound field as a query parameter",
        "real",
        "GET",
        "/v1/orders/42",
        "orderId=43",
        b"",
        "orderId",
        "unknown query parameter",
    ),
    (
        "body field as a query parameter",
        "real",
        "PATCH",
        "/v1/products/p",
        "product.name=x",
        b"",
        "product.name",
        "unknown query parameter",
    ),
    ("bad enum name", "real", "GET", "/v1/orders", "status=DONE", b"", "status", "DONE"),
    (
        "bad timestamp",
        "real",
        "GET",
        "/v1/orders",
        "createdAfter=yesterday",
        b"",
        "created_after",
        "timestamp",
    ),
    ("bad integer", "real", "GET", "/v1/orders", "pageSize=ten", b"", "page_size", "ten"),
    (
        "integer out of range",
        "real",
        "GET",
        "/v1/orders",
        "pageSize=99999999999",
        b"",
        "page_size",
        "range",
    ),
    (
        "bad bool",
        "real",
        "GET",
        "/v1/products",
        "includeArchived=maybe",
        b"",
        "include_archived",
        "true or false",
    ),
    (
        "singular parameter twice",
        "real",
        "GET",
        "/v1/orders",
        "pageSize=1&pageSize=2",
        b"",
        "page_size",
        "more than once",
    ),
    ("query not UTF-8", "real", "GET", "/v1/orders", "pageToken=%FF", b"", "", "UTF-8"),
    (
        "body not UTF-8",
        "real",
        "POST",
        "/v1/orders",
        "",
        b'{"requestId": "\xff"}',
        "",
        "not valid JSON",
    ),
    (
        "nested query enum",
        "synthetic",
        "GET",
        "/v1/shelves",
        "shelf.color=PINK",
        b"",
        "shelf.color",
        "PINK",
    ),
]


@pytest.mark.parametrize(
    ("api", "method", "path", "query", "body", "field", "words"),
    [case[1:] for case in ERRORS],
    ids=[case[0] for case in ERRORS],
)
def test_bad_requests_are_400_naming_the_field(api, method, path, query, body, field, words):
    with pytest.raises(HttpError) as caught:
        build(api, method, path, query, body)

    error = caught.value
    assert error.http_status == 400, f"expected 400, got {error.http_status}: {error.message}"
    assert error.code.name == "INVALID_ARGUMENT"
    assert words in error.message, f"expected {words!r} in {error.message!r}"
    violations = error.details[0]["fieldViolations"]
    assert violations[0]["field"] == field, f"expected field {field!r}, got {violations}"
    assert error.details[0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"


def test_the_message_of_an_unknown_parameter_lists_the_allowed_ones():
    with pytest.raises(HttpError) as caught:
        build("real", "GET", "/v1/products", "colour=red")

    description = caught.value.details[0]["fieldViolations"][0]["description"]
    assert "category" in description and "page_size" in description, description


def test_path_that_does_not_decode_to_utf8_is_refused():
    template, _, segments = REAL.table.match("GET", "/v1/orders/%FF")

    with pytest.raises(UnicodeDecodeError):
        template.bind(segments)


# -- responses ----------------------------------------------------------------------------
def _renderer(api: str, method: str, path: str) -> ResponseRenderer:
    return APIS[api].table.match(method, path)[1].renderer


def test_response_is_proto3_json_with_defaults_enums_and_int64_as_strings():
    from comanda.orders.v1 import orders_pb2

    order = orders_pb2.Order(
        id="o1", number=7, total_centavos=1990, status=orders_pb2.ORDER_STATUS_READY
    )
    order.create_time.FromJsonString("2026-01-02T03:04:05.500Z")

    body, content_type = _renderer("real", "GET", "/v1/orders/o1").render(order)

    doc = json.loads(body)
    assert content_type == b"application/json"
    assert doc["number"] == "7" and doc["totalCentavos"] == "1990", doc
    assert doc["status"] == "ORDER_STATUS_READY"
    assert doc["paymentStatus"] == "PAYMENT_STATUS_UNSPECIFIED", "unset enums are emitted"
    assert doc["items"] == [] and doc["customerId"] == "", "unset fields are emitted"
    assert doc["createTime"] == "2026-01-02T03:04:05.500Z"
    assert "updateTime" not in doc, "unset message fields have presence and stay out"


def test_response_body_selects_one_field():
    shelf = synthetic.Shelf(name="shelves/s1", tags=["a", "b"])

    assert (
        json.loads(_renderer("synthetic", "POST", "/v1/shelves/s1:rename").render(shelf)[0])
        == "shelves/s1"
    )
    assert json.loads(_renderer("synthetic", "GET", "/v1/shelves/s1/tags").render(shelf)[0]) == [
        "a",
        "b",
    ]


def test_an_httpbody_response_is_returned_raw():
    from google.api import httpbody_pb2

    reply = httpbody_pb2.HttpBody(content_type="image/png", data=b"\x89PNG")

    body, content_type = _renderer("synthetic", "POST", "/v1/blobs:upload").render(reply)

    assert (body, content_type) == (b"\x89PNG", b"image/png")


# -- bindings the gateway refuses at start-up ---------------------------------------------
def _binding(rpc_label: str, path: str, body: str = "", response_body: str = "") -> HttpBinding:
    rpc = next(r for r in SYNTHETIC.rpcs if r.label == rpc_label)
    return HttpBinding(rpc, "POST", PathTemplate.parse(path), body, response_body, 0)


@pytest.mark.parametrize(
    ("rpc", "path", "body", "response_body", "words"),
    [
        ("ShelfService.GetShelf", "/v1/{nothing}", "", "", "not a field path"),
        ("ShelfService.SearchShelves", "/v1/{shelf}", "", "", "primitive"),
        ("ShelfService.SearchShelves", "/v1/{shelf.tags}", "", "", "primitive"),
        ("ShelfService.SearchShelves", "/v1/{shelf.filters.kind}", "", "", "not a field path"),
        ("ShelfService.GetShelf", "/v1/x", "shelf", "", "body 'shelf' is not a field"),
        ("ShelfService.GetShelf", "/v1/x", "", "nope", "response_body 'nope' is not a field"),
    ],
)
def test_unservable_bindings_are_refused_with_a_reason(rpc, path, body, response_body, words):
    binding = _binding(rpc, path, body, response_body)

    with pytest.raises(BindingError) as caught:
        RequestMapper(binding)
        ResponseRenderer(binding)

    assert words in str(caught.value), str(caught.value)
    assert rpc in str(caught.value)


def test_rpcs_without_annotation_get_no_route():
    labels = {route.rpc.label for route in SYNTHETIC.routes}

    assert "ShelfService.Hidden" not in labels
    assert "ShelfService.GetShelf" in labels
