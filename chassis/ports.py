"""Listening ports, bound one way by every process (a service's servers and the gateway), so
a port that cannot be bound ends start-up with one line: `PortUnavailable`."""

from __future__ import annotations

import socket


class PortUnavailable(Exception):
    """A port cannot be bound (one-line reason)."""


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (raises PortUnavailable)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise PortUnavailable(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def check_port(host: str, port: int) -> None:
    """Fail early, before any other start-up work, when the port cannot be bound."""
    bind(host, port).close()
