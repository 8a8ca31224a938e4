"""Real service processes for end-to-end tests: orders, payment and the gateway, each
`python -m <service>` on its own port, with its own fresh database and a NATS server."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import grpc

from chassis import tokens
from comanda.orders.v1 import catalog_pb2_grpc, customers_pb2_grpc, orders_pb2_grpc
from comanda.payment.v1 import payment_pb2_grpc
from devstack.servers import free_port, grpc_serving
from tests.support.servers import NatsServer, PostgresServer, make_tmpdir

REPO = Path(__file__).resolve().parents[2]
# The tests' staff: a token with both roles, signed with the stacks' JWT secret.
JWT_SECRET = "test-jwt-secret-0123456789abcdef0123456789"
STAFF_TOKEN = tokens.sign("test-staff", ["kitchen", "manager"], secret=JWT_SECRET, ttl=24 * 3600)
STAFF = (("authorization", f"Bearer {STAFF_TOKEN}"),)
WEBHOOK_SECRET = "test-webhook-secret"


class ServiceProcess:
    """One `python -m <module> [args]` process with its log in a file."""

    def __init__(
        self,
        module: str,
        env: dict[str, str],
        log_path: Path,
        port: int,
        http: bool = False,
        args: tuple[str, ...] = (),
    ) -> None:
        self.module = module
        self.args = args
        self.env = env
        self.log_path = log_path
        self.port = port
        self.http = http
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0
        self.http_port = 0  # a server's in-process HTTP API ({SERVICE}_HTTP_PORT), if any
        self.role = " ".join([module, *args])  # "orders", "orders worker", ...

    def start(self, wait: bool = True, timeout: float = 30) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.args],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.module} exited with {self.proc.returncode}:\n{self.log()[-3000:]}"
                )
            if self._ready():
                return
            time.sleep(0.05)
        raise AssertionError(f"{self.module} not ready within {timeout}s:\n{self.log()[-3000:]}")

    def _ready(self) -> bool:
        if self.http:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}/readyz", timeout=1
                ) as response:
                    return bool(response.status == 200)
            except OSError:
                return False
        return grpc_serving(self.port)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.module} did not stop within {timeout}s") from None

    def restart(self, failpoints: str | None = None) -> None:
        """Stop (if still running) and start again, with these failpoints or none."""
        self.stop()
        self.env.pop("COMANDA_FAILPOINTS", None)
        if failpoints:
            self.env["COMANDA_FAILPOINTS"] = failpoints
        self.start()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def pause(self) -> None:
        """Freeze the process (SIGSTOP), as a stalled machine would."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def targets(processes: list[ServiceProcess]) -> str:
    """The gRPC addresses of some processes, comma-separated (a gateway's target setting)."""
    return ",".join(f"127.0.0.1:{p.port}" for p in processes)


class Stack:
    """orders + payment (+ gateway), `replicas` servers and `replicas` workers of each service,
    one NATS server; with `http`, every server also serves the HTTP API in-process (the
    gateway inside it, on a port of its own: `http_url`)."""

    def __init__(
        self,
        pg: PostgresServer,
        templates: dict[str, str],
        replicas: int = 1,
        gateway: bool = False,
        env: dict[str, str] | None = None,
        http: bool = False,
    ) -> None:
        self.pg = pg
        self.templates = templates
        self.replicas = replicas
        self.with_gateway = gateway
        self.with_http = http
        self.extra_env = env or {}
        self.tmp = make_tmpdir("comanda-test-stack-")
        self.nats = NatsServer()
        self.databases: dict[str, tuple[str, str]] = {}
        self.orders: list[ServiceProcess] = []  # the gRPC servers
        self.payment: list[ServiceProcess] = []
        self.orders_workers: list[ServiceProcess] = []  # the saga's work
        self.payment_workers: list[ServiceProcess] = []
        self.gateway: ServiceProcess | None = None
        self._channels: dict[str, grpc.Channel] = {}

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> Stack:
        self.nats.start()
        for service in ("orders", "payment"):
            self.databases[service] = self.pg.create_database(
                f"{service}_test", self.templates[service]
            )
        for i in range(self.replicas):
            self.orders.append(self._service("orders", i))
            self.payment.append(self._service("payment", i))
            self.orders_workers.append(self._service("orders", i, worker=True))
            self.payment_workers.append(self._service("payment", i, worker=True))
        if self.with_http:
            for server in [*self.orders, *self.payment]:
                server.http_port = free_port()
                server.env.update(
                    {
                        f"{server.module.upper()}_HTTP_HOST": "127.0.0.1",
                        f"{server.module.upper()}_HTTP_PORT": str(server.http_port),
                        "GATEWAY_ORDERS_TARGET": targets(self.orders),
                        "GATEWAY_PAYMENT_TARGET": targets(self.payment),
                    }
                )
        for proc in self.services:
            proc.start(wait=False)
        for proc in self.services:
            proc.wait_ready()
        if self.with_gateway:
            self.gateway = self.new_gateway(targets(self.orders), targets(self.payment))
            self.gateway.start()
        return self

    def new_gateway(
        self, orders_target: str, payment_target: str, name: str = "gateway"
    ) -> ServiceProcess:
        """A gateway process (not started) on a port of its own in front of these targets
        (host:port, several separated by commas), with this stack's settings."""
        port = free_port()
        env = self.env(
            {
                "GATEWAY_HTTP_HOST": "127.0.0.1",
                "GATEWAY_HTTP_PORT": str(port),
                "GATEWAY_ORDERS_TARGET": orders_target,
                "GATEWAY_PAYMENT_TARGET": payment_target,
            }
        )
        return ServiceProcess("gateway", env, self.tmp / f"{name}.log", port, http=True)

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ORDERS_", "PAYMENT_", "GATEWAY_"))
        }
        env.update(
            {
                "COMANDA_ENV": "development",
                "PAYMENT_FAKE_CHECKOUT": "true",
                "NATS_URL": self.nats.url,
                "JWT_SECRET": JWT_SECRET,
                "PAYMENT_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "LOG_FORMAT": "json",
                "LOG_LEVEL": "INFO",
                "SHUTDOWN_GRACE_SECONDS": "5",
                "RELAY_SWEEP_SECONDS": "0.5",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        env.update(extra)
        return env

    def server_on(self, service: str, database_url: str, name: str) -> ServiceProcess:
        """One more server of `service`, on a database of its own and this stack's NATS (not
        started; its caller starts and stops it)."""
        return self._service(service, 0, database_url=database_url, name=name)

    def _service(
        self,
        service: str,
        index: int,
        worker: bool = False,
        database_url: str | None = None,
        name: str | None = None,
    ) -> ServiceProcess:
        prefix = service.upper()
        port = free_port()
        env = self.env(
            {
                f"{prefix}_DATABASE_URL": database_url or self.databases[service][1],
                f"{prefix}_GRPC_HOST": "127.0.0.1",
                f"{prefix}_GRPC_PORT": str(port),
                f"{prefix}_METRICS_PORT": str(free_port()),
            }
        )
        log = name or (f"{service}-worker-{index}" if worker else f"{service}-{index}")
        process = ServiceProcess(
            service,
            env,
            self.tmp / f"{log}.log",
            port,
            args=("worker",) if worker else (),
        )
        process.metrics_port = int(env[f"{prefix}_METRICS_PORT"])
        return process

    def stop(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
        for proc in [self.gateway, *self.services]:
            if proc is not None:
                with contextlib.suppress(AssertionError):
                    proc.stop()
        self.nats.stop()
        for name, _url in self.databases.values():
            self.pg.drop_database(name)

    @property
    def services(self) -> list[ServiceProcess]:
        """Every server and worker of both services."""
        return [*self.orders, *self.orders_workers, *self.payment, *self.payment_workers]

    def processes(self) -> list[ServiceProcess]:
        """Every service process of the stack (and the gateway)."""
        return [*self.services, *([self.gateway] if self.gateway else [])]

    def logs(self) -> str:
        parts = []
        for proc in self.processes():
            if proc is not None:
                parts.append(f"==== {proc.log_path.name}\n{proc.log()[-4000:]}")
        return "\n".join(parts)

    # -- clients ----------------------------------------------------------------------
    def channel(self, service: str, index: int = 0) -> grpc.Channel:
        key = f"{service}{index}"
        if key not in self._channels:
            proc = (self.orders if service == "orders" else self.payment)[index]
            self._channels[key] = grpc.insecure_channel(f"127.0.0.1:{proc.port}")
        return self._channels[key]

    @property
    def customers(self) -> Any:
        return customers_pb2_grpc.CustomerServiceStub(self.channel("orders"))

    @property
    def catalog(self) -> Any:
        return catalog_pb2_grpc.CatalogServiceStub(self.channel("orders"))

    @property
    def order_service(self) -> Any:
        return orders_pb2_grpc.OrderServiceStub(self.channel("orders"))

    @property
    def kitchen(self) -> Any:
        return orders_pb2_grpc.KitchenServiceStub(self.channel("orders"))

    @property
    def payments(self) -> Any:
        return payment_pb2_grpc.PaymentServiceStub(self.channel("payment"))

    @property
    def fake_checkout(self) -> Any:
        return payment_pb2_grpc.FakeCheckoutServiceStub(self.channel("payment"))

    @property
    def gateway_url(self) -> str:
        assert self.gateway is not None, "this stack has no gateway"
        return f"http://127.0.0.1:{self.gateway.port}"

    def http_url(self, service: str = "orders", index: int = 0) -> str:
        """The HTTP API a server of `service` serves in-process (a stack made with http)."""
        server = (self.orders if service == "orders" else self.payment)[index]
        assert server.http_port, "this stack's servers serve no HTTP"
        return f"http://127.0.0.1:{server.http_port}"
