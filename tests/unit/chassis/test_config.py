from dataclasses import dataclass

import pytest

from chassis import config as cfg
from chassis.config import ConfigError, setting
from orders.app import OrdersConfig
from payment.app import PaymentConfig


@dataclass(frozen=True)
class Sample:
    SERVICE = "orders"
    url: str = setting(
        "{SERVICE}_DATABASE_URL", "postgresql+psycopg2://x@h/{service}", "db", cfg.postgres_url
    )
    port: int = setting("{SERVICE}_GRPC_PORT", 50051, "port", cfg.port)
    flag: bool = setting("FLAG", False, "flag", cfg.boolean)


def test_defaults_fill_the_service_name():
    loaded = cfg.load(Sample, {})
    assert loaded == Sample(url="postgresql+psycopg2://x@h/orders", port=50051, flag=False)


def test_values_are_parsed_and_postgres_urls_use_psycopg2():
    loaded = cfg.load(
        Sample,
        {
            "ORDERS_DATABASE_URL": "postgresql://u@db:5432/o",
            "ORDERS_GRPC_PORT": "6000",
            "FLAG": "yes",
        },
    )
    assert loaded.url == "postgresql+psycopg2://u@db:5432/o"
    assert loaded.port == 6000
    assert loaded.flag is True


def test_every_bad_variable_is_named_in_one_line():
    with pytest.raises(ConfigError) as err:
        cfg.load(
            Sample,
            {"ORDERS_DATABASE_URL": "mysql://x", "ORDERS_GRPC_PORT": "99999", "FLAG": "maybe"},
        )
    message = str(err.value)
    assert "\n" not in message
    for name in ("ORDERS_DATABASE_URL", "ORDERS_GRPC_PORT", "FLAG"):
        assert name in message, f"{name} missing from {message!r}"


def test_service_configs_have_distinct_prefixed_variables():
    orders = {env for env, _, _ in cfg.describe(OrdersConfig)}
    payment = {env for env, _, _ in cfg.describe(PaymentConfig)}
    assert "ORDERS_DATABASE_URL" in orders and "PAYMENT_DATABASE_URL" in payment
    assert dict((e, d) for e, d, _ in cfg.describe(OrdersConfig))["ORDERS_GRPC_PORT"] == "50051"
    assert dict((e, d) for e, d, _ in cfg.describe(PaymentConfig))["PAYMENT_GRPC_PORT"] == "50052"
    assert {"NATS_URL", "STAFF_TOKEN"} <= orders & payment


def test_redact_url_hides_the_password():
    assert cfg.redact_url("postgresql://user:secret@host/db") == "postgresql://user:***@host/db"
    assert cfg.redact_url("postgresql://user@host/db") == "postgresql://user@host/db"
