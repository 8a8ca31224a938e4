"""free_port: a port free to listen on, outside the kernel's range for outgoing connections
when there is room for that, and never one handed out before (a stack picks all its ports
before any process binds one)."""

import socket

import pytest

from devstack import servers


def _listenable(port: int) -> bool:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", port))
        return True


@pytest.mark.parametrize(
    ("ephemeral", "outside"),
    [((32768, 60999), range(20000, 32768)), ((10000, 40000), range(40001, 65536))],
)
def test_a_port_outside_the_outgoing_range(monkeypatch, ephemeral, outside):
    monkeypatch.setattr(servers, "_ephemeral_ports", lambda: ephemeral)
    port = servers.free_port()
    assert port in outside
    assert _listenable(port)


def test_an_outgoing_range_of_every_port_still_gives_a_free_port(monkeypatch):
    # ip_local_port_range = "1024 65535", as tuned hosts and containers have it.
    monkeypatch.setattr(servers, "_ephemeral_ports", lambda: (1024, 65535))
    port = servers.free_port()
    assert 0 < port < 65536
    assert _listenable(port)


def test_a_port_is_never_handed_out_twice_before_it_is_bound(monkeypatch):
    # A stack of two replicas picks 16 ports before starting anything: drawn at random from
    # the 12,768 below the outgoing range, 1,000 picks would repeat one almost surely.
    monkeypatch.setattr(servers, "_ephemeral_ports", lambda: (32768, 60999))
    monkeypatch.setattr(servers, "_HANDED_OUT", set())
    ports = [servers.free_port() for _ in range(1000)]
    assert len(set(ports)) == len(ports)
