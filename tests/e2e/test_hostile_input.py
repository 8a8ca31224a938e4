"""Hostile input through the HTTP API as deployed (the gateway in an orders server, orders'
methods in-process, payment's over gRPC): whatever a client sends to any route — odd ids, junk
query parameters, malformed or wrongly typed JSON, strange headers — the answer is a clear
one: never an internal error, never a hang, always a google.rpc.Status body when it fails."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.stack import STAFF_TOKEN, Stack

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
SEGMENT = st.one_of(
    st.uuids().map(str),
    st.text(min_size=1, max_size=40),
    st.sampled_from(
        ["", "%", "%2F", "..", "x" * 300, "00000000-0000-0000-0000-000000000000", "🍔", "a:b"]
    ),
)


@pytest.fixture(scope="module")
def routes(stack: Stack) -> list[tuple[str, str]]:
    document = httpx.get(f"{stack.http_url()}/openapi.json", timeout=10).json()
    found = []
    for path, operations in document["paths"].items():
        for method in operations:
            if method.upper() in {"GET", "POST", "PATCH", "PUT", "DELETE"} and ":watch" not in path:
                found.append((method.upper(), path))
    assert len(found) >= 20, found
    return found


def fill(template: str, values: list[str]) -> str:
    """The template with its variables replaced by percent-encoded values."""
    parts = iter(values)
    return re.sub(r"\{[^}]+\}", lambda _: quote(next(parts, "x"), safe="") or "x", template)


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_no_input_gets_an_internal_error_or_a_hang(
    stack: Stack, routes: list[tuple[str, str]], data: Any
) -> None:
    method, template = data.draw(st.sampled_from(routes))
    path = fill(template, data.draw(st.lists(SEGMENT, min_size=3, max_size=3)))
    params = data.draw(
        st.dictionaries(st.text(min_size=1, max_size=15), st.text(max_size=20), max_size=3)
    )
    headers = {}
    if data.draw(st.booleans()):
        headers["Authorization"] = data.draw(
            st.sampled_from([f"Bearer {STAFF_TOKEN}", "Bearer nope", "Basic x", ""])
        )
    if data.draw(st.booleans()):
        headers["Idempotency-Key"] = data.draw(
            st.text(alphabet=st.characters(max_codepoint=126, min_codepoint=33), max_size=80)
        )
    if data.draw(st.booleans()):
        headers["Grpc-Timeout"] = data.draw(st.sampled_from(["1n", "5S", "abc", "99999999H", "2m"]))
    kind = data.draw(st.sampled_from(["json", "raw", "none", "wrong-type"]))
    content: bytes | None = None
    if kind == "json":
        content = json.dumps(data.draw(JSON)).encode()
        headers["Content-Type"] = "application/json"
    elif kind == "raw":
        content = data.draw(st.binary(max_size=200))
        headers["Content-Type"] = "application/json"
    elif kind == "wrong-type":
        content = b"<xml/>"
        headers["Content-Type"] = "application/xml"
    try:
        response = httpx.request(
            method,
            f"{stack.http_url()}{path}",
            params=params,
            content=content,
            headers=headers,
            timeout=10,
        )
    except httpx.TimeoutException:
        raise AssertionError(f"{method} {path} hung") from None
    assert response.status_code < 500 or response.status_code in (503, 504), (
        f"{method} {path} {params} {headers} {content!r} -> "
        f"{response.status_code} {response.text[:300]}"
    )
    if response.status_code >= 400:
        body = response.json()
        assert (
            isinstance(body.get("code"), int)
            and isinstance(body.get("message"), str)
            and body["message"]
        ), body
