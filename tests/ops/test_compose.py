"""docker-compose.yml: the services, their order of start, health checks that really work, and
settings the code really reads."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from typing import Any
from urllib.parse import urlsplit

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from chassis import config as cfg
from tests.ops.deployment_files import (
    CONFIG_CLASSES,
    GRPC_SERVICES,
    HTTP_PORT,
    HTTP_SERVER,
    SERVICES,
    app_image,
    compose,
    compose_command,
    compose_services,
    containers,
    one,
    processes_of,
    settings,
)

WORKERS = ("orders-worker", "payment-worker")
EXPECTED_SERVICES = {"orders-db", "payment-db", "nats", "migrate", *SERVICES, *WORKERS}
# service -> {dependency: condition}
EXPECTED_DEPENDENCIES = {
    "migrate": {"orders-db": "service_healthy", "payment-db": "service_healthy"},
    "orders": {"migrate": "service_completed_successfully", "nats": "service_healthy"},
    "payment": {"migrate": "service_completed_successfully", "nats": "service_healthy"},
    "orders-worker": {"migrate": "service_completed_successfully", "nats": "service_healthy"},
    "payment-worker": {"migrate": "service_completed_successfully", "nats": "service_healthy"},
}


def _service(name: str) -> dict[str, Any]:
    services = compose_services()
    assert name in services, (
        f"expected service {name!r} in docker-compose.yml, found {sorted(services)}"
    )
    return services[name]


def _env(name: str) -> dict[str, str]:
    environment = _service(name).get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {k: str(v) for k, v in environment.items()}


def _app_services() -> list[str]:
    return [
        n for n, s in compose_services().items() if str(s.get("image", "")).startswith("comanda")
    ]


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for suffix in sorted(units, key=len, reverse=True):
        if duration.endswith(suffix):
            return float(duration[: -len(suffix)]) * units[suffix]
    return float(duration)


def test_the_stack_has_exactly_the_expected_services() -> None:
    found = set(compose_services())
    assert found == EXPECTED_SERVICES, (
        f"expected services {sorted(EXPECTED_SERVICES)}, found {sorted(found)}"
    )


def _variable(value: str) -> tuple[str, str] | None:
    """(NAME, default) of a `${NAME:-default}` value."""
    match = re.fullmatch(r"(.*)\$\{(\w+):-([^}]*)\}(.*)", value)
    return (match[2], match[1] + match[3] + match[4]) if match else None


def test_the_file_is_for_compose_v1_and_v2_alike() -> None:
    assert "name" not in compose(), (
        "expected no top-level `name:` (Debian's Compose v1, which `make compose-test` runs, "
        "rejects it; the project is named with -p)"
    )
    assert "version" not in compose(), "expected no `version:` (obsolete in v2, unneeded in v1)"


def test_images_are_pinned_and_the_app_image_is_built_by_make_image() -> None:
    for name, service in compose_services().items():
        image = str(service.get("image", ""))
        variable = _variable(image)
        if variable:
            assert variable[0].endswith("_IMAGE"), f"{name}: image variable {variable[0]}"
            image = variable[1]
        tag = image.rpartition(":")[2] if ":" in image else ""
        assert tag and tag != "latest", (
            f"{name}: expected an image pinned to a version, found {image!r}"
        )
    for name in _app_services():
        service = _service(name)
        assert service["image"] == app_image(), (
            f"{name}: expected {app_image()}, found {service['image']}"
        )
        assert "build" not in service, (
            f"{name}: expected no `build:`: the image is built hermetically by `make image`, "
            "never by Compose"
        )
    assert set(_app_services()) == {"migrate", *SERVICES, *WORKERS}, (
        f"expected the app image for migrate, {SERVICES} and {WORKERS}"
    )


@pytest.mark.parametrize("name", ["orders-db", "payment-db", "nats"])
def test_base_images_are_the_manifests_and_can_be_replaced(name: str) -> None:
    variable = _variable(str(_service(name)["image"]))
    assert variable, f"{name}: expected image: ${{..._IMAGE:-<public image>}}"
    in_cluster = {c["image"] for c in containers(one("StatefulSet", name))}
    assert in_cluster == {variable[1]}, (
        f"{name}: the compose default {variable[1]} and the manifests' {in_cluster} differ"
    )


PUBLISHED = {"orders": [("ORDERS", 50051), ("HTTP", HTTP_PORT)], "payment": [("PAYMENT", 50052)]}


@pytest.mark.parametrize(("name", "ports"), sorted(PUBLISHED.items()))
def test_ports_are_published_on_loopback_and_can_be_moved(
    name: str, ports: list[tuple[str, int]]
) -> None:
    published = [str(p) for p in _service(name).get("ports", [])]
    expected = [f"127.0.0.1:${{{prefix}_HOST_PORT:-{port}}}:{port}" for prefix, port in ports]
    assert published == expected, (
        f"{name}: expected {expected} (the README's ports, 0 for any free one), found {published}"
    )


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_runs_its_process(name: str) -> None:
    command = compose_command(_service(name))
    assert command == ["python", "-m", name], (
        f"{name}: expected command python -m {name}, found {command}"
    )


@pytest.mark.parametrize("name", WORKERS)
def test_each_worker_runs_its_services_saga_work_with_the_servers_settings(name: str) -> None:
    service = name.removesuffix("-worker")
    assert compose_command(_service(name)) == ["python", "-m", service, "worker"]
    http = {f"{service.upper()}_HTTP_PORT"} | {k for k in _env(service) if k.startswith("GATEWAY_")}
    server = {k: v for k, v in _env(service).items() if k not in http}
    assert _env(name) == server, (
        f"{name}: expected the settings of {service}, but its HTTP API's ({sorted(http)})"
    )
    assert "ports" not in _service(name), f"{name}: its health port is not published"


def test_the_migration_step_migrates_both_databases_and_seeds_the_menu() -> None:
    service = _service("migrate")
    script = " ".join(compose_command(service))
    for step in (
        "python -m orders migrate",
        "python -m payment migrate",
        "python -m orders seed-menu",
    ):
        assert step in script, f"migrate: expected it to run {step!r}, found {script!r}"
    assert str(service.get("restart", "no")) == "no", (
        f"migrate: a one-shot must not restart, found {service.get('restart')}"
    )
    assert "healthcheck" not in service, (
        "migrate: a one-shot has no health check (others wait for its completion)"
    )
    orders_commands = importlib.import_module("orders.app").DEFINITION.commands
    assert "seed-menu" in orders_commands, (
        f"orders has no seed-menu command: {sorted(orders_commands)}"
    )


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED_DEPENDENCIES.items()))
def test_services_start_in_order_through_depends_on_conditions(
    name: str, expected: dict[str, str]
) -> None:
    depends = _service(name).get("depends_on", {})
    assert isinstance(depends, dict), (
        f"{name}: expected depends_on with conditions, found the short list form {depends}"
    )
    found = {dep: spec.get("condition") for dep, spec in depends.items()}
    assert found == expected, f"{name}: expected depends_on {expected}, found {found}"


def test_every_long_running_service_has_a_health_check() -> None:
    missing = [
        n
        for n, s in compose_services().items()
        if n != "migrate" and not s.get("healthcheck", {}).get("test")
    ]
    assert not missing, (
        f"expected a healthcheck on every long-running service, missing on {missing}"
    )


def test_nats_runs_jetstream_on_a_volume() -> None:
    nats = _service("nats")
    command = compose_command(nats)
    assert "-js" in command, f"nats: expected -js (JetStream), found {command}"
    store = command[command.index("-sd") + 1] if "-sd" in command else None
    assert store, f"nats: expected -sd <store dir>, found {command}"
    volumes = {str(v).split(":")[1]: str(v).split(":")[0] for v in nats.get("volumes", [])}
    assert store in volumes, (
        f"nats: expected a volume mounted at the store {store}, found {volumes}"
    )
    assert volumes[store] in (compose().get("volumes") or {}), (
        f"nats: {volumes[store]} is not a named volume"
    )


@pytest.mark.parametrize("name", ["orders-db", "payment-db"])
def test_each_database_server_keeps_its_data_in_a_named_volume(name: str) -> None:
    volumes = [str(v) for v in _service(name).get("volumes", [])]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in volumes), (
        f"{name}: no data volume in {volumes}"
    )


@pytest.mark.parametrize("name", ["migrate", *SERVICES])
def test_app_services_set_only_settings_their_process_reads(name: str) -> None:
    processes = processes_of(compose_command(_service(name)))
    known = set().union(*(settings(p) for p in processes))
    unknown = sorted(set(_env(name)) - known)
    assert not unknown, (
        f"{name} ({', '.join(processes)}): expected settings the code reads, "
        f"found unknown {unknown}"
    )


@pytest.mark.parametrize("name", ["migrate", *SERVICES])
def test_every_process_accepts_its_compose_configuration(name: str) -> None:
    problems = []
    command = compose_command(_service(name))
    serving = "migrate" not in " ".join(command)  # only serving needs the secrets
    for process in processes_of(command):
        module, cls = CONFIG_CLASSES[process]
        try:
            cfg.load(getattr(importlib.import_module(module), cls), _env(name), whole=serving)
        except cfg.ConfigError as exc:
            problems.append(f"python -m {process}: {exc}")
    assert not problems, (
        f"{name}: expected every process to accept its environment, found {problems}"
    )


@pytest.mark.parametrize("service", GRPC_SERVICES)
def test_database_urls_match_the_database_servers(service: str) -> None:
    db = _env(f"{service}-db")
    for name in (service, "migrate"):
        url = urlsplit(_env(name)[f"{service.upper()}_DATABASE_URL"])
        found = (url.hostname, url.port, url.username, url.password, url.path)
        expected = (
            f"{service}-db",
            5432,
            db["POSTGRES_USER"],
            db["POSTGRES_PASSWORD"],
            f"/{db['POSTGRES_DB']}",
        )
        assert found == expected, (
            f"{name}: expected {service.upper()}_DATABASE_URL parts {expected}, found {found}"
        )


def test_services_reach_nats_and_the_http_api_reaches_the_other_services() -> None:
    http = _env(HTTP_SERVER)
    assert http.get(f"{HTTP_SERVER.upper()}_HTTP_PORT") == str(HTTP_PORT), (
        f"{HTTP_SERVER}: expected {HTTP_SERVER.upper()}_HTTP_PORT {HTTP_PORT} (the HTTP API)"
    )
    for service in GRPC_SERVICES:
        url = urlsplit(_env(service)["NATS_URL"])
        assert url.hostname == "nats" and url.port == 4222, (
            f"{service}: NATS_URL {url.geturl()} is not the nats service"
        )
        if service == HTTP_SERVER:  # called in-process
            continue
        target = http[f"GATEWAY_{service.upper()}_TARGET"]
        port = (
            _env(service).get(f"{service.upper()}_GRPC_PORT")
            or settings(service)[f"{service.upper()}_GRPC_PORT"]
        )
        assert target == f"{service}:{port}", (
            f"{HTTP_SERVER}'s HTTP API: expected target {service}:{port}, found {target}"
        )


@pytest.mark.parametrize("name", ["migrate", *SERVICES, *WORKERS])
def test_app_containers_are_locked_down(name: str) -> None:
    service = _service(name)
    assert service.get("read_only") is True, f"{name}: expected read_only: true"
    assert "/tmp" in [str(t).split(":")[0] for t in service.get("tmpfs", [])], (
        f"{name}: expected a tmpfs at /tmp"
    )
    assert service.get("cap_drop") == ["ALL"], (
        f"{name}: expected cap_drop [ALL], found {service.get('cap_drop')}"
    )
    assert "no-new-privileges:true" in service.get("security_opt", []), (
        f"{name}: expected no-new-privileges"
    )


@pytest.mark.parametrize("name", SERVICES)
def test_stop_grace_is_longer_than_the_servers_shutdown_grace(name: str) -> None:
    grace = float(
        _env(name).get("SHUTDOWN_GRACE_SECONDS") or settings(name)["SHUTDOWN_GRACE_SECONDS"]
    )
    found = _seconds(str(_service(name).get("stop_grace_period", "10s")))
    assert found > grace, (
        f"{name}: expected stop_grace_period > SHUTDOWN_GRACE_SECONDS {grace:g}s, found {found:g}s"
    )


# --- the health checks work ------------------------------------------------------------


def _health_command(name: str) -> list[str]:
    test = [str(t) for t in _service(name)["healthcheck"]["test"]]
    assert test[0] == "CMD", f"{name}: expected an exec-form (CMD) health check, found {test[:1]}"
    return test[1:]


@pytest.fixture
def grpc_health_server() -> Iterator[tuple[int, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port, servicer
    server.stop(None)


def _run(command: list[str]) -> int:
    assert command[0] == "python", f"expected the health check to run python, found {command[0]}"
    # As in the container: no proxy between the check and the server on the same host.
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    return subprocess.run(
        [sys.executable, *command[1:]], capture_output=True, timeout=30, env=env
    ).returncode


@pytest.mark.parametrize("name", GRPC_SERVICES)
def test_the_grpc_health_check_passes_only_while_the_server_is_serving(
    name: str, grpc_health_server: tuple[int, health.HealthServicer]
) -> None:
    command = _health_command(name)
    port = (
        _env(name).get(f"{name.upper()}_GRPC_PORT") or settings(name)[f"{name.upper()}_GRPC_PORT"]
    )
    assert command[-1] == f"127.0.0.1:{port}", (
        f"{name}: expected the check to call 127.0.0.1:{port}, found {command[-1]}"
    )
    test_port, servicer = grpc_health_server
    probe = [*command[:-1], f"127.0.0.1:{test_port}"]
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert _run(probe) == 0, f"{name}: expected the health check to pass against a SERVING server"
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert _run(probe) != 0, (
        f"{name}: expected the health check to fail against a NOT_SERVING server"
    )


def test_the_demo_runs_in_development_with_the_fake_checkout() -> None:
    """The image defaults to production: the demo says development explicitly."""
    for name in ("migrate", "orders", "payment"):
        assert _env(name).get("COMANDA_ENV") == "development", name
    assert _env("payment").get("PAYMENT_FAKE_CHECKOUT") == "true"
