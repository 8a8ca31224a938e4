"""Prometheus metrics of the gateway: requests and latency by route template and status."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

HTTP_REQUESTS = Counter(
    "comanda_gateway_http_requests_total",
    "HTTP requests answered by the gateway",
    ["method", "route", "code"],
)
HTTP_LATENCY = Histogram(
    "comanda_gateway_http_request_seconds",
    "Time from request to the end of the response (streams: until they end)",
    ["method", "route", "code"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CONTENT_TYPE = CONTENT_TYPE_LATEST.encode()

_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe(method: str, route: str, status: int, seconds: float) -> None:
    key = (method, route, status)
    children = _children.get(key)
    if children is None:
        labels = (method, route, str(status))
        children = _children[key] = (HTTP_REQUESTS.labels(*labels), HTTP_LATENCY.labels(*labels))
    children[0].inc()
    children[1].observe(seconds)


def exposition() -> bytes:
    return bytes(generate_latest())
