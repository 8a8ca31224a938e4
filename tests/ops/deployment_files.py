"""What the operations tests read: the Kubernetes manifests, the compose file, the Dockerfile,
and the settings the code really has (so a renamed setting cannot leave a dead name behind)."""

from __future__ import annotations

import importlib
import re
import shlex
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from chassis import config as cfg

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "kubernetes"
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"

# The processes of the image and the configuration class each one loads.
CONFIG_CLASSES = {
    "orders": ("orders.app", "OrdersConfig"),
    "payment": ("payment.app", "PaymentConfig"),
    "gateway": ("gateway.config", "GatewayConfig"),
}
# What is deployed: the two services (the orders server also serves the HTTP API, the
# gateway in-process); `python -m gateway` alone is in the image but not deployed.
SERVICES = ("orders", "payment")
GRPC_SERVICES = SERVICES
# The HTTP API: the server that serves it, and its port.
HTTP_SERVER, HTTP_PORT = "orders", 8080
# Settings that hold secrets: never in a ConfigMap, always from a Secret.
SECRET_SETTINGS = {
    "JWT_SECRET",
    "PAYMENT_WEBHOOK_SECRET",
    "ORDERS_DATABASE_URL",
    "PAYMENT_DATABASE_URL",
}


@cache
def settings(process: str) -> dict[str, str]:
    """Environment variable -> default, of every setting the process reads."""
    module, name = CONFIG_CLASSES[process]
    config_class = getattr(importlib.import_module(module), name)
    found = {env: default for env, default, _doc in cfg.describe(config_class)}
    if process in GRPC_SERVICES:  # a server serving HTTP ({SERVICE}_HTTP_PORT) reads these too
        found.update({k: v for k, v in settings("gateway").items() if k not in found})
    return found


def project_version() -> str:
    with open(REPO / "pyproject.toml", "rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def app_image() -> str:
    return f"comanda:{project_version()}"


def processes_of(command: list[str]) -> list[str]:
    """The processes a container command runs (`python -m orders`, `sh -c "python -m ..."`)."""
    return re.findall(r"python -m (\w+)", " ".join(command))


# --- Kubernetes ------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    file: str
    doc: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.doc["kind"])

    @property
    def name(self) -> str:
        return str(self.doc["metadata"]["name"])

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name} ({self.file})"


@cache
def manifests() -> tuple[Resource, ...]:
    found: list[Resource] = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        with open(path) as f:
            found.extend(Resource(path.name, doc) for doc in yaml.safe_load_all(f) if doc)
    return tuple(found)


def of_kind(*kinds: str) -> list[Resource]:
    return [r for r in manifests() if r.kind in kinds]


def one(kind: str, name: str) -> Resource:
    matches = [r for r in manifests() if r.kind == kind and r.name == name]
    assert len(matches) == 1, f"expected one {kind}/{name} in kubernetes/, found {len(matches)}"
    return matches[0]


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")


def workloads() -> list[Resource]:
    return of_kind(*WORKLOAD_KINDS)


def pod_spec(workload: Resource) -> dict[str, Any]:
    return dict(workload.doc["spec"]["template"]["spec"])


def pod_labels(workload: Resource) -> dict[str, str]:
    return dict(workload.doc["spec"]["template"]["metadata"].get("labels", {}))


def containers(workload: Resource) -> Iterator[dict[str, Any]]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def config_map_data(name: str) -> dict[str, str]:
    return {k: str(v) for k, v in one("ConfigMap", name).doc.get("data", {}).items()}


def secret_data(name: str) -> dict[str, str]:
    return {k: str(v) for k, v in one("Secret", name).doc.get("stringData", {}).items()}


def container_env(container: dict[str, Any]) -> dict[str, str | None]:
    """Every variable a container gets: from envFrom ConfigMaps and Secrets, and from env.
    Values read from a Secret key are None (the test never needs them)."""
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_map_data(source["configMapRef"]["name"]))
        if "secretRef" in source:
            env.update(dict.fromkeys(secret_data(source["secretRef"]["name"])))
    for var in container.get("env", []):
        env[var["name"]] = var.get("value")
    return env


def selects(match_labels: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether a selector's labels (a Service's selector, a LabelSelector's matchLabels) all
    appear in `labels`; an empty selector selects everything."""
    return all(labels.get(k) == v for k, v in match_labels.items())


def match_labels(selector: dict[str, Any]) -> dict[str, str]:
    """The matchLabels of a LabelSelector (tests/ops does not evaluate matchExpressions)."""
    assert "matchExpressions" not in selector, (
        f"matchExpressions are not understood here: {selector}"
    )
    return dict(selector.get("matchLabels", {}))


# --- compose ---------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    with open(COMPOSE) as f:
        return dict(yaml.safe_load(f))


def compose_services() -> dict[str, dict[str, Any]]:
    return dict(compose()["services"])


def compose_command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


# --- Dockerfile ------------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]]  # (INSTRUCTION, arguments), continuation lines joined

    def lines(self, instruction: str) -> list[str]:
        return [args for ins, args in self.instructions if ins == instruction]


def dockerfile_stages() -> tuple[dict[str, str], list[Stage]]:
    """The global ARG defaults and the stages of the Dockerfile, in order."""
    text = DOCKERFILE.read_text()
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        rest = rest.strip()
        if instruction == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), words[0])
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name, base, []))
        elif not stages and instruction == "ARG":
            key, _, value = rest.partition("=")
            args[key] = value
        elif stages:
            stages[-1].instructions.append((instruction, rest))
    return args, stages
