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
    assert {"NATS_URL", "JWT_SECRET", "COMANDA_ENV"} <= orders & payment


def test_redact_url_hides_the_password():
    assert cfg.redact_url("postgresql://user:secret@host/db") == "postgresql://user:***@host/db"
    assert cfg.redact_url("postgresql://user@host/db") == "postgresql://user@host/db"


STRONG = "s3cr3t-" + "x" * 40


def refusal(cls, environ) -> str:
    with pytest.raises(ConfigError) as err:
        cfg.load(cls, environ)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_production_is_the_default_and_refuses_development_secrets():
    message = refusal(OrdersConfig, {})
    assert "COMANDA_ENV=production" in message
    assert "JWT_SECRET is the development default" in message
    assert cfg.load(OrdersConfig, {"COMANDA_ENV": "development"}).environment == "development"


@pytest.mark.parametrize(
    ("value", "problem"),
    [("", "is the development default"), ("short", "is shorter than 32 characters")],
)
def test_production_refuses_unset_and_weak_secrets(value, problem):
    env = {"JWT_SECRET": STRONG}
    message = refusal(PaymentConfig, {**env, "PAYMENT_WEBHOOK_SECRET": value})
    assert f"PAYMENT_WEBHOOK_SECRET {problem}" in message
    assert cfg.load(PaymentConfig, {**env, "PAYMENT_WEBHOOK_SECRET": STRONG})


def test_production_refuses_the_fake_checkout():
    env = {"JWT_SECRET": STRONG, "PAYMENT_WEBHOOK_SECRET": STRONG}
    message = refusal(PaymentConfig, {**env, "PAYMENT_FAKE_CHECKOUT": "true"})
    assert "PAYMENT_FAKE_CHECKOUT is on" in message
    development = {"COMANDA_ENV": "development", "PAYMENT_FAKE_CHECKOUT": "true"}
    assert cfg.load(PaymentConfig, development).fake_checkout is True


def test_auto_approval_needs_the_fake_checkout():
    env = {"COMANDA_ENV": "development", "FAKE_PROVIDER_AUTO_APPROVE_SECONDS": "0"}
    assert "PAYMENT_FAKE_CHECKOUT is off" in refusal(PaymentConfig, env)


def test_an_identity_providers_keys_replace_the_secret(tmp_path):
    missing = refusal(OrdersConfig, {"JWT_JWKS_FILE": str(tmp_path / "x")})
    assert "JWT_JWKS_FILE" in missing and "JWT_SECRET" not in missing
    jwks = tmp_path / "jwks.json"
    jwks.write_text(
        '{"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "x": '
        '"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", '
        '"y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}'
    )
    loaded = cfg.load(OrdersConfig, {"JWT_JWKS_FILE": str(jwks)})
    assert loaded.token_verifier() is not None


def test_effective_shows_what_is_used_with_secrets_masked():
    loaded = cfg.load(
        PaymentConfig,
        {
            "COMANDA_ENV": "development",
            "PAYMENT_WEBHOOK_SECRET": STRONG,
            "PAYMENT_DATABASE_URL": "postgresql://pay:hunter2@db/payment",
            "PAYMENT_GRPC_PORT": "7000",
        },
    )
    shown = {env: value for env, value, _ in cfg.effective(loaded)}
    assert shown["PAYMENT_GRPC_PORT"] == "7000"
    assert shown["PAYMENT_WEBHOOK_SECRET"] == "***"
    assert shown["JWT_SECRET"] == "*** (default)"
    assert shown["PAYMENT_DATABASE_URL"] == "postgresql+psycopg2://pay:***@db/payment"
    assert STRONG not in str(shown) and "hunter2" not in str(shown)
