"""The gateway's settings: backend targets (replicas), and how they become gRPC channels."""

from __future__ import annotations

import pytest

from gateway.config import channel_targets, log_format, targets


def test_targets_are_normalised_and_each_must_be_host_port():
    assert targets(" a:1 , b:2 ,") == "a:1,b:2"
    assert targets("[::1]:50051") == "[::1]:50051"
    for bad, fragment in [
        (" , ", "expected host:port"),
        ("orders", "'orders' is not host:port"),
        ("orders:http", "'orders:http' is not host:port"),
        ("orders:65536", "'orders:65536' is not host:port"),
        (":50051", "':50051' is not host:port"),
    ]:
        with pytest.raises(ValueError, match=fragment):
            targets(bad)


@pytest.mark.parametrize(
    ("spec", "channels"),
    [
        # one entry: as it is (a DNS name with several addresses is balanced over all of them)
        ("orders.comanda.svc:50051", ["orders.comanda.svc:50051"]),
        # IP addresses of one family: one channel, round robin over them
        ("10.0.0.1:1,10.0.0.2:2", ["ipv4:10.0.0.1:1,10.0.0.2:2"]),
        ("[::1]:1,[fe80::1]:2", ["ipv6:[::1]:1,[fe80::1]:2"]),
        # names, or mixed families: one channel each, rotated through by the gateway
        ("orders-0:1,orders-1:1", ["orders-0:1", "orders-1:1"]),
        ("10.0.0.1:1,[::1]:2", ["10.0.0.1:1", "[::1]:2"]),
    ],
)
def test_channel_targets(spec, channels):
    assert channel_targets(spec) == channels


def test_log_format_is_json_or_text():
    assert log_format("text") == "text"
    with pytest.raises(ValueError, match="expected json or text"):
        log_format("yaml")
