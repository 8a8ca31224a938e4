"""Each backend the gateway routes to is named once, with its address setting."""

from gateway import bindings
from gateway.config import GatewayConfig


def test_every_backend_of_the_bindings_has_an_address_setting():
    config = GatewayConfig()
    assert bindings.backend_names() == ["orders", "payment"]
    assert [config.target(name) for name in bindings.backend_names()] == [
        config.orders_target,
        config.payment_target,
    ]
