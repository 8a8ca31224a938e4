"""The container engine and the compose stack that `make compose-test` (scripts/compose_test.sh)
started, as the container tests see them: `docker` and Compose commands, services, published
ports, health, and a printer of timed steps."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from tests.ops.deployment_files import COMPOSE, REPO


def docker(*args: str, check: bool = True, timeout: float = 120) -> str:
    """Runs `docker ARGS`; its stdout (stripped). A failure names the command and its stderr."""
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"docker {shlex.join(args)} exited {done.returncode}: {done.stderr.strip()[-2000:]}"
        )
    return done.stdout.strip()


def docker_succeeds(*args: str, timeout: float = 30) -> bool:
    """Whether `docker ARGS` exits 0 (a probe, a check that may fail)."""
    try:
        done = subprocess.run(["docker", *args], capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def inspect(obj: str, template: str = "{{json .}}") -> Any:
    out = docker("inspect", "--format", template, obj)
    return json.loads(out) if template.startswith("{{json") else out


@dataclass
class ComposeStack:
    """One Compose project: `command` is the Compose program with its global options."""

    command: list[str]
    project: str
    image: str  # the tag
    image_id: str  # the build compose_test.sh made

    @classmethod
    def from_environment(cls) -> ComposeStack | None:
        """The stack named by compose_test.sh's variables, or None outside `make compose-test`."""
        project = os.environ.get("COMPOSE_TEST_PROJECT")
        if not project:
            return None
        compose = shlex.split(os.environ.get("COMPOSE", "docker-compose"))
        env_file = os.environ.get("COMPOSE_ENV_FILE", str(REPO / ".build" / "base-images.env"))
        return cls(
            command=[*compose, "--env-file", env_file],
            project=project,
            image=os.environ["COMANDA_IMAGE"],
            image_id=os.environ["COMANDA_IMAGE_ID"],
        )

    def run(self, *args: str, timeout: float = 180) -> str:
        done = subprocess.run(
            [*self.command, "-p", self.project, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"compose {shlex.join(args)} exited {done.returncode}: {done.stderr[-2000:]}"
            )
        return done.stdout.strip()

    @property
    def env_file(self) -> dict[str, str]:
        path = self.command[self.command.index("--env-file") + 1]
        with open(path) as f:
            lines = [line.strip() for line in f if "=" in line and not line.startswith("#")]
        return dict(line.split("=", 1) for line in lines)

    def local_images(self) -> dict[str, str]:
        """Public image -> the image this machine uses for it (the same, or a stand-in), for the
        compose file's ${VAR:-public image} defaults."""
        env = self.env_file
        defaults = re.findall(r"\$\{(\w+):-([^}]+)\}", COMPOSE.read_text())
        return {
            public: env[var] for var, public in defaults if var.endswith("_IMAGE") and var in env
        }

    @cached_property
    def config(self) -> dict[str, Any]:
        """The compose file as Compose resolves it (variables substituted, anchors merged)."""
        import yaml

        return dict(yaml.safe_load(self.run("config")))

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        return dict(self.config["services"])

    def environment(self, service: str) -> dict[str, str]:
        env = self.services[service].get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        return {k: str(v) for k, v in env.items()}

    def container(self, service: str) -> str:
        ids = self.run("ps", "-q", service).split()
        assert len(ids) == 1, f"expected one container of {service}, found {ids}"
        return ids[0]

    def address(self, service: str, port: int) -> str:
        """host:port where the service's container port is published."""
        published = self.run("port", service, str(port))
        assert published, f"{service}: port {port} is not published"
        return published.splitlines()[0]

    def state(self, service: str) -> dict[str, Any]:
        return dict(inspect(self.container(service), "{{json .State}}"))

    def health(self, service: str) -> str:
        state = self.state(service)
        return str(state.get("Health", {}).get("Status") or state["Status"])


@dataclass
class Steps:
    """Prints each step of a test with the time it took, as it ends."""

    started: float = field(default_factory=time.monotonic)

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[list[str]]:
        """`with steps.step("checkout") as note: ... note.append("order 12")`."""
        begin = time.monotonic()
        note: list[str] = []
        try:
            yield note
        finally:
            detail = f": {'; '.join(note)}" if note else ""
            print(f"    {time.monotonic() - begin:6.2f} s  {what}{detail}", flush=True)
