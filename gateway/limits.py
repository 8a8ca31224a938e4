"""Limits for the public side: how many streams a client and the whole process may hold open,
and how long a client may take to send a request's head.

- Streams (every server-streaming route, whatever it watches) are counted per client address
  and per process; one over either cap is refused with 429 RESOURCE_EXHAUSTED before any
  backend call is made.
- The client address is the TCP peer; when the peer is a trusted proxy (an Ingress
  controller, `GATEWAY_TRUSTED_PROXIES`), it is the last address in `X-Forwarded-For` that is
  not itself a trusted proxy, so clients behind one Ingress are not counted as one.
- A connection must deliver a request's head (request line and headers) within
  `GATEWAY_HEADER_TIMEOUT_SECONDS` of opening, or of the previous response on a kept-alive
  connection, or it is closed (a slowloris holds no connection for long). The body's own
  deadline is the gateway's (408, see `Gateway._read_body`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import grpc
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.errors import HttpError

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(value: str) -> tuple[Network, ...]:
    """A comma-separated list of addresses or CIDR ranges (the gateway's trusted proxies)."""
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    try:
        return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)
    except ValueError as exc:
        raise ValueError(f"expected addresses or CIDR ranges separated by commas: {exc}") from None


def client_address(
    peer: str, headers: Mapping[bytes, bytes], trusted: tuple[Network, ...] = ()
) -> str:
    """Who a request comes from: the peer, or behind trusted proxies the nearest address in
    X-Forwarded-For that is not one of them."""
    if not trusted or not _within(peer, trusted):
        return peer
    forwarded = headers.get(b"x-forwarded-for", b"").decode("latin-1")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _within(hop, trusted):
            return hop if _is_address(hop) else peer
    return hops[0] if hops and _is_address(hops[0]) else peer


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _within(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


class StreamLimits:
    """Open streams per client address and in total, with caps."""

    def __init__(self, per_client: int, per_process: int) -> None:
        self.per_client = per_client
        self.per_process = per_process
        self.open: Counter[str] = Counter()
        self.total = 0

    @contextlib.contextmanager
    def hold(self, client: str) -> Iterator[None]:
        """Count a stream for `client` while inside; HttpError 429 when a cap is reached."""
        if self.total >= self.per_process:
            raise _exhausted(
                f"the gateway holds its maximum of {self.per_process} open streams; retry later"
            )
        if self.open[client] >= self.per_client:
            raise _exhausted(
                f"this client already holds {self.per_client} open streams, the most allowed: "
                "close one first"
            )
        self.open[client] += 1
        self.total += 1
        try:
            yield
        finally:
            self.total -= 1
            self.open[client] -= 1
            if self.open[client] <= 0:
                del self.open[client]


def _exhausted(message: str) -> HttpError:
    return HttpError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        message,
        http_status=429,
        headers=[(b"retry-after", b"5")],
    )


class HeadDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request head is not complete
    `header_timeout` seconds after the connection opened or the last response ended."""

    header_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # No pipelined request started (uvicorn armed its idle timer): the next head is due.
        if self.timeout_keep_alive_task is not None and not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._head_deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _too_slow(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            log.info("closed a connection whose request head took over %gs", self.header_timeout)
            self.transport.close()


def protocol(header_timeout: float) -> type[HeadDeadlineProtocol]:
    """The protocol class for uvicorn, with this deadline."""
    return type("HeadDeadlineProtocol", (HeadDeadlineProtocol,), {"header_timeout": header_timeout})
