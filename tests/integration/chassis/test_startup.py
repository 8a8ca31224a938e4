"""A process that cannot start says why in one line and exits non-zero, without a traceback."""

import os
import socket
import subprocess
import sys

import pytest

from devstack.servers import free_port
from tests.support.stack import REPO


def run(
    module: str, env: dict[str, str], timeout: float = 60, args: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("ORDERS_", "PAYMENT_", "NATS_URL"))
    }
    ports = {
        "ORDERS_GRPC_PORT": str(free_port()),
        "PAYMENT_GRPC_PORT": str(free_port()),
        "ORDERS_METRICS_PORT": "0",
        "PAYMENT_METRICS_PORT": "0",
    }
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env={**clean, **ports, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, (
        f"exit {result.returncode}, expected {code}; stderr: {result.stderr}"
    )
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


def test_bad_configuration_exits_2(pg):
    result = run("orders", {"ORDERS_GRPC_PORT": "not-a-port", "NATS_URL": "http://x"})
    assert_one_line(result, 2, "ORDERS_GRPC_PORT", "NATS_URL")


def test_unreachable_database_exits_1():
    result = run(
        "payment",
        {"PAYMENT_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/payment"},
    )
    assert_one_line(result, 1, "payment: error: cannot connect to the database", "127.0.0.1")


def test_database_not_migrated_exits_1(pg):
    name, url = pg.create_database("orders_empty")
    try:
        result = run("orders", {"ORDERS_DATABASE_URL": url})
        assert_one_line(result, 1, "not migrated", "python -m orders migrate")
    finally:
        pg.drop_database(name)


def test_unreachable_nats_exits_1(pg, templates):
    name, url = pg.create_database("orders_nonats", templates["orders"])
    try:
        result = run(
            "orders", {"ORDERS_DATABASE_URL": url, "NATS_URL": f"nats://127.0.0.1:{free_port()}"}
        )
        assert_one_line(result, 1, "cannot connect to NATS", "127.0.0.1")
    finally:
        pg.drop_database(name)


@pytest.mark.parametrize("port", ["GRPC", "HTTP"])
def test_busy_port_exits_1(pg, templates, nats_server, port):
    """The gRPC port, or the HTTP API's (ORDERS_HTTP_PORT): named, before anything starts."""
    name, url = pg.create_database(f"orders_busy_{port.lower()}", templates["orders"])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        number = busy.getsockname()[1]
        try:
            result = run(
                "orders",
                {
                    "ORDERS_DATABASE_URL": url,
                    "NATS_URL": nats_server.url,
                    f"ORDERS_{port}_HOST": "127.0.0.1",
                    f"ORDERS_{port}_PORT": str(number),
                },
            )
            assert_one_line(result, 1, f"127.0.0.1:{number}", "in use")  # "Address already in use"
        finally:
            pg.drop_database(name)


@pytest.mark.parametrize("command", [["migrate"], ["seed-menu"]])
def test_one_shot_commands_against_an_unreachable_database(command):
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/orders"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ORDERS_")}
    result = subprocess.run(
        [sys.executable, "-m", "orders", *command],
        cwd=REPO,
        env={**clean, "ORDERS_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_one_line(result, 1, "orders: error")


def test_make_run_names_a_busy_port_before_starting_anything(tmp_path):
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        clean = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ORDERS_", "PAYMENT_", "GATEWAY_"))
        }
        result = subprocess.run(
            [sys.executable, "-m", "devstack", "run"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            env={**clean, "ORDERS_GRPC_PORT": str(port), "DEVSTACK_DATA_DIR": str(tmp_path)},
        )
    assert_one_line(result, 1, f"port {port} for orders is already in use", "ORDERS_GRPC_PORT")
    assert not any(tmp_path.iterdir()), "nothing was started (no data directory was made)"


def test_production_with_a_development_secret_exits_2_naming_it():
    result = run("payment", {"COMANDA_ENV": "production", "PAYMENT_FAKE_CHECKOUT": "true"})
    assert_one_line(
        result,
        2,
        "payment: refusing to start",
        "JWT_SECRET is the development default",
        "PAYMENT_WEBHOOK_SECRET is the development default",
        "PAYMENT_FAKE_CHECKOUT is on",
    )


def test_config_prints_the_values_in_use_with_secrets_masked():
    secret = "a-real-webhook-secret-" + "z" * 20
    result = subprocess.run(
        [sys.executable, "-m", "payment", "config"],
        cwd=REPO,
        env={
            **os.environ,
            "COMANDA_ENV": "development",
            "PAYMENT_WEBHOOK_SECRET": secret,
            "PAYMENT_METRICS_HOST": "127.0.0.1",
            "PAYMENT_DATABASE_URL": "postgresql://pay:hunter2@db:5432/payment",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()}
    assert lines["PAYMENT_METRICS_HOST"] == "127.0.0.1"
    assert lines["PAYMENT_WEBHOOK_SECRET"] == "***"
    assert lines["COMANDA_ENV"] == "development"
    assert "hunter2" not in result.stdout and secret not in result.stdout


def test_a_server_serving_http_checks_the_gateways_settings_too():
    result = run("orders", {"ORDERS_HTTP_PORT": str(free_port()), "GATEWAY_TIMEOUT_SECONDS": "-1"})
    assert_one_line(result, 2, "GATEWAY_TIMEOUT_SECONDS")


@pytest.mark.parametrize("http", [True, False])
def test_config_lists_the_http_apis_settings_when_the_server_serves_it(http):
    env = {"ORDERS_HTTP_PORT": "8080"} if http else {}
    result = run("orders", {**env, "GATEWAY_PAYMENT_TARGET": "payment:50052"}, args=("config",))
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()]
    gateway = [name for name in names if name.startswith("GATEWAY_")]
    if http:
        assert "GATEWAY_PAYMENT_TARGET payment:50052" in " ".join(result.stdout.split())
        assert "GATEWAY_HTTP_PORT" not in gateway, "where it listens is ORDERS_HTTP_PORT"
        assert len(names) == len(set(names)), "a shared setting (LOG_LEVEL...) is listed once"
    else:
        assert gateway == [], gateway
