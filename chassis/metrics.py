"""Prometheus metrics of the chassis, in every process (exposed on each process's metrics port);
a service defines its own next to the code that records them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

GRPC_REQUESTS = Counter(
    "comanda_grpc_requests_total", "gRPC requests handled", ["service", "method", "code"]
)
GRPC_LATENCY = Histogram(
    "comanda_grpc_request_seconds",
    "gRPC request latency",
    ["service", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENTS_PUBLISHED = Counter(
    "comanda_events_published_total",
    "Outbox events published to JetStream",
    ["service", "event_type"],
)
EVENTS_CONSUMED = Counter(
    "comanda_events_consumed_total",
    "Events received by a consumer, by result (applied, ignored, duplicate, retried, "
    "dead_lettered)",
    ["service", "consumer", "event_type", "result"],
)
CONSUMER_CONFLICTS = Counter(
    "comanda_consumer_conflicts_total",
    "Consumer transactions that lost a lock conflict (deadlock, serialization) and ran again",
    ["service", "consumer"],
)
DEAD_LETTERS = Counter(
    "comanda_dead_letters_total", "Messages sent to the dead-letter stream", ["service", "consumer"]
)
OUTBOX_BACKLOG = Gauge("comanda_outbox_backlog", "Unpublished outbox rows", ["service"])
OUTBOX_OLDEST_AGE = Gauge(
    "comanda_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row", ["service"]
)
