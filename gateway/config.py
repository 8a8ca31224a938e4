"""The gateway's settings, read from the environment through chassis.config."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from chassis import config as cfg
from chassis.config import setting
from gateway.limits import Network, networks

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def targets(value: str) -> str:
    """A comma-separated list of `host:port` (replicas of one service), normalised."""
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    if not entries:
        raise ValueError("expected host:port (several separated by commas)")
    for entry in entries:
        host, sep, port = entry.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{entry!r} is not host:port")
    return ",".join(entries)


def log_level(value: str) -> str:
    if value.upper() not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
    return value.upper()


def log_format(value: str) -> str:
    if value not in ("json", "text"):
        raise ValueError("expected json or text")
    return value


def channel_targets(spec: str) -> list[str]:
    """gRPC channel targets for a `targets` setting, balanced with the round_robin policy.

    One entry is used as it is (a DNS name resolving to several addresses, such as a headless
    Kubernetes Service, is balanced over all of them). Several IP addresses become one
    `ipv4:`/`ipv6:` target. Several names that are not all IP addresses become one channel
    each, which the gateway rotates through.
    """
    entries = spec.split(",")
    if len(entries) == 1:
        return entries
    hosts = [entry.rpartition(":")[0].strip("[]") for entry in entries]
    try:
        versions = {ipaddress.ip_address(host).version for host in hosts}
    except ValueError:
        return entries
    if versions == {4}:
        return ["ipv4:" + ",".join(entries)]
    if versions == {6}:
        return ["ipv6:" + ",".join(entries)]
    return entries


@dataclass(frozen=True)
class GatewayConfig:
    http_host: str = setting("GATEWAY_HTTP_HOST", "0.0.0.0", "Address the HTTP server binds")
    http_port: int = setting("GATEWAY_HTTP_PORT", 8080, "HTTP port", cfg.port)
    orders_target: str = setting(
        "GATEWAY_ORDERS_TARGET",
        "localhost:50051",
        "The orders service: host:port, or several separated by commas (replicas)",
        targets,
    )
    payment_target: str = setting(
        "GATEWAY_PAYMENT_TARGET",
        "localhost:50052",
        "The payment service: host:port, or several separated by commas (replicas)",
        targets,
    )
    timeout: float = setting(
        "GATEWAY_TIMEOUT_SECONDS",
        10.0,
        "Deadline of a gRPC call when the request sends no Grpc-Timeout header",
        cfg.positive_float,
    )
    max_body: int = setting(
        "GATEWAY_MAX_BODY_BYTES",
        1048576,
        "Largest request body accepted (413 above it)",
        cfg.positive_int,
    )
    max_streams: int = setting(
        "GATEWAY_MAX_STREAMS",
        2000,
        "Open streams (order watches and every other streaming route) the process holds at "
        "most; 429 RESOURCE_EXHAUSTED beyond",
        cfg.positive_int,
    )
    max_streams_per_client: int = setting(
        "GATEWAY_MAX_STREAMS_PER_CLIENT",
        20,
        "Open streams one client address holds at most; 429 RESOURCE_EXHAUSTED beyond",
        cfg.positive_int,
    )
    trusted_proxies: tuple[Network, ...] = setting(
        "GATEWAY_TRUSTED_PROXIES",
        (),
        "Addresses or CIDR ranges of proxies (an Ingress) whose X-Forwarded-For names the "
        "client; empty: the TCP peer is the client",
        networks,
    )
    header_timeout: float = setting(
        "GATEWAY_HEADER_TIMEOUT_SECONDS",
        10.0,
        "Time a connection gets to send a request's line and headers (from opening, or from "
        "the previous response); closed after it",
        cfg.positive_float,
    )
    body_timeout: float = setting(
        "GATEWAY_BODY_TIMEOUT_SECONDS",
        10.0,
        "Time a request's whole body gets to arrive once its headers did; 408 after it",
        cfg.positive_float,
    )
    shutdown_grace: float = setting(
        "SHUTDOWN_GRACE_SECONDS",
        10.0,
        "Time in-flight requests get to finish on SIGTERM",
        cfg.non_negative_float,
    )
    log_level: str = setting("LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR", log_level)
    log_format: str = setting(
        "LOG_FORMAT", "json", "json (one object per line) or text", log_format
    )

    def target(self, backend: str) -> str:
        """The address of a backend named in `gateway.bindings.BACKENDS`."""
        return str(getattr(self, f"{backend}_target"))
