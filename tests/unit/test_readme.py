"""The README's configuration table names every setting the processes read."""

import re
from pathlib import Path

from chassis.config import describe
from gateway.config import GatewayConfig
from orders.app import OrdersConfig
from payment.app import PaymentConfig

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_documented():
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", README))
    for config in (OrdersConfig, PaymentConfig, GatewayConfig):
        missing = {env for env, _, _ in describe(config)} - documented
        assert not missing, f"README configuration table lacks {sorted(missing)}"


def test_the_two_commands_come_first():
    first_block = README.split("```")[1]
    assert "make run" in first_block and "make test" in first_block
