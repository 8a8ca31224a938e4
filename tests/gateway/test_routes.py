"""Path templates and the route table: parsing, matching, decoding, conflicts."""

from __future__ import annotations

import pytest

from gateway.routes import (
    DSTAR,
    LITERAL,
    STAR,
    Entry,
    NoRoute,
    PathTemplate,
    RouteConflict,
    RouteTable,
    TemplateError,
)


@pytest.mark.parametrize(
    ("text", "segments", "variables", "verb"),
    [
        ("/v1/products", [(LITERAL, "v1"), (LITERAL, "products")], [], ""),
        (
            "/v1/products/{product_id}",
            [(LITERAL, "v1"), (LITERAL, "products"), (STAR, "")],
            [("product_id", 2, 3)],
            "",
        ),
        (
            "/v1/products/{product.id}",
            [(LITERAL, "v1"), (LITERAL, "products"), (STAR, "")],
            [("product.id", 2, 3)],
            "",
        ),
        (
            "/v1/orders/{order_id}:cancel",
            [(LITERAL, "v1"), (LITERAL, "orders"), (STAR, "")],
            [("order_id", 2, 3)],
            "cancel",
        ),
        ("/v1/customers:identify", [(LITERAL, "v1"), (LITERAL, "customers")], [], "identify"),
        (
            "/v1/{name=shelves/*/books/*}",
            [(LITERAL, "v1"), (LITERAL, "shelves"), (STAR, ""), (LITERAL, "books"), (STAR, "")],
            [("name", 1, 5)],
            "",
        ),
        (
            "/v1/files/{path=**}",
            [(LITERAL, "v1"), (LITERAL, "files"), (DSTAR, "")],
            [("path", 2, None)],
            "",
        ),
        (
            "/v1/files/{path=**}:download",
            [(LITERAL, "v1"), (LITERAL, "files"), (DSTAR, "")],
            [("path", 2, None)],
            "download",
        ),
        ("/v1/*/x", [(LITERAL, "v1"), (STAR, ""), (LITERAL, "x")], [], ""),
        ("/", [], [], ""),
    ],
)
def test_templates_parse(text, segments, variables, verb):
    template = PathTemplate.parse(text)

    assert list(template.segments) == segments, f"segments of {text}"
    got = [(v.field_path, v.start, v.end) for v in template.variables]
    assert got == variables, f"variables of {text}"
    assert template.verb == verb, f"verb of {text}"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("v1/products", "starts with '/'"),
        ("/v1/{id", "unbalanced"),
        ("/v1/{a{b}}", "unbalanced"),
        ("/v1/**/x", "'**' must be the last"),
        ("/v1//x", "not a valid segment"),
        ("/v1/{1abc}", "not a field path"),
        ("/v1/{a}/{a}", "appears twice"),
        ("/v1/x:", "not a verb"),
        ("/v1/a*b", "not a valid segment"),
    ],
)
def test_malformed_templates_are_rejected(text, complaint):
    with pytest.raises(TemplateError) as caught:
        PathTemplate.parse(text)

    assert complaint in str(caught.value), f"{text}: expected {complaint!r} in {caught.value}"


@pytest.mark.parametrize(
    ("text", "path", "expected"),
    [
        # single segment: everything is decoded
        ("/v1/orders/{order_id}", "/v1/orders/a%20b", {"order_id": "a b"}),
        ("/v1/orders/{order_id}", "/v1/orders/a%2Fb", {"order_id": "a/b"}),
        ("/v1/orders/{order_id}", "/v1/orders/caf%C3%A9", {"order_id": "café"}),
        ("/v1/orders/{order_id}", "/v1/orders/a%3Ab", {"order_id": "a:b"}),
        # multi segment: %2F stays encoded, the rest is decoded
        ("/v1/files/{path=**}", "/v1/files/a/b%20c/d%2Fe%2ff", {"path": "a/b c/d%2Fe%2ff"}),
        ("/v1/{name=shelves/*}", "/v1/shelves/x%2Fy", {"name": "shelves/x%2Fy"}),
        ("/v1/files/{path=**}", "/v1/files", {"path": ""}),
    ],
)
def test_variables_are_percent_decoded_as_http_proto_says(text, path, expected):
    table = RouteTable([Entry("GET", PathTemplate.parse(text), "r", "R")])

    template, _, segments = table.match("GET", path)

    assert template.bind(segments) == expected


def _table(*specs: tuple[str, str]) -> RouteTable[str]:
    return RouteTable(Entry(method, PathTemplate.parse(text), text, text) for method, text in specs)


API = _table(
    ("GET", "/v1/orders"),
    ("POST", "/v1/orders"),
    ("GET", "/v1/orders/{order_id}"),
    ("GET", "/v1/orders/{order_id}:watch"),
    ("POST", "/v1/orders/{order_id}:cancel"),
    ("GET", "/v1/orders/{order_id}/payment"),
    ("GET", "/v1/orders/special"),
    ("POST", "/v1/customers:identify"),
    ("POST", "/v1/customers"),
    ("GET", "/v1/files/{path=**}"),
    ("GET", "/v1/files/readme"),
    ("GET", "/v1/{name=shelves/*}/books"),
)


@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("GET", "/v1/orders", "/v1/orders"),
        ("POST", "/v1/orders", "/v1/orders"),
        ("GET", "/v1/orders/42", "/v1/orders/{order_id}"),
        ("GET", "/v1/orders/42:watch", "/v1/orders/{order_id}:watch"),
        ("POST", "/v1/orders/42:cancel", "/v1/orders/{order_id}:cancel"),
        ("GET", "/v1/orders/42/payment", "/v1/orders/{order_id}/payment"),
        ("GET", "/v1/orders/special", "/v1/orders/special"),  # a literal beats a variable
        ("POST", "/v1/customers:identify", "/v1/customers:identify"),
        ("GET", "/v1/files/readme", "/v1/files/readme"),  # a literal beats **
        ("GET", "/v1/files/a/b/c", "/v1/files/{path=**}"),
        ("GET", "/v1/files", "/v1/files/{path=**}"),  # ** matches zero segments
        ("GET", "/v1/shelves/1/books", "/v1/{name=shelves/*}/books"),
        # a ':' that is no verb of any route belongs to the segment
        ("GET", "/v1/orders/a:b", "/v1/orders/{order_id}"),
    ],
)
def test_matching_picks_the_most_specific_template(method, path, template):
    found, value, _ = API.match(method, path)

    assert found.text == template, f"{method} {path}: expected {template}, got {found.text}"
    assert value == template


def test_a_colon_in_an_id_is_kept_when_it_is_no_verb():
    template, _, segments = API.match("GET", "/v1/orders/a:b")

    assert template.bind(segments) == {"order_id": "a:b"}


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1/nothing", ()),
        ("GET", "/v2/orders", ()),
        ("GET", "/v1/orders/", ()),  # an empty segment is no value
        ("GET", "/v1/orders/42/payment/x", ()),
        ("DELETE", "/v1/orders", ("GET", "POST")),
        ("GET", "/v1/orders/42:cancel", ("POST",)),  # wrong method for the verb: 405, not GetOrder
        ("POST", "/v1/orders/42:watch", ("GET",)),
        ("PUT", "/v1/customers:identify", ("POST",)),
        ("GET", "/v1/orders/42:refund", ()),
    ],
)
def test_unmatched_requests_say_which_methods_would_match(method, path, allowed):
    if path == "/v1/orders/42:refund":
        # no template has this verb: it is read as part of the id, and GET matches GetOrder
        assert API.match(method, path)[0].text == "/v1/orders/{order_id}"
        return
    with pytest.raises(NoRoute) as caught:
        API.match(method, path)

    assert caught.value.allowed == allowed, f"{method} {path}"


@pytest.mark.parametrize(
    ("specs", "complaint"),
    [
        ([("GET", "/v1/orders/{id}"), ("GET", "/v1/orders/{order_id}")], "bind the same paths"),
        ([("GET", "/v1/{a}/x"), ("GET", "/v1/y/{b}")], "ambiguous"),
        ([("GET", "/v1/{a=**}"), ("GET", "/v1/{b=**}")], "bind the same paths"),
        ([("GET", "/v1/{a}/x/{c=**}"), ("GET", "/v1/y/{b}")], "ambiguous"),
        ([("POST", "/v1/x:go"), ("POST", "/v1/x:go")], "bind the same paths"),
    ],
)
def test_conflicting_bindings_are_refused_with_both_named(specs, complaint):
    with pytest.raises(RouteConflict) as caught:
        _table(*specs)

    message = str(caught.value)
    assert complaint in message, message
    for _, text in specs:
        assert text in message, f"{text} not named in: {message}"


@pytest.mark.parametrize(
    "specs",
    [
        [("GET", "/v1/orders/{id}"), ("POST", "/v1/orders/{id}")],  # other method
        [("GET", "/v1/orders/{id}"), ("GET", "/v1/orders/{id}:watch")],  # other verb
        [("GET", "/v1/orders/{id}"), ("GET", "/v1/orders/special")],  # one more specific
        [("GET", "/v1/{a=**}"), ("GET", "/v1/x/{b}")],
        [("GET", "/v1/a/{x}"), ("GET", "/v1/b/{x}")],  # disjoint
    ],
)
def test_bindings_that_can_be_ordered_coexist(specs):
    table = _table(*specs)

    assert len(table.entries) == len(specs)


def test_openapi_path_names_each_variable_once():
    cases = {
        "/v1/products/{product.id}": "/v1/products/{product.id}",
        "/v1/{name=shelves/*}/books": "/v1/{name}/books",
        "/v1/files/{path=**}:download": "/v1/files/{path}:download",
        "/v1/*/x": "/v1/*/x",
    }
    for text, expected in cases.items():
        assert PathTemplate.parse(text).openapi_path() == expected, text
