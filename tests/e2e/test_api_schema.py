"""Proof by attack: schemathesis generates requests for every operation of `/openapi.json`
(valid ones and invalid ones) and sends them to the running HTTP API as deployed (the gateway
in an orders server), real services, PostgreSQL and NATS behind it, each as staff and as
anyone. No answer may be a server error, and every
answer must match what the document says: status code, content type, headers, body schema.

Sized for CI: `SCHEMATHESIS_EXAMPLES` examples per operation (default 20), derandomized in CI.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chassis import config as cfg
from gateway.config import GatewayConfig
from gateway.server import build
from tests.support.stack import STAFF, Stack

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "20"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Every operation of the document, known without a running gateway (the test checks that the
# served document is this one).
DOCUMENT: dict[str, Any] = build(cfg.load(GatewayConfig, {}))[1]
OPERATIONS = [(path, method) for path, item in DOCUMENT["paths"].items() for method in item]


def undotted(document: dict[str, Any]) -> dict[str, Any]:
    """The document with `{product.id}`-style path parameters renamed `{product__id}`: the
    same requests, but schemathesis fills path templates with str.format, which would read
    the dot as an attribute lookup."""
    text = json.dumps(document)
    for name in {
        p["name"]
        for item in document["paths"].values()
        for op in item.values()
        for p in op.get("parameters", [])
        if p["in"] == "path" and "." in p["name"]
    }:
        text = text.replace(f'"{name}"', f'"{name.replace(".", "__")}"')
        text = text.replace(f"{{{name}}}", f"{{{name.replace('.', '__')}}}")
    return dict(json.loads(text))


@pytest.fixture(scope="module")
def api_schema(stack: Stack) -> schemathesis.BaseSchema:
    served = httpx.get(f"{stack.http_url()}/openapi.json").json()
    assert served == DOCUMENT, "the gateway serves the document built from the protos"
    return schemathesis.openapi.from_dict(undotted(served))


@pytest.mark.parametrize(
    ("path", "method"), OPERATIONS, ids=[f"{m.upper()} {p}" for p, m in OPERATIONS]
)
def test_every_operation_answers_as_documented(api_schema, stack: Stack, path, method):
    operation = api_schema[path.replace(".", "__")][method]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=bool(os.environ.get("CI")),
        database=None,
    )
    def attack(case: schemathesis.Case) -> None:
        for token in (dict(STAFF), {}):  # as staff, then as anyone
            # A stream runs until its deadline: ask for a short one.
            headers = {**token, "Grpc-Timeout": "2S"}
            case.call_and_validate(
                base_url=stack.http_url(), headers=headers, checks=CHECKS, timeout=10
            )

    attack()
